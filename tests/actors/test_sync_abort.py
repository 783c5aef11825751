"""A weight sync that waits on its receivers ends within seconds once its abort check names a reason (a learner
rank seen dead), and otherwise behaves as ray.get with a deadline."""

import time

import pytest
import ray

from tao_ray.sync.driver import SendersLost, get_unless

pytestmark = pytest.mark.integration


@ray.remote(num_cpus=0)
class Receiver:
    """Stands in for a generator: its call waits on an argument not yet produced, as one fetching a payload from a
    node that left does."""

    def receive(self, payload) -> float:
        return 1.0


@ray.remote(num_cpus=0)
def never(seconds: float) -> bytes:
    time.sleep(seconds)
    return b"weights"


def test_an_abort_ends_the_wait_within_its_polls(ray_cluster):
    payload = never.remote(3600)
    stuck = Receiver.remote().receive.remote(payload)
    reasons = iter([None, None, "learner rank 0 died"])
    started = time.perf_counter()
    with pytest.raises(SendersLost, match="weight sync abandoned: learner rank 0 died"):
        get_unless([stuck], timeout_s=600, abort=lambda: next(reasons))
    assert time.perf_counter() - started < 60  # three polls of a second each, not the 600 s deadline
    ray.cancel(payload, force=True)


def test_without_a_reason_it_returns_the_results_or_times_out_like_ray_get(ray_cluster):
    receiver = Receiver.remote()
    assert get_unless([receiver.receive.remote(b"w"), receiver.receive.remote(b"v")], 60, abort=lambda: None) == [1, 1]
    with pytest.raises(ray.exceptions.GetTimeoutError):
        get_unless([never.remote(30)], timeout_s=2, abort=lambda: None)
