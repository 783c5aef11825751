"""Checkpoint files written by a background thread of the learner, while the next iteration runs.

The state is copied first (a memcpy, fractions of a second), then written from the copy; training goes on with
the live tensors. Files are written in submission order by one thread; `wait` blocks until every one is on disk
and re-raises a failed write, so the driver renames a checkpoint into place only once it is complete.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundWriter:
    def __init__(self):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tao-ray-checkpoint")
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
