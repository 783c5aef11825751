"""One Ray cluster, one vLLM engine and one learner for the whole actor tier (engine start-up dominates)."""

import pytest
import ray

from tao_ray.actors.generator import GeneratorActor, GeneratorSpec
from tao_ray.actors.learner import LearnerActor
from tao_ray.data.demo_model import materialize
from tao_ray.engine.learner import LearnerSpec
from tao_ray.runtime.launch import join_ranks


def training_section(**overrides):
    """The learner's settings exactly as a recipe hands them over (defaults plus overrides; `lora` as a dict)."""
    import dataclasses

    from tao_ray.config import LoraSection, TrainingSection

    if isinstance(overrides.get("lora"), dict):
        overrides["lora"] = LoraSection(**overrides["lora"])
    return dataclasses.replace(TrainingSection(lr=1e-5, micro_batch_size=4), **overrides)


TRAINING = training_section()


@pytest.fixture(scope="session")
def model_dir():
    return str(materialize())


@pytest.fixture(scope="session")
def ray_cluster():
    # Logical CPUs: the session's generator and learner, plus up to 3 more learner ranks and a judge or generator a
    # test starts; the machine has 2 cores, actors mostly take turns. Too few would leave an actor pending forever.
    ray.init(num_cpus=8, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def generator(ray_cluster, model_dir):
    actor = ray.remote(num_cpus=1)(GeneratorActor).remote(
        GeneratorSpec(model_dir, "float32", max_model_len=512, kv_cache_gb=0.25, gpu_memory_utilization=0.5))
    ray.get(actor.ready.remote())
    yield actor
    ray.get(actor.shutdown.remote(), timeout=120)  # the engine's processes and adapter files go with it
    ray.kill(actor)


def start_learners(model_dir, world_size, training=TRAINING):
    cls = ray.remote(num_cpus=1)(LearnerActor)
    # A deadline: an actor that cannot be placed fails the test instead of hanging the suite.
    return join_ranks(lambda: [cls.remote(LearnerSpec(model_dir, "float32", training, "cpu", rank, world_size))
                               for rank in range(world_size)], timeout_s=600)[0]


@pytest.fixture(scope="session")
def learner(ray_cluster, model_dir):
    (actor,) = start_learners(model_dir, 1)
    yield actor
    ray.kill(actor)
