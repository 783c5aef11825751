"""Reward names in recipes -> reward functions `(record: dict, response: str) -> float`."""

from __future__ import annotations

from collections.abc import Callable

from tao_ray.rewards.constraints import constraint_reward

RewardFn = Callable[[dict, str], float]

REWARDS: dict[str, RewardFn] = {"constraints": constraint_reward}


def resolve(name: str) -> RewardFn:
    if name not in REWARDS:
        raise KeyError(f"unknown reward {name!r}; known: {', '.join(sorted(REWARDS))}")
    return REWARDS[name]
