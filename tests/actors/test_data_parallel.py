"""Data parallelism does not change the step: one update with 2 learner ranks equals the update with 1 rank on the
same batch, for every algorithm, including a batch that leaves one rank without a group.

Real DeepSpeed ranks (ZeRO-2, gloo) on a 2-layer model built from the demo model's config: the property is about
how losses and gradients add up over ranks, which the model's depth does not change, and the small model keeps
the comparison exact enough for a tight fp32 tolerance. Two steps in a row, so that Adam's second step (which,
unlike its first, depends on the gradients' scale) is compared too; the global gradient norm is compared as well.
"""

import random

import pytest
import ray
import torch

from tao_ray.actors.learner import LearnerActor
from tao_ray.core.batch import Generation, build_best_of_n_batch, build_preference_batch, build_rollout_batch
from tao_ray.core.data_parallel import merge_metrics
from tao_ray.core.learning import plan
from tao_ray.engine.learner import LearnerSpec
from tao_ray.runtime.launch import join_ranks

from .conftest import training_section

pytestmark = pytest.mark.integration

# grpo and rloo share the learner's loss (they differ in the batch's advantages), so one pair of learner groups
# takes a grpo step, then an rloo step.
CONFIGS = {
    "grpo+rloo-token": dict(algorithm="grpo", loss_aggregation="token"),
    "grpo-sequence": dict(algorithm="grpo", loss_aggregation="sequence"),
    "dpo": dict(algorithm="dpo"),
    "rft": dict(algorithm="rft", min_score=0.0),
}
BATCHES = {"grpo+rloo-token": ("grpo", "rloo")}


@pytest.fixture(scope="module")
def small_model_dir(model_dir, tmp_path_factory):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    config.num_hidden_layers, config.vocab_size = 2, 4096  # token ids below stay under 4000
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("small-model")
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    return str(directory)


def synthetic_generations(groups: int, seed: int) -> tuple[list[Generation], list[list[float]]]:
    """Groups of 4 responses whose lengths differ a lot, so shards of whole groups hold very different token
    counts; distinct rewards within each group, so every algorithm keeps every group."""
    rng = random.Random(seed)
    generations, rewards = [], []
    for g in range(groups):
        prompt = [rng.randrange(2, 4000) for _ in range(rng.randrange(3, 12))]
        responses = [[rng.randrange(2, 4000) for _ in range(rng.choice((2, 5, 17, 40)))] for _ in range(4)]
        generations.append(Generation(g, prompt, ["?"] * 4, responses))
        rewards.append([0.1 * rng.randrange(11) + 0.01 * i for i in range(4)])
    return generations, rewards


def build(algorithm: str, generations, rewards):
    if algorithm == "dpo":
        return build_preference_batch(generations, rewards, 0.0)
    if algorithm == "rft":
        return build_best_of_n_batch(generations, rewards, 0.0)
    return build_rollout_batch(generations, rewards, algorithm)


def start(model_dir: str, world_size: int, training) -> list:
    cls = ray.remote(num_cpus=0)(LearnerActor)
    return join_ranks(lambda: [cls.remote(LearnerSpec(model_dir, "float32", training, "cpu", rank, world_size))
                               for rank in range(world_size)])[0]


def step(learners: list, batch, training) -> dict:
    """One optimizer step the way the driver takes it: sharding, micro-batch plan, metric merge."""
    step_plan = plan(batch, len(learners), training)
    return merge_metrics(ray.get([
        learner.train.remote(step_plan.shards[rank], step_plan.micro_batches, step_plan.denominators)
        for rank, learner in enumerate(learners)]))


def difference(one: list, two: list, before: dict) -> tuple[float, float]:
    """(max |parameter difference|, |update difference| / |update|) between the 1-rank and the 2-rank learner.
    The second is the one to judge by: Adam divides each gradient element by its own magnitude, so an element
    whose gradient is a near-cancelling sum moves by +-lr on float rounding alone, whatever the rank count."""
    a, b = ray.get(one[0].state_dict.remote()), ray.get(two[0].state_dict.remote())
    assert a.keys() == b.keys() == before.keys()
    largest = max(float((a[k] - b[k]).abs().max()) for k in a)
    update = sum(float((a[k] - before[k]).double().pow(2).sum()) for k in a) ** 0.5
    apart = sum(float((a[k] - b[k]).double().pow(2).sum()) for k in a) ** 0.5
    return largest, apart / update if update else apart


@pytest.mark.parametrize("name", list(CONFIGS))
def test_two_ranks_take_the_same_step_as_one(ray_cluster, small_model_dir, name):
    # float32 compute: under bf16 autocast DeepSpeed also reduces gradients across ranks in bf16, and this test
    # checks the sharding and the denominators to float rounding.
    training = training_section(lr=1e-4, micro_batch_size=4, kl_coef=0.05, max_grad_norm=1e6, compute_dtype="float32",
                                **CONFIGS[name])
    one, two = start(small_model_dir, 1, training), start(small_model_dir, 2, training)
    try:
        before = ray.get(one[0].state_dict.remote())
        assert difference(one, two, before)[0] == 0.0
        # Batch 1: 3 groups -> rank 0 gets groups 0 and 2, rank 1 group 1 (different token counts).
        # Batch 2: 1 group -> rank 1 gets nothing and must neither weigh in nor scale the step down.
        steps = [(algorithm, groups, seed) for algorithm in BATCHES.get(name, (training.algorithm,))
                 for groups, seed in ((3, 1), (1, 2))]
        for algorithm, groups, seed in steps:
            batch = build(algorithm, *synthetic_generations(groups, seed))
            assert len(batch.shard(0, 2)) > 0 and (groups > 1) == (len(batch.shard(1, 2)) > 0)
            metrics_one, metrics_two = step(one, batch, training), step(two, batch, training)
            largest, relative = difference(one, two, before)
            print(f"{name} ({algorithm}): {groups} group(s): 1 vs 2 ranks: max |param difference| {largest:.3e}, "
                  f"relative update difference {relative:.3e}; grad norm {metrics_one['grad_norm']:.6g} vs "
                  f"{metrics_two['grad_norm']:.6g}; loss {metrics_one['loss']:.6g} vs {metrics_two['loss']:.6g}")
            assert relative < 1e-3
            assert metrics_two["grad_norm"] == pytest.approx(metrics_one["grad_norm"], rel=1e-4)
            assert metrics_two["loss"] == pytest.approx(metrics_one["loss"], rel=1e-4, abs=1e-6)
            assert metrics_two["samples"] == metrics_one["samples"] == len(batch)
    finally:
        for learner in one + two:
            ray.kill(learner)


def test_a_rank_that_dies_before_the_step_breaks_the_group_without_a_bug_in_the_survivor(ray_cluster,
                                                                                         small_model_dir):
    from tao_ray.runtime import faults

    training = training_section(lr=1e-4, micro_batch_size=4, compute_dtype="float32", algorithm="grpo")
    learners = start(small_model_dir, 2, training)
    try:
        batch = build("grpo", *synthetic_generations(3, 1))
        step_plan = plan(batch, 2, training)
        ray.kill(learners[0], no_restart=True)
        calls = {rank: learner.train.remote(step_plan.shards[rank], step_plan.micro_batches, step_plan.denominators)
                 for rank, learner in enumerate(learners)}
        # Rank 1 runs its backward into the gradient all-reduce and gloo finds its peer gone: it raises inside the
        # method. Counted as one more failure of the broken group, not raised as if the step's code were wrong.
        done, failures = faults.gather(calls, 120.0, collective=True)
        assert not done and set(failures) == {0, 1}, (done, failures)
        assert failures[0].cause.startswith("died") and failures[1].cause == faults.LOST_A_PEER
    finally:
        for learner in learners:
            ray.kill(learner)
