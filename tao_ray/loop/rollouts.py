"""The driver's samples: drawing groups of candidates from the generators and scoring them, now or one batch ahead
(pipeline.py), with the prompt order they come from.

TaoDriver inherits these steps from `Rollouts`; they use its recipe, inputs, prompt order, generators, scorers (of
every set), supervisor, weight sync, policy version, background thread and stage timer.
"""

from __future__ import annotations

import math
from typing import Any

import ray

from tao_ray.core.batch import Generation
from tao_ray.core.composition import Scores
from tao_ray.core.sampling import SamplingPlan
from tao_ray.core.selection import mean
from tao_ray.data.prompts import PromptRecord
from tao_ray.loop import pipeline


def split_evenly(items: list, parts: int) -> list[list]:
    """Contiguous, near-equal shards (some empty when there are fewer items than parts)."""
    size = math.ceil(len(items) / parts) if items else 0
    return [items[i * size:(i + 1) * size] for i in range(parts)]


class Rollouts:
    def take_batch(self, iteration: int, timing: dict[str, float]) -> tuple[list[PromptRecord], list[Generation],
                                                                             Scores, dict[str, Any]]:
        """This iteration's prompts, samples and scores: drawn now, or already (pipeline.py)."""
        ahead, self.next_batch = self.next_batch, None
        if ahead is None:
            prompts = self.take_next_prompts()[0]
        else:
            prompts = ahead.prompts
            generations, scores, scoring, timing["sampled_ahead"] = ahead.result()
        with self.timed(timing, "generate", iteration) as note:
            if ahead is None:
                generations = self.generate(prompts)
            note.append(f"{sum(len(g.response_texts) for g in generations)} samples for {len(prompts)} prompts"
                        + ("" if ahead is None else " (drawn ahead)"))
        if ahead is None or scores is None:
            with self.timed(timing, "score", iteration) as note:
                scores, scoring = self.score(prompts, generations), self.scoring_stats(self.scorers)
                note.append(f"{sum(map(len, scores.raw))} scored, {scores.failed} failed")
        else:
            timing["score"] = 0.0
        return prompts, generations, scores, scoring

    def take_next_prompts(self) -> tuple[list[PromptRecord], dict[str, Any]]:
        before = self.order.state()
        indices = self.order.next_batch(self.recipe.generation.prompts_per_iteration)
        return [self.inputs.train[i] for i in indices], before

    def sample_next_in_background(self) -> None:
        prompts, before = self.take_next_prompts()

        def work():
            generations = self.generate(prompts)
            scores = self.score(prompts, generations)
            return generations, scores, self.scoring_stats(self.scorers)

        self.next_batch = pipeline.NextBatch(prompts, before, future=self.background.submit(work))

    def order_state(self) -> dict[str, Any]:
        """The prompt order to resume from: before a batch drawn ahead was taken."""
        return self.next_batch.order_state if self.next_batch is not None else self.order.state()

    def drop_next_batch(self) -> None:
        if self.next_batch is not None:
            self.next_batch.settle()
            self.next_batch = None

    def generate(self, prompts: list[PromptRecord], greedy: bool = False, answer: list[PromptRecord] | None = None):
        """Groups of candidates from every generator. The adaptive strategy scores while it samples, so its
        Generations arrive with raw and learning scores; the score stage then skips them. `answer`: prompts also
        answered greedily in the same engine calls; then (samples, answers) is returned."""
        gen = self.recipe.generation
        n, temperature = (1, 0.0) if greedy else (gen.samples_per_prompt, gen.temperature)
        plan = None if greedy else self.sampling_plan()
        count = len(self.generators)
        shards = list(zip(split_evenly(list(enumerate(prompts)), count),
                          split_evenly(list(enumerate(answer or [])), count), strict=True))
        adaptive = plan is not None and plan.strategy == "adaptive"

        def call(k, generator, shard):
            sample, greedy_prompts = ([(i, list(p.messages)) for i, p in part] for part in shard)
            return generator.generate_and_answer.remote(
                sample, n, temperature, gen.top_p, gen.max_tokens, plan,
                self.scorers[k % len(self.scorers)] if adaptive else None,
                [p.as_dict() for _, p in shard[0]] if adaptive else None, greedy_prompts)

        parts = self.supervisor.on_generators(self.generators, [s if s[0] or s[1] else None for s in shards], call,
                                              "eval" if greedy or answer else "generate", self.sync,
                                              self.policy_version)
        samples = [generation for k in sorted(parts) for generation in parts[k][0]]
        return samples if answer is None else (samples, [g for k in sorted(parts) for g in parts[k][1]])

    def sampling_plan(self) -> SamplingPlan:
        gen = self.recipe.generation
        return SamplingPlan(strategy=gen.strategy, n=gen.samples_per_prompt, min_distance=gen.min_distance,
                            max_draws=max(gen.samples_per_prompt, math.ceil(gen.draw_budget * gen.samples_per_prompt)),
                            template=gen.condition_template, settle_after=gen.settle_after)

    def score(self, prompts: list[PromptRecord], generations: list[Generation], scorers: list | None = None
              ) -> Scores:
        """Raw and learning scores per generation (those scored during sampling keep theirs); a failed sample is
        None in both."""
        scorers = scorers or self.scorers
        todo = [g for g in generations if g.rewards is None]
        pairs = [(prompts[g.prompt_index].as_dict(), g.response_texts) for g in todo]
        shards = split_evenly(pairs, len(scorers))
        parts = self.supervisor.on_scorers(
            scorers, shards, lambda _, scorer, shard: scorer.score.remote([r for r, _ in shard], [t for _, t in shard]),
            next((role for role, actors in (("scorer", self.scorers), ("eval_scorer", self.eval_scorers),
                                            ("general_scorer", self.general_scorers)) if actors is scorers),
                 "scorer"))
        results = [parts[k] for k in sorted(parts)]
        fresh = iter([pair for part in results for pair in zip(part.raw, part.learning)])
        both = [(g.rewards, g.learning_rewards) if g.rewards is not None else next(fresh) for g in generations]
        return Scores([raw for raw, _ in both], [learning for _, learning in both])

    def scoring_stats(self, scorers: list) -> dict[str, Any]:
        """Each component's mean raw score (reward/<name>) and failures, merged over the scorers."""
        parts = ray.get([s.take_stats.remote() for s in scorers], timeout=self.supervisor.timeout("score"))
        merged: dict[str, Any] = {"scoring/failed": sum(p["scoring/failed"] for p in parts),
                                  "scoring/failure_reasons": [r for p in parts for r in p["scoring/failure_reasons"]]}
        for key in parts[0]:
            if key.startswith("reward/"):
                merged[key] = mean([p[key] for p in parts if p[key] is not None])
        return merged
