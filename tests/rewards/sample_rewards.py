"""Reward functions for tests/rewards/test_function.py, loaded by name as "tests.rewards.sample_rewards:..."."""

NOT_CALLABLE = 3


def length_reward(record: dict, response: str) -> float:
    return min(len(response) / 100, 1.0)


def raises_reward(record: dict, response: str) -> float:
    raise RuntimeError(f"cannot score prompt {record.get('id')!r}")


def no_args_reward() -> float:
    return 1.0


class Scorers:
    @staticmethod
    def exact(record: dict, response: str) -> float:
        return float(response.strip() == (record.get("answer") or ""))
