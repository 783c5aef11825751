"""The algorithm registry: one record per algorithm is all the driver, learner and planner read."""

import dataclasses

import pytest

from tao_ray.config import CHOICES, LoraSection, TrainingSection
from tao_ray.core import algorithms
from tao_ray.core.batch import Generation
from tao_ray.core.composition import Scores


def test_every_algorithm_a_recipe_may_name_has_a_record():
    assert set(CHOICES["training.algorithm"]) == set(algorithms.ALGORITHMS)


@pytest.mark.parametrize(("algorithm", "kl_coef", "needed"),
                         [("grpo", 0.02, True), ("grpo", 0.0, False), ("rloo", 0.1, True), ("rloo", 0.0, False),
                          ("dpo", 0.0, True), ("rft", 0.02, False)])
def test_a_reference_only_where_the_loss_reads_one(algorithm, kl_coef, needed):
    training = dataclasses.replace(TrainingSection(), algorithm=algorithm, kl_coef=kl_coef)
    assert algorithms.uses_reference(training) is needed
    # LoRA's reference is the policy with its adapter off: still run, never a second copy (memory.py).
    lora = dataclasses.replace(training, lora=LoraSection(r=8))
    assert algorithms.uses_reference(lora) is needed


@pytest.mark.parametrize(("algorithm", "rows"), [("grpo", 8), ("rloo", 8), ("dpo", 4), ("rft", 2)])
def test_each_record_builds_its_own_batch(algorithm, rows):
    generations = [Generation(i, [1, 2], ["a", "b", "c", "d"], [[3], [4], [5], [6]], policy_version=i,
                              response_logprobs=[[-0.5], [-0.6], [-0.7], [-0.8]]) for i in range(2)]
    raw = [[0.0, 1.0, 0.5, 0.9], [0.2, 0.8, 0.4, 0.6]]
    training = dataclasses.replace(TrainingSection(), algorithm=algorithm, min_score=0.5)
    batch = algorithms.get(algorithm).build_batch(generations, Scores(raw, raw), training)
    assert len(batch) == rows
    assert len(batch.policy_versions) == len(batch.behaviour_logprobs) == rows
    assert batch.shard(0, 2).policy_versions == [0] * (rows // 2)
    assert algorithms.get(algorithm).rows_per_unit == (2 if algorithm == "dpo" else 1)
