"""Ranks whose rendezvous port was taken before they joined are started again on another (launch.join_ranks)."""

import os
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


@ray.remote(num_cpus=1, max_restarts=0)
class BundleRank:
    """A rank in one placement bundle: rank 0 names a rendezvous; rank 1 can die in its setup, as a rank whose node
    left the cluster does."""

    def __init__(self, dies: bool = False):
        self.dies = dies

    def rendezvous_address(self) -> tuple[str, int]:
        return "127.0.0.1", 1

    def setup(self, address: str, port: int) -> int:
        if self.dies:
            os._exit(1)
        return 0


def test_an_attempt_that_fails_frees_its_ranks_bundles_for_the_next(ray_cluster):
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = placement_group([{"CPU": 1}, {"CPU": 1}])
    ray.get(group.ready(), timeout=60)

    made: list[list] = []  # every attempt's handles, held as a caller's traceback may hold them

    def make_ranks(dies: bool) -> list:
        made.append([BundleRank.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
            group, placement_group_bundle_index=rank)).remote(dies and rank == 1) for rank in range(2)])
        return made[-1]

    try:
        with pytest.raises(ray.exceptions.RayActorError):
            join_ranks(lambda: make_ranks(dies=True), timeout_s=60)
        # The failed attempt's rank 0 went with it, so the next attempt gets its bundle (it would wait for it as
        # long as that rank lived, and time out here).
        ranks, setups = join_ranks(lambda: make_ranks(dies=False), timeout_s=60)
        assert setups == [0, 0]
        for rank in ranks:
            ray.kill(rank)
    finally:
        remove_placement_group(group)
