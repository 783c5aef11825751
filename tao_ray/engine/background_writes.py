"""Checkpoint files written by a background thread of the learner, while the next iteration runs.

The state is copied first (a memcpy, fractions of a second), then written from the copy; training goes on with
the live tensors. Files are written in submission order by one thread; `wait` blocks until every one is on disk
and re-raises a failed write, so the driver renames a checkpoint into place only once it is complete.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

WRITER_NICENESS = 10
"""How much lower the writer thread's CPU priority is (Linux niceness, added): a write overlaps the next
iteration's sampling and training, which decide the iteration's time; the write only has to be done before the
next checkpoint."""


def _lower_this_threads_priority() -> None:
    # On Linux a thread is a task of its own, so setpriority with its native id renices this thread only.
    if sys.platform == "linux":
        try:
            thread = threading.get_native_id()
            lowered = min(os.getpriority(os.PRIO_PROCESS, thread) + WRITER_NICENESS, 19)
            os.setpriority(os.PRIO_PROCESS, thread, lowered)
        except OSError:
            pass  # a container may forbid it; the writes then compete at normal priority


class BackgroundWriter:
    def __init__(self):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tao-ray-checkpoint",
                                           initializer=_lower_this_threads_priority)
        self.pending: list[Future] = []
        self.seconds = 0.0

    def submit(self, write, *args) -> None:
        def timed():
            started = time.perf_counter()
            write(*args)
            return time.perf_counter() - started

        self.pending.append(self.executor.submit(timed))

    def done(self) -> bool:
        return all(future.done() for future in self.pending)

    def wait(self) -> float:
        """Seconds the writes took (not how long this call waited)."""
        pending, self.pending = self.pending, []
        return sum(future.result() for future in pending)


def background_checkpoint_engine(writer: BackgroundWriter, config_params=None):
    """DeepSpeed's torch checkpoint engine, with each file's tensors copied to CPU at once and written by `writer`:
    engine.save_checkpoint returns after the copies (it still takes every rank's collective part)."""
    import torch
    from deepspeed.checkpoint.utils import clone_tensors_for_torch_save
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    class BackgroundTorchCheckpointEngine(TorchCheckpointEngine):
        def save(self, state_dict, path: str):
            snapshot = clone_tensors_for_torch_save(state_dict)
            writer.submit(lambda: torch.save(snapshot, path,
                                             _use_new_zipfile_serialization=self.zipfile_serialization))

    return BackgroundTorchCheckpointEngine(config_params)
