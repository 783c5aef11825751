"""The loop's samples: groups of candidates drawn from the generator pool and scored by a scorer pool.

Stateless: the caller (the driver, or the prompt feed drawing a batch ahead) passes the weight sync and the policy
version the generators must serve; a generator that dies mid-call is restarted, refitted to that version and sent
its shard again (runtime/pools.py).
"""

from __future__ import annotations

import math

from tao_ray.config import Recipe
from tao_ray.core.batch import Generation
from tao_ray.core.composition import Scores
from tao_ray.core.sampling import SamplingPlan
from tao_ray.data.prompts import PromptRecord


def split_evenly(items: list, parts: int) -> list[list]:
    """Contiguous, near-equal shards (some empty when there are fewer items than parts)."""
    size = math.ceil(len(items) / parts) if items else 0
    return [items[i * size:(i + 1) * size] for i in range(parts)]


class Rollouts:
    def __init__(self, recipe: Recipe, generators, scorers):
        """`generators`: the run's GeneratorPool; `scorers`: the training ScorerPool (the default for scoring,
        and the one adaptive sampling scores through)."""
        self.recipe, self.generators, self.scorers = recipe, generators, scorers

    def generate(self, prompts: list[PromptRecord], sync, version: int, greedy: bool = False,
                 answer: list[PromptRecord] | None = None):
        """Groups of candidates from every generator, on policy `version`. The adaptive strategy scores while it
        samples, so its Generations arrive with raw and learning scores; the score stage then skips them.
        `answer`: prompts also answered greedily in the same engine calls; then (samples, answers) is returned."""
        gen = self.recipe.generation
        n, temperature = (1, 0.0) if greedy else (gen.samples_per_prompt, gen.temperature)
        plan = None if greedy else self.sampling_plan()
        count = len(self.generators)
        shards = list(zip(split_evenly(list(enumerate(prompts)), count),
                          split_evenly(list(enumerate(answer or [])), count), strict=True))
        adaptive = plan is not None and plan.strategy == "adaptive"

        def args(k: int, shard) -> tuple | None:
            if not (shard[0] or shard[1]):
                return None
            sample, greedy_prompts = ([(i, list(p.messages)) for i, p in part] for part in shard)
            return (sample, n, temperature, gen.top_p, gen.max_tokens, plan,
                    self.scorers.handle(k % len(self.scorers)) if adaptive else None,
                    [p.as_dict() for _, p in shard[0]] if adaptive else None, greedy_prompts)

        parts = self.generators.each_shard("generate_and_answer", [args(k, s) for k, s in enumerate(shards)],
                                           "eval" if greedy or answer else "generate", sync, version)
        samples = [generation for k in sorted(parts) for generation in parts[k][0]]
        return samples if answer is None else (samples, [g for k in sorted(parts) for g in parts[k][1]])

    def sampling_plan(self) -> SamplingPlan:
        gen = self.recipe.generation
        return SamplingPlan(strategy=gen.strategy, n=gen.samples_per_prompt, min_distance=gen.min_distance,
                            max_draws=max(gen.samples_per_prompt, math.ceil(gen.draw_budget * gen.samples_per_prompt)),
                            template=gen.condition_template, settle_after=gen.settle_after)

    def score(self, prompts: list[PromptRecord], generations: list[Generation], scorers=None) -> Scores:
        """Raw and learning scores per generation, by `scorers` (a ScorerPool; default: the training scorers).
        Those scored during sampling keep theirs; a failed sample is None in both."""
        scorers = scorers or self.scorers
        todo = [g for g in generations if g.rewards is None]
        results = _on_scorers(scorers, "score", [(prompts[g.prompt_index].as_dict(), g.response_texts) for g in todo])
        fresh = iter([pair for part in results for pair in zip(part.raw, part.learning)])
        both = [(g.rewards, g.learning_rewards) if g.rewards is not None else next(fresh) for g in generations]
        # Each component's scores, when every group was scored here (none during sampling): in generation order.
        components = {name: [group for part in results for group in part.components[name]]
                      for name in (results[0].components if results and len(todo) == len(generations) else {})}
        return Scores([raw for raw, _ in both], [learning for _, learning in both], components)

    def by_type(self, prompts: list[PromptRecord], generations: list[Generation], scorers) -> list[dict[str, float]]:
        """Per generation (one answer each, as evaluated): whether each behaviour its prompt asks for was met."""
        parts = _on_scorers(scorers, "by_type", [(prompts[g.prompt_index].as_dict(), g.response_texts[0])
                                                 for g in generations])
        return [found for part in parts for found in part]


def _on_scorers(scorers, method: str, pairs: list[tuple[dict, object]]) -> list:
    """scorer k's `method(records, responses)` on the k-th contiguous shard of (record, responses) pairs; the results
    in shard order."""
    shards = split_evenly(pairs, len(scorers))
    parts = scorers.each_shard(method, [([r for r, _ in shard], [t for _, t in shard]) if shard else None
                                        for shard in shards])
    return [parts[k] for k in sorted(parts)]
