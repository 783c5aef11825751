"""A stale build lock of DeepSpeed's CPU shared-memory op.

DeepSpeed's CPU accelerator loads its shared-memory collective (`deepspeed_shm_comm`) through torch's C++
extension loader, which takes a lock file in the op's build directory on every load (and holds it for the whole
build when it compiles). A process killed while it holds the lock (an out-of-memory kill, a SIGKILLed learner)
leaves the file behind, and every later load waits for it to vanish: forever. `make install` builds the op ahead,
so at run time the lock is held for milliseconds, and a build from scratch takes about a minute on 2 cores: a lock
older than `STALE_AFTER_S` is left from a dead process. Only this op's lock is touched: other extensions (CUDA
ops among them) may build for longer, and their directories are not ours.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

OP = "deepspeed_shm_comm"
STALE_AFTER_S = 600.0


def lock_age_s(lock: Path, now: float) -> float | None:
    """Seconds since the lock was taken, or None when there is none."""
    try:
        return now - lock.stat().st_mtime
    except FileNotFoundError:
        return None


def remove_if_stale(lock: Path, now: float, stale_after_s: float = STALE_AFTER_S) -> float | None:
    """Remove the lock if it is older than the limit; returns its age when this call removed it. Every learner rank
    on a node may try at once: only the one whose unlink succeeds reports it."""
    age = lock_age_s(lock, now)
    if age is None or age <= stale_after_s:
        return None
    try:
        lock.unlink()
    except FileNotFoundError:  # another rank removed it first
        return None
    return age


def shm_op_lock() -> Path:
    """The op's lock file in torch's extensions directory for this interpreter (TORCH_EXTENSIONS_DIR wins)."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(OP, verbose=False)) / "lock"


def clear_stale_shm_op_lock() -> float | None:
    """Call on CPU before DeepSpeed loads the op, so that a learner does not wait on a dead process."""
    try:
        lock = shm_op_lock()
    except Exception:  # noqa: BLE001 (an unusual torch layout: then nothing is cleared, as before)
        return None
    age = remove_if_stale(lock, time.time())
    if age is not None:
        log.warning("removed %s: a build lock %.0f s old, left by a process that died while loading DeepSpeed's "
                    "CPU op", lock, age)
    return age
