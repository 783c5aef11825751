"""One Ray cluster, one vLLM engine and one learner for the whole actor tier (engine start-up dominates)."""

import pytest
import ray

from tao_ray.actors.generator import GeneratorActor
from tao_ray.actors.learner import LearnerActor
from tao_ray.demo_model import materialize


def training_section(**overrides) -> dict:
    """The learner's settings exactly as a recipe hands them over (defaults plus overrides)."""
    import dataclasses

    from tao_ray.config import TrainingSection

    return dataclasses.asdict(dataclasses.replace(TrainingSection(lr=1e-5, micro_batch_size=4), **overrides))


TRAINING = training_section()


@pytest.fixture(scope="session")
def model_dir():
    return str(materialize())


@pytest.fixture(scope="session")
def ray_cluster():
    # Logical CPUs: generator 1 + learners 3 x 1; the machine has 2 cores, actors mostly take turns.
    ray.init(num_cpus=4, include_dashboard=False, logging_level="warning")
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def generator(ray_cluster, model_dir):
    actor = ray.remote(num_cpus=1)(GeneratorActor).remote(model_dir, "float32", 512, 0.25, 0.5, 0, 1, True)
    ray.get(actor.ready.remote())
    yield actor
    ray.kill(actor)


def start_learners(model_dir, world_size, training=TRAINING):
    cls = ray.remote(num_cpus=1)(LearnerActor)
    learners = [cls.remote(model_dir, "float32", training, "cpu", rank, world_size, 1) for rank in range(world_size)]
    address, port = ray.get(learners[0].rendezvous_address.remote())
    ray.get([learner.setup.remote(address, port) for learner in learners])
    return learners


@pytest.fixture(scope="session")
def learner(ray_cluster, model_dir):
    (actor,) = start_learners(model_dir, 1)
    yield actor
    ray.kill(actor)
