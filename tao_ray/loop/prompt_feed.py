"""Where each iteration's prompts, samples and scores come from: the prompt order, and the next batch when it was
drawn ahead of its iteration (pipeline.py) -- in a background thread while the learner trains (run.max_staleness
1), or in the held-out evaluation's engine calls (on-policy).

The driver owns one PromptFeed and asks it for each batch; the feed owns the prompt order and the batch drawn ahead,
so the order a checkpoint saves is always the one before any prompt not yet trained on was taken.
"""

from __future__ import annotations

from typing import Any

from tao_ray.core.batch import Generation
from tao_ray.core.composition import Scores
from tao_ray.data.order import PromptOrder
from tao_ray.data.prompts import PromptRecord
from tao_ray.loop import pipeline
from tao_ray.loop.rollouts import Rollouts


class PromptFeed:
    def __init__(self, train: list[PromptRecord], batch_size: int, order: PromptOrder, rollouts: Rollouts,
                 background: pipeline.Background):
        self.train, self.batch_size, self.order = train, batch_size, order
        self.rollouts, self.background = rollouts, background
        self.next_batch: pipeline.NextBatch | None = None

    def take_prompts(self) -> tuple[list[PromptRecord], dict[str, Any]]:
        """The next batch's prompts and the order before they were taken."""
        before = self.order.state()
        return [self.train[i] for i in self.order.next_batch(self.batch_size)], before

    def take_batch(self, iteration: int, timing: dict[str, float], timed, sync, version: int
                   ) -> tuple[list[PromptRecord], list[Generation], Scores, dict[str, Any]]:
        """This iteration's prompts, samples and scores: drawn now (on policy `version`), or already.
        `timed(timing, stage, iteration)` times a stage and prints its line."""
        ahead, self.next_batch = self.next_batch, None
        if ahead is None:
            prompts = self.take_prompts()[0]
        else:
            prompts = ahead.prompts
            generations, scores, scoring, timing["sampled_ahead"] = ahead.result()
        with timed(timing, "generate", iteration) as note:
            if ahead is None:
                generations = self.rollouts.generate(prompts, sync, version)
            note.append(f"{sum(len(g.response_texts) for g in generations)} samples for {len(prompts)} prompts"
                        + ("" if ahead is None else " (drawn ahead)"))
        if ahead is None or scores is None:
            with timed(timing, "score", iteration) as note:
                scores = self.rollouts.score(prompts, generations)
                scoring = self.rollouts.scorers.stats()
                note.append(f"{sum(map(len, scores.raw))} scored, {scores.failed} failed")
        else:
            timing["score"] = 0.0
        return prompts, generations, scores, scoring

    def draw_in_background(self, sync, version: int) -> None:
        """Sample and score the next batch in the background thread, on policy `version` (the weights before the
        update the learner is about to take)."""
        prompts, before = self.take_prompts()

        def work():
            generations = self.rollouts.generate(prompts, sync, version)
            scores = self.rollouts.score(prompts, generations)
            return generations, scores, self.rollouts.scorers.stats()

        self.next_batch = pipeline.NextBatch(prompts, before, future=self.background.submit(work))

    def drawn_with_evaluation(self, prompts: list[PromptRecord], before: dict[str, Any],
                              generations: list[Generation]) -> None:
        """The next batch's samples came with the evaluation's greedy answers; scored when its iteration starts."""
        self.next_batch = pipeline.NextBatch(prompts, before, generations=generations)

    def settle(self) -> None:
        """Wait for background sampling to end: the engines must be done with the old weights before new ones."""
        if self.next_batch is not None:
            self.next_batch.settle()

    def order_state(self) -> dict[str, Any]:
        """The prompt order to resume from: before a batch drawn ahead was taken."""
        return self.next_batch.order_state if self.next_batch is not None else self.order.state()

    def drop_next_batch(self) -> None:
        """Forget a batch drawn ahead (its prompts are drawn again from a restored order)."""
        if self.next_batch is not None:
            self.next_batch.settle()
            self.next_batch = None

    def restart(self, order: PromptOrder) -> None:
        """Continue from `order` (a checkpoint's, or a fresh one), with no batch drawn ahead."""
        self.drop_next_batch()
        self.order = order
