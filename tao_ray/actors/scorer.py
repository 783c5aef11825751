"""ScorerActor: applies the recipe's reward to (prompt, response) pairs in batches.

In: prompt records (plain dicts) and one list of response texts per record. Out: one list of scores per record;
a score is None where the reward function raised, and the failure is counted, never fatal.
"""

from __future__ import annotations

from tao_ray.rewards import registry


class ScorerActor:
    def __init__(self, reward: str):
        self.reward_name = reward
        self.reward_fn = registry.resolve(reward)
        self.failed = 0

    def score(self, records: list[dict], responses: list[list[str]]) -> tuple[list[list[float | None]], int]:
        """Returns (scores per record, failures in this call)."""
        failed_before = self.failed
        scores = [[self._score_one(record, text) for text in texts]
                  for record, texts in zip(records, responses, strict=True)]
        return scores, self.failed - failed_before

    def _score_one(self, record: dict, text: str) -> float | None:
        try:
            return float(self.reward_fn(record, text))
        except Exception:  # one bad sample must not sink the batch: it is excluded and counted instead
            self.failed += 1
            return None
