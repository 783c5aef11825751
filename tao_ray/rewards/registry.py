"""Scorer names in recipes -> scoring components: objects with `score(records, responses) -> [float | None]`.

Per-sample verifiers are wrapped so one bad sample cannot stop the run: the trusted built-in `constraints` and the
official `instructions` checks run inline; sql, math and user functions run in a child process with the recipe's
per-sample timeout. Batch scorers (reward_model, http, judge) score a whole list at once. Heavy imports happen only
for the scorers a recipe names. A component may also report per-sample metrics beside its score: it names them in
`metric_names` and leaves the latest values in `last_metrics` (logged as reward/<scorer>/<metric>).
"""

from __future__ import annotations

import functools
from typing import Any

from tao_ray.rewards.constraints import constraint_reward
from tao_ray.rewards.isolation import InlineSampler, IsolatedSampler


class ServiceComponent:
    """A batch scorer whose failure loses the whole batch (a service down): every sample becomes None."""

    def __init__(self, scorer):
        self.scorer = scorer
        self.last_failures: list[str] = []

    def score(self, records: list[dict], responses: list[str]) -> list[float | None]:
        self.last_failures = []
        try:
            scores = self.scorer.score(records, responses)
        except Exception as exc:  # one broken batch must not end the run: it is excluded and counted
            self.last_failures = [f"batch of {len(responses)}: {type(exc).__name__}: {exc}"[:300]]
            return [None] * len(responses)
        return scores

    def close(self) -> None:
        pass


class JudgeComponent:
    """Scores through the shared JudgeActor(s), round-robin across calls."""

    def __init__(self, judges: list):
        self.judges, self.calls = judges, 0

    def score(self, records: list[dict], responses: list[str]) -> list[float | None]:
        import ray

        judge = self.judges[self.calls % len(self.judges)]
        self.calls += 1
        return ray.get(judge.judge.remote(records, responses))


def build(name: str, scoring: dict[str, Any], device: str = "cpu", judges: list | None = None):
    """One component for scorer `name`; `scoring` is the recipe's scoring section as a plain dict."""
    timeout_s = scoring["timeout_s"]
    if name == "constraints":
        return InlineSampler(constraint_reward)
    if name == "instructions":
        from tao_ray.rewards.instructions import InstructionsComponent

        return InstructionsComponent()
    if name == "sql":
        from tao_ray.rewards.sql import sql_reward

        sql = scoring["sql"]
        return IsolatedSampler(functools.partial(sql_reward, database=sql["database"], timeout_s=sql["timeout_s"],
                                                 max_rows=sql["max_rows"]), timeout_s)
    if name == "math":
        from tao_ray.rewards.math import math_reward

        return IsolatedSampler(math_reward, timeout_s)
    if name == "function":
        from tao_ray.rewards.function import load_function

        return IsolatedSampler(load_function(scoring["function"]["target"]), timeout_s)
    if name == "http":
        from tao_ray.rewards.http import HttpReward

        http = scoring["http"]
        return ServiceComponent(HttpReward(http["url"], http["timeout_s"], http["retries"], http["batch_size"]))
    if name == "reward_model":
        from tao_ray.rewards.reward_model import RewardModel

        rm = scoring["reward_model"]
        return ServiceComponent(RewardModel(rm["path"], device, rm["batch_size"], rm["max_length"]))
    if name == "judge":
        if not judges:
            raise ValueError("the judge scorer needs judge actors; none were started")
        return ServiceComponent(JudgeComponent(judges))
    raise ValueError(f"unknown scorer {name!r}")
