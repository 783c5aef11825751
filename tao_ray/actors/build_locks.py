"""Stale build locks of torch's C++ extensions.

DeepSpeed's CPU accelerator loads its shared-memory collective (`deepspeed_shm_comm`) through torch's C++
extension loader, which takes a lock file in the extension's build directory on every load (and holds it for the
whole build when it compiles). A process killed while it holds the lock (an out-of-memory kill, a SIGKILLed
learner) leaves the file behind, and every later load waits for it to vanish: forever. `make install` builds the
op ahead, so at run time the lock is held for milliseconds; one older than `STALE_AFTER_S` is left from a dead
process.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

STALE_AFTER_S = 600.0
"""Older than any real build of DeepSpeed's CPU op on a 2-core machine (about a minute)."""


def stale_locks(root: Path, now: float, stale_after_s: float = STALE_AFTER_S) -> list[Path]:
    """The build locks under `root` (one directory per extension, each maybe holding a `lock`) older than the limit."""
    if not root.is_dir():
        return []
    found = []
    for lock in sorted(root.glob("*/lock")):
        try:
            if now - lock.stat().st_mtime > stale_after_s:
                found.append(lock)
        except FileNotFoundError:  # released meanwhile
            continue
    return found


def extensions_root() -> Path:
    """The directory torch builds this interpreter's C++ extensions in (TORCH_EXTENSIONS_DIR wins). Asked through
    DeepSpeed's CPU op, whose directory torch creates anyway when the op loads."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory("deepspeed_shm_comm", verbose=False)).parent


def clear_stale_build_locks() -> list[Path]:
    """Remove stale locks (logging each) so that a learner does not wait on a dead process. Returns those removed."""
    try:
        root = extensions_root()
    except Exception:  # noqa: BLE001 (an unusual torch layout: then nothing is cleared, as before)
        return []
    removed = []
    for lock in stale_locks(root, time.time()):
        log.warning("removing %s: a build lock %.0f s old, left by a process that died while loading a torch "
                    "extension", lock, time.time() - lock.stat().st_mtime)
        lock.unlink(missing_ok=True)
        removed.append(lock)
    return removed
