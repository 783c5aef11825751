"""One data-parallel learner step, as the driver takes it: shard the batch over the ranks, plan the micro-batches,
train every rank at once, merge their metrics.

In: the learner actors, the iteration's RolloutBatch and the training section. Out: the step's metrics.
"""

from __future__ import annotations

import ray

from tao_ray.batch import RolloutBatch
from tao_ray.core import data_parallel, microbatch


def train_step(learners: list, batch: RolloutBatch, training) -> dict[str, float | None]:
    ranks = len(learners)
    shards = [batch.shard(rank, ranks) for rank in range(ranks)]
    unit = 2 if training.algorithm == "dpo" else 1  # DPO micro-batches hold whole (chosen, rejected) pairs
    micro_batches = max(microbatch.count(shard.lengths(), training.micro_batch_size, training.micro_batch_tokens,
                                         unit) for shard in shards)
    tokens = sum(len(response) for response in batch.response_token_ids)
    denominators = data_parallel.rank_denominators(tokens, len(batch), len(batch) // 2, ranks)
    results = ray.get([learner.train.remote(shard, micro_batches, denominators)
                       for learner, shard in zip(learners, shards)])
    return data_parallel.merge_metrics(results)
