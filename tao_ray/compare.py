"""A/B comparison of two models on the same prompts, scored label-free: the pairwise win rate of A over B with a
bootstrap 95% CI, and the mean score difference. The loop uses the same `win_rate` against the base model.

In: two model directories, prompt records, a reward expression and its scorers' options.
Out: a dict ready to print as JSON.
"""

from __future__ import annotations

from typing import Any

import ray

from tao_ray.actors.generator import GeneratorActor
from tao_ray.actors.scorer import ScorerActor
from tao_ray.core.selection import win_rate
from tao_ray.data.prompts import PromptRecord


def greedy_scores(model_dir: str, prompts: list[PromptRecord], scorer, max_tokens: int, max_model_len: int,
                  kv_cache_gb: float | None, gpus: float) -> list[float | None]:
    """Greedy answers from one engine (started, used, then stopped to free its memory), scored."""
    generator = ray.remote(num_cpus=1, num_gpus=gpus)(GeneratorActor).remote(
        model_dir, "bfloat16" if gpus else "float32", max_model_len, kv_cache_gb, 0.85, 0, 1, not gpus)
    try:
        generations = ray.get(generator.generate.remote([(i, list(p.messages)) for i, p in enumerate(prompts)],
                                                        1, 0.0, 1.0, max_tokens))
    finally:
        ray.kill(generator)
    scores = ray.get(scorer.score.remote([p.as_dict() for p in prompts], [g.response_texts for g in generations]))
    return [group[0] for group in scores.raw]


def compare(model_a: str, model_b: str, prompts: list[PromptRecord], reward: str, max_tokens: int = 128,
            max_model_len: int = 1024, kv_cache_gb: float | None = 0.5, gpus: float = 0.0,
            scoring: dict[str, Any] | None = None) -> dict[str, Any]:
    """`scoring`: the scorers' options (a recipe's scoring section as a dict; default: the built-in defaults)."""
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        scorer = ray.remote(num_cpus=0)(ScorerActor).remote(reward, scoring)
        a = greedy_scores(model_a, prompts, scorer, max_tokens, max_model_len, kv_cache_gb, gpus)
        b = greedy_scores(model_b, prompts, scorer, max_tokens, max_model_len, kv_cache_gb, gpus)
    finally:
        if started_ray:
            ray.shutdown()
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    result = win_rate([x for x, _ in pairs], [y for _, y in pairs])
    return {"model_a": model_a, "model_b": model_b, "prompts": len(prompts), "scored_pairs": result.prompts,
            "win_rate_a_over_b": result.win_rate, "ci95": [result.ci_low, result.ci_high],
            "mean_diff": result.mean_diff, "mean_a": sum(x for x, _ in pairs) / len(pairs),
            "mean_b": sum(y for _, y in pairs) / len(pairs), "reward": reward}
