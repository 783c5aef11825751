"""Reward functions for the fault tests: slow enough that a scorer can be killed in the middle of a call, or so slow
that the call outlives its deadline."""

import time


def slow_constraints(record: dict, response: str) -> float:
    from tao_ray.rewards.constraints import constraint_reward

    time.sleep(0.1)
    return constraint_reward(record, response)


def hangs(record: dict, response: str) -> float:
    time.sleep(600)
    return 0.0
