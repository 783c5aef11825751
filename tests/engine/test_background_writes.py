import os
import sys
import threading

import pytest

from tao_ray.engine.background_writes import WRITER_NICENESS, BackgroundWriter


def test_writes_run_in_order_and_wait_reraises_a_failure():
    writer = BackgroundWriter()
    written = []
    writer.submit(written.append, 1)
    writer.submit(written.append, 2)
    assert writer.wait() >= 0 and written == [1, 2]

    def fail():
        raise OSError("disk full")

    writer.submit(fail)
    with pytest.raises(OSError, match="disk full"):
        writer.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
def test_the_writer_thread_alone_runs_at_lower_priority():
    writer = BackgroundWriter()
    seen = []
    writer.submit(lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
    writer.wait()
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [min(base + WRITER_NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the rest of the process keeps its priority
