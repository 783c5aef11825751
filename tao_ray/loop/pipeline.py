"""The next iteration's batch, drawn before that iteration starts, so the engines never wait for the learner:

- run.max_staleness 1: sampled (and scored) in a background thread on the weights before update k, while the
  learner trains on batch k. Its samples are one policy version old; the learner corrects them (algorithms.py).
- on-policy with a held-out evaluation due: sampled on the just-synced weights in the same engine call as the
  evaluation's greedy answers, so the engine batches both.

A checkpoint taken while a next batch is out saves the prompt order from before its prompts were taken: a resumed
run draws that batch again instead of skipping it.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass
class NextBatch:
    prompts: list
    order_state: dict[str, Any]
    """The prompt order before these prompts were taken."""
    future: Future | None = None
    """Background sampling and scoring: (generations, scores, scoring stats, seconds)."""
    generations: list | None = None
    """Drawn with the held-out evaluation; scored when the iteration starts."""

    def result(self) -> tuple:
        """(generations, scores or None, scoring stats or None, seconds the sampling took)."""
        if self.future is not None:
            return self.future.result()
        return self.generations, None, None, 0.0

    def settle(self) -> None:
        """Wait for background sampling to end (its result is kept): the engines must be done with the old weights
        before new ones are loaded into them."""
        if self.future is not None:
            self.future.exception()


class Background:
    """One thread: the next batch's sampling never runs twice at once."""

    def __init__(self):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tao-ray-next-batch")

    def submit(self, work) -> Future:
        def timed():
            started = time.perf_counter()
            return (*work(), time.perf_counter() - started)

        return self.executor.submit(timed)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
