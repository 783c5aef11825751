"""A/B answering and scoring of two models on the same prompts, shared by `tao-ray compare` (the win rate with a
bootstrap 95% CI) and `tao-ray promote` (the gate built on it, tao_ray/commands/promote.py).

In: model directories, prompt sets (each with its reward expression), the engine settings and the scorers' options.
Out: per model and set, each prompt's label-free score and greedy response length in tokens; `compare` reduces them
to a dict ready to print as JSON.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import ray

from tao_ray.actors.generator import GeneratorSpec
from tao_ray.actors.scorer import ScorerActor
from tao_ray.commands import ab_inputs
from tao_ray.commands.ab_inputs import Engine
from tao_ray.core.selection import paired_scores
from tao_ray.data.prompts import PromptRecord
from tao_ray.runtime import launch, session


@dataclass(frozen=True)
class PromptSet:
    prompts: list[PromptRecord]
    reward: str
    """The reward expression that scores the answers to these prompts."""


@dataclass(frozen=True)
class Answers:
    """One model's greedy answers to one prompt set; index i is prompt i."""

    scores: list[float | None]
    """None where the scorer failed on the answer."""
    lengths: list[int]
    """Response length in tokens (the end-of-sequence token included when the model stopped by itself)."""


def _greedy(model_dir: str, sets: list[PromptSet], engine: Engine):
    """One engine answers every set in one call (started, used, then stopped to free its memory); the Generations
    come back in the order of the prompts, the sets one after another."""
    generator = launch.start_generator(GeneratorSpec(
        model_dir, dtype="bfloat16" if engine.gpus else "float32", max_model_len=engine.max_model_len,
        kv_cache_gb=engine.kv_cache_gb, enforce_eager=not engine.gpus, device="cuda" if engine.gpus else "cpu"),
        engine.gpus)
    prompts = [p for prompt_set in sets for p in prompt_set.prompts]
    try:
        generations = ray.get(generator.generate.remote([(i, list(p.messages)) for i, p in enumerate(prompts)],
                                                        1, 0.0, 1.0, engine.max_tokens))
    finally:
        ray.kill(generator)
    return sorted(generations, key=lambda g: g.prompt_index)


def answer_and_score(models: list[str], sets: list[PromptSet], engine: Engine,
                     scoring: dict[str, Any] | None = None) -> list[list[Answers]]:
    """Answers[model][set]. `scoring`: the scorers' options (a recipe's scoring section as a dict; default: the
    built-in defaults). Models are served one at a time; each model's scoring runs while the next engine starts."""
    started_ray = session.connect(actor_logs=True)
    try:
        scorers = {reward: ray.remote(num_cpus=0)(ScorerActor).remote(reward, scoring)
                   for reward in dict.fromkeys(s.reward for s in sets)}
        pending = []  # per model: per set, (score ref, lengths)
        for model_dir in models:
            generations = iter(_greedy(model_dir, sets, engine))
            per_set = []
            for prompt_set in sets:
                answered = [next(generations) for _ in prompt_set.prompts]
                score_ref = scorers[prompt_set.reward].score.remote([p.as_dict() for p in prompt_set.prompts],
                                                                   [g.response_texts for g in answered])
                per_set.append((score_ref, [len(g.response_token_ids[0]) for g in answered]))
            pending.append(per_set)
        scores = ray.get([ref for per_set in pending for ref, _ in per_set])
    finally:
        if started_ray:
            ray.shutdown()
    flat = iter(scores)
    return [[Answers([group[0] for group in next(flat).raw], lengths) for _, lengths in per_set]
            for per_set in pending]


def compare(model_a: str, model_b: str, prompts: list[PromptRecord], reward: str, engine: Engine | None = None,
            scoring: dict[str, Any] | None = None) -> dict[str, Any]:
    """Win rate of A over B; the numbers are None when no prompt could be scored for both."""
    engine = engine or Engine()
    (a,), (b,) = answer_and_score([model_a, model_b], [PromptSet(prompts, reward)], engine, scoring)
    result = paired_scores(a.scores, b.scores)
    return {"model_a": model_a, "model_b": model_b, "prompts": len(prompts), "scored_pairs": result.scored_pairs,
            "win_rate_a_over_b": result.win_rate, "ci95": list(result.ci95) if result.ci95 else None,
            "mean_diff": result.mean_diff, "mean_a": result.mean_a, "mean_b": result.mean_b,
            "mean_tokens_a": sum(a.lengths) / len(a.lengths), "mean_tokens_b": sum(b.lengths) / len(b.lengths),
            "reward": reward}


def from_args(args: argparse.Namespace) -> int:
    held_out = ab_inputs.heldout(args, ab_inputs.run_recipe(args.run) if args.run else None, "compare")
    model_a = ab_inputs.resolve_model(args.model_a, "compare: MODEL_A")
    model_b = ab_inputs.resolve_model(args.model_b, "compare: MODEL_B")
    result = compare(model_a, model_b, held_out.prompts, held_out.reward,
                     ab_inputs.engine(args, held_out.max_tokens), held_out.scoring)
    print(json.dumps(result), flush=True)  # one line: easy to pick out of engine logs, easy to parse
    return 0
