"""Every scorer a recipe can name, each one `ScorerSpec` in `SCORERS`: adding a scorer means one spec here (plus its
module and test); the loader, the recipe checks, the file checks, the scorer actor and the A/B commands all read it.

A spec says how to build the scoring component (an object with `score(records, responses) -> [float | None]`),
what to check before any actor starts (its options, a file it reads, a field every scored prompt must carry), what
it needs on cuda and whether it needs the judge engines. Per-sample verifiers are wrapped so one bad sample cannot
stop the run: the trusted built-in `constraints` and the official `instructions` checks run inline; sql, math and
user functions run in a child process with the recipe's per-sample timeout. Batch scorers (reward_model, http,
judge) score a whole list at once. A component may also report per-sample metrics beside its score: it names them
in `metric_names` and leaves the latest values in `last_metrics` (logged as reward/<scorer>/<metric>).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tao_ray.core.composition import parse_expression
from tao_ray.rewards import prechecks
from tao_ray.rewards.constraints import constraint_results, constraint_reward
from tao_ray.rewards.isolation import InlineSampler, IsolatedSampler

Fail = Callable[[str, str], Exception]


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
        import ray  # only inside a scorer actor; the recipe checks read this module without Ray

        judge = self.judges[self.calls % len(self.judges)]
        self.calls += 1
        return ray.get(judge.judge.remote(records, responses))


# ---- builders: (the recipe's scoring section as a plain dict, device, judge actors) -> component ----------------
# The scorers' own modules are imported when a recipe names them: math-verify, the IFEval checks and transformers
# take seconds to load, and most runs use one scorer.

def _constraints(scoring: dict[str, Any], device: str, judges: list | None):
    return InlineSampler(constraint_reward)


def _instructions(scoring: dict[str, Any], device: str, judges: list | None):
    from tao_ray.rewards.instructions import InstructionsComponent

    return InstructionsComponent()


def _sql(scoring: dict[str, Any], device: str, judges: list | None):
    from tao_ray.rewards.sql import sql_reward

    sql = scoring["sql"]
    return IsolatedSampler(functools.partial(sql_reward, database=sql["database"], timeout_s=sql["timeout_s"],
                                             max_rows=sql["max_rows"]), scoring["timeout_s"])


def _math(scoring: dict[str, Any], device: str, judges: list | None):
    from tao_ray.rewards.math import math_reward

    return IsolatedSampler(math_reward, scoring["timeout_s"])


def _function(scoring: dict[str, Any], device: str, judges: list | None):
    from tao_ray.rewards.function import load_function

    return IsolatedSampler(load_function(scoring["function"]["target"]), scoring["timeout_s"])


def _http(scoring: dict[str, Any], device: str, judges: list | None):
    from tao_ray.rewards.http import HttpReward

    http = scoring["http"]
    return ServiceComponent(HttpReward(http["url"], http["timeout_s"], http["retries"], http["batch_size"]))


def _reward_model(scoring: dict[str, Any], device: str, judges: list | None):
    from tao_ray.rewards.reward_model import RewardModel

    rm = scoring["reward_model"]
    return ServiceComponent(RewardModel(rm["path"], device, rm["batch_size"], rm["max_length"]))


def _judge(scoring: dict[str, Any], device: str, judges: list | None):
    if not judges:
        raise ValueError("the judge scorer needs judge actors; none were started")
    return ServiceComponent(JudgeComponent(judges))


def _instruction_results(record: dict[str, Any], response: str) -> dict[str, float]:
    from tao_ray.rewards.instructions import instruction_results

    return instruction_results(record, response)


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    build: Callable[[dict[str, Any], str, list | None], Any]
    """(scoring section as a dict, device, judge actors) -> the component."""
    precheck: Callable[[Any, Callable[[str], Any], Fail], None] | None = None
    """(the recipe's ScoringSection, path resolver, fail) -> raises: its options and files, before any actor starts."""
    record_field: str | None = None
    """A field of the prompt record every prompt it scores must carry."""
    record_field_label: str = ""
    """How an error names that field."""
    cuda_check: Callable[[Any, Fail], None] | None = None
    """(recipe, fail) -> raises: what it needs on cuda (a GPU for its model)."""
    needs_judge: bool = False
    """It scores through the judge engines (JudgeActor), which the run then starts."""
    by_type: Callable[[dict[str, Any], str], dict[str, float]] | None = None
    """(record, response) -> {behaviour: 1.0 met / 0.0 not}: one entry per constraint or instruction type the
    prompt asks for, for the per-behaviour diagnostics of every evaluated set (None: the scorer has no types)."""


SCORERS: dict[str, ScorerSpec] = {spec.name: spec for spec in (
    ScorerSpec("constraints", _constraints, by_type=constraint_results),
    ScorerSpec("instructions", _instructions, record_field="instruction_id_list",
               record_field_label='"instruction_id_list" (with "kwargs")', by_type=_instruction_results),
    ScorerSpec("sql", _sql, precheck=prechecks.sql_database),
    ScorerSpec("math", _math, record_field="answer", record_field_label='"answer"'),
    ScorerSpec("reward_model", _reward_model, precheck=prechecks.reward_model, cuda_check=prechecks.reward_model_gpu),
    ScorerSpec("judge", _judge, cuda_check=prechecks.judge_gpus, needs_judge=True),
    ScorerSpec("function", _function, precheck=prechecks.function_target),
    ScorerSpec("http", _http, precheck=prechecks.http_url),
)}


def parse(expression: str) -> list[tuple[str, float]]:
    """A reward expression's (scorer, weight) terms, every scorer known. Raises ValueError with a one-line reason."""
    terms = parse_expression(expression)
    for name, _ in terms:
        if name not in SCORERS:
            raise ValueError(f"names an unknown scorer {name!r}; known: {', '.join(SCORERS)}")
    return terms


def names(*expressions: str | None) -> set[str]:
    """The scorers named by any of these reward expressions (None ones skipped)."""
    return {name for expression in expressions if expression for name, _ in parse(expression)}


def needs_judge(*expressions: str | None) -> bool:
    return any(SCORERS[name].needs_judge for name in names(*expressions))


def build(name: str, scoring: dict[str, Any], device: str = "cpu", judges: list | None = None):
    """One component for scorer `name`; `scoring` is the recipe's scoring section as a plain dict."""
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}")
    return SCORERS[name].build(scoring, device, judges)
