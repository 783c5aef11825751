"""Ranks whose rendezvous port was taken before they joined are started again on another (launch.join_ranks)."""

import socket

import pytest
import ray

from tao_ray.actors.learner import LearnerActor
from tao_ray.engine.learner import LearnerSpec
from tao_ray.runtime.launch import join_ranks

from .conftest import TRAINING

pytestmark = pytest.mark.integration


class TakenPortLearner(LearnerActor):
    """A real learner whose rendezvous names `port`, one that another process holds: what happens when the port is
    taken between rank 0 naming it and the process group listening on it."""

    def __init__(self, spec: LearnerSpec, port: int | None = None):
        super().__init__(spec)
        self.port = port

    def rendezvous_address(self) -> tuple[str, int]:
        address, port = super().rendezvous_address()
        return address, self.port or port


def test_ranks_start_again_on_a_new_port_when_theirs_was_taken(ray_cluster, model_dir):
    cls = ray.remote(num_cpus=1)(TakenPortLearner)
    made = []

    def make_ranks() -> list:
        made.append(cls.remote(LearnerSpec(model_dir, "float32", TRAINING), port=None if made else taken))
        return made[-1:]

    with socket.socket() as holder:
        holder.bind(("", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        (learner,), (rank,) = join_ranks(make_ranks, timeout_s=600)
    try:
        assert len(made) == 2 and learner is made[1] and rank == 0
        assert ray.get(learner.rendezvous_address.remote())[1] != taken
        assert ray.get(learner.ping.remote()) == 0  # the second rank joined its group and is serving
    finally:
        ray.kill(learner)
