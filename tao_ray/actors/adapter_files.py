"""Where a generator keeps the LoRA adapter it serves, and the cleanup of those a dead generator left.

vLLM loads an adapter from a directory, so each adapter sync writes one (a few MB) under the system's temporary
directory, and the generator removes it when the next adapter replaces it or the generator shuts down. A generator
killed without shutdown (a supervised restart uses ray.kill) cannot: its directory names its process id, so that a
later generator on the node removes it once that process is gone and the directory is older than `ORPHAN_AFTER_S`
(the age guards a live generator in another process namespace that shares the directory).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "tao-ray-adapter-"
ORPHAN_AFTER_S = 3600.0


def new_adapter_dir() -> str:
    return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")


def owner_pid(name: str) -> int | None:
    """The process id a directory's name carries, or None for any other name."""
    if not name.startswith(PREFIX):
        return None
    pid = name[len(PREFIX):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_orphans(root: str | None = None, now: float | None = None,
                   older_than_s: float = ORPHAN_AFTER_S) -> list[str]:
    """Remove adapter directories under `root` (the temporary directory) whose process is gone and that are older
    than `older_than_s`; returns their paths."""
    root_path = Path(root or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    for path in root_path.glob(f"{PREFIX}*"):
        pid = owner_pid(path.name)
        try:
            old = now - path.stat().st_mtime > older_than_s
        except FileNotFoundError:
            continue
        if pid is not None and old and path.is_dir() and not process_alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed
