"""The one reward both sides of `benchmarks/peer_trl.py` train on: the fraction of a prompt's constraints that a
response meets (the demo's verifier), as a plain Python function.

tao-ray calls `reward(record, response)` through its `function` scorer (`scoring.function.target=
benchmarks.peer_reward:reward`); TRL calls `trl_reward(prompts, completions, constraints=...)`, which unpacks its
batch and calls the same `reward` per completion. Light on imports: the TRL side runs in its own venv.
"""

from __future__ import annotations

import json
from typing import Any

from tao_ray.rewards.constraints import constraint_reward

TARGET = "benchmarks.peer_reward:reward"


def reward(record: dict[str, Any], response: str) -> float:
    """tao-ray's contract: the prompt record (with its "constraints") and the response text."""
    return constraint_reward(record, response)


def _text(completion: Any) -> str:
    """A TRL completion: plain text, or (conversational datasets) a list of messages ending with the answer."""
    if isinstance(completion, str):
        return completion
    return completion[-1]["content"] if completion else ""


def trl_reward(prompts: list, completions: list, constraints: list[str], **_: Any) -> list[float]:
    """TRL's contract: one score per completion. `constraints` is the dataset column, one JSON list per row (a JSON
    string, because Arrow would merge the constraints' differing keys into one struct padded with nulls)."""
    return [reward({"constraints": json.loads(c)}, _text(completion))
            for completion, c in zip(completions, constraints)]
