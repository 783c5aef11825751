"""Reward functions for tests/rewards/test_isolation.py. They live in an importable module, not in the test file,
because IsolatedSampler's child imports fn by module and name; the response text says how to misbehave."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def behave(record: dict, response: str):
    if response == "ok":
        return record.get("value", 1.0)
    if response == "raise":
        raise ValueError("bad")
    if response == "sleep":
        time.sleep(60)
    if response == "spin":
        while True:
            pass
    if response == "exit":
        os._exit(1)
    if response == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if response == "grandchild":
        # A verifier that runs generated code in a subprocess, which then hangs along with the verifier.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        Path(record["pid_file"]).write_text(str(child.pid))
        time.sleep(60)
    return {"nan": math.nan, "inf": math.inf, "string": "0.5", "none": None, "true": True}[response]


def scaled(record: dict, response: str, factor: float) -> float:
    return factor * len(response)


def constant(record: dict, response: str) -> float:
    return 1.0


def _refuse_to_load():
    raise ImportError("simulated missing dependency")


class Unloadable:
    """Pickles in the parent but cannot be rebuilt in the child, like a fn whose module fails to import there."""

    def __call__(self, record: dict, response: str) -> float:
        return 0.0

    def __reduce__(self):
        return _refuse_to_load, ()


def _load_after_kills(log: str, kills: int):
    # The first `kills` children to load this are killed by a signal, as the kernel's out-of-memory killer or a
    # worker that is being stopped would kill them; later children load normally. Each load appends a line to log.
    with open(log, "a") as file:
        file.write("load\n")
    if Path(log).read_text().count("load") <= kills:
        os.kill(os.getpid(), signal.SIGKILL)
    return constant


class KilledWhileLoading:
    """Pickles in the parent; the first `kills` children that rebuild it are SIGKILLed while loading."""

    def __init__(self, log: str, kills: int):
        self.log, self.kills = log, kills

    def __call__(self, record: dict, response: str) -> float:
        return 1.0

    def __reduce__(self):
        return _load_after_kills, (self.log, self.kills)
