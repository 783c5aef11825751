"""The CUDA weight-sync path: NCCL broadcast from learner rank 0 into a vLLM engine, under ZeRO-2 (parameters read
in place) and ZeRO-3 (each parameter gathered, broadcast, released). Skipped without 2 GPUs."""

import pytest
import ray

from tao_ray.actors.generator import GeneratorActor, GeneratorSpec
from tao_ray.actors.learner import LearnerActor
from tao_ray.engine.learner import LearnerSpec
from tao_ray.sync import driver as weight_sync

from .conftest import training_section

pytestmark = [pytest.mark.integration, pytest.mark.gpu(count=2)]


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_nccl_broadcast_puts_learner_weights_into_engine(ray_cluster, model_dir, zero_stage):
    generator = ray.remote(num_cpus=1, num_gpus=1)(GeneratorActor).remote(GeneratorSpec(
        model_dir, "bfloat16", max_model_len=512, kv_cache_gb=None, gpu_memory_utilization=0.3, enforce_eager=False,
        device="cuda"))
    learner = ray.remote(num_cpus=1, num_gpus=1)(LearnerActor).remote(
        LearnerSpec(model_dir, "bfloat16", training_section(zero_stage=zero_stage), "cuda"))
    try:
        address, port = ray.get(learner.rendezvous_address.remote())
        ray.get([learner.setup.remote(address, port), generator.ready.remote()])
        sync = weight_sync.NcclBroadcastSync([learner], [generator], tensor_parallel_size=1)
        sync.init()
        embedding = "model.embed_tokens.weight"
        before = ray.get(generator.parameter_sum.remote(embedding))
        ray.get(learner.scale_parameter.remote(embedding, 1.5))
        sync.update(1)
        after = ray.get(generator.parameter_sum.remote(embedding))
        assert after == pytest.approx(ray.get(learner.parameter_sum.remote(embedding)), rel=1e-3)
        assert after != pytest.approx(before, rel=1e-3)
    finally:
        ray.kill(learner)
        ray.kill(generator)
