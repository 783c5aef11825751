"""One data-parallel learner step, as the driver takes it: shard the batch over the ranks, plan the micro-batches,
train every rank at once, merge their metrics.

In: the iteration's RolloutBatch, the learner count and the training section. Out: each rank's
call arguments (`plan`), then the step's metrics (`data_parallel.merge_metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tao_ray.core import algorithms, data_parallel, microbatch
from tao_ray.core.batch import RolloutBatch


@dataclass(frozen=True)
class StepPlan:
    shards: list[RolloutBatch]
    """One shard of whole groups per rank (some may be empty)."""
    micro_batches: int
    """The same count on every rank: ZeRO's gradient reduction is collective."""
    denominators: dict[str, float]
    """Each rank's share of the whole batch's tokens, rows and pairs."""


def plan(batch: RolloutBatch, ranks: int, training) -> StepPlan:
    shards = [batch.shard(rank, ranks) for rank in range(ranks)]
    unit = algorithms.get(training.algorithm).rows_per_unit  # e.g. DPO's (chosen, rejected) pairs stay whole
    micro_batches = max(microbatch.count(shard.lengths(), training.micro_batch_size, training.micro_batch_tokens,
                                         unit) for shard in shards)
    tokens = sum(len(response) for response in batch.response_token_ids)
    return StepPlan(shards, micro_batches, data_parallel.rank_denominators(tokens, len(batch), len(batch) // 2,
                                                                           ranks))

