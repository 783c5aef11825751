"""faults.gather over the ranks of one group: an exception in a rank is a bug unless another rank died or hung at
the same time (then it is that rank's loss seen from a survivor). Tiny real Ray actors stand in for the ranks; the
learners' own case (gloo's error in a real DeepSpeed rank) is in test_data_parallel.py."""

import os

import pytest
import ray

from tao_ray.runtime import faults

pytestmark = pytest.mark.integration


@ray.remote(num_cpus=0, max_restarts=0)
class Rank:
    def ok(self) -> int:
        return 1

    def raise_(self) -> None:
        raise RuntimeError("Connection closed by peer")

    def die(self) -> None:
        os._exit(1)


def test_an_exception_beside_a_dead_rank_is_a_failure_and_alone_it_is_a_bug(ray_cluster):
    ranks = [Rank.remote(), Rank.remote()]
    try:
        done, failures = faults.gather({0: ranks[0].die.remote(), 1: ranks[1].raise_.remote()}, 60.0,
                                       collective=True)
        assert not done and failures[0].cause.startswith("died") and failures[1].cause == faults.LOST_A_PEER
        with pytest.raises(ray.exceptions.RayTaskError):
            faults.gather({0: ranks[1].ok.remote(), 1: ranks[1].raise_.remote()}, 60.0, collective=True)
        with pytest.raises(ray.exceptions.RayTaskError):  # not a group: the exception is always the method's
            faults.gather({0: ranks[1].raise_.remote()}, 60.0)
    finally:
        for rank in ranks:
            ray.kill(rank)
