"""Faults: every remote call that can block has a deadline, and a call that fails names its actor and the cause.

In: remote calls keyed by actor rank, and the stage's timeout. Out: the results of the calls that succeeded and a
`Failure` for each actor that died or hung. The driver decides what a failure means for its role: a generator or
scorer is restarted (Ray does it, up to resources.max_actor_restarts) and its work redone; a learner failure breaks
the collective, so every rank is restarted from the newest checkpoint (LearnerFailure).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Per-stage deadlines when resources.call_timeout_s is null: generous enough for a 70B model on GPUs (a long
# generation round, a ZeRO-3 step over many ranks, a checkpoint of ~1 TB of optimizer state), yet finite.
STAGE_TIMEOUT_S = {"generate": 7200.0, "eval": 7200.0, "score": 3600.0, "train": 7200.0,
                   "sync": 3600.0, "checkpoint": 7200.0, "control": 600.0}


def stage_timeout(resources, stage: str) -> float:
    """The deadline for one call of `stage`: resources.call_timeout_s when set, else the stage's default. Starting
    (or restarting) an actor, which loads a model, is bounded by resources.startup_timeout_s instead."""
    if stage == "startup":
        return resources.startup_timeout_s
    return resources.call_timeout_s if resources.call_timeout_s is not None else STAGE_TIMEOUT_S[stage]


@dataclass(frozen=True)
class Failure:
    cause: str
    """What happened, in a few words: "died (...)" or "no answer within 30s"."""
    timed_out: bool
    detect_s: float
    """Seconds from the call's submission until the failure was seen."""


class LearnerFailure(Exception):
    """A learner rank died or hung: the data-parallel group is broken and must be restarted whole."""

    def __init__(self, rank: int, failure: Failure):
        super().__init__(f"learner rank {rank} {failure.cause}")
        self.rank, self.failure = rank, failure


def _death_errors() -> tuple[type[BaseException], ...]:
    import ray.exceptions as errors

    names = ("RayActorError", "ActorUnavailableError", "WorkerCrashedError", "OutOfMemoryError", "NodeDiedError")
    return tuple(getattr(errors, name) for name in names if hasattr(errors, name))


def describe(error: BaseException) -> str:
    """"died (ActorDiedError: ...)", or for a deadline "gave no answer in time (GetTimeoutError: ...)", with the
    first sentence of Ray's message and without actor ids."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = re.sub(r"\b[0-9a-f]{24,}\b ?", "", text).split(". ")[0].strip()[:120]
    what = "gave no answer in time" if isinstance(error, TimeoutError) else "died"
    return f"{what} ({type(error).__name__}{': ' + text if text else ''})"


def port_was_taken(error: BaseException) -> bool:
    """A learner rendezvous that failed because its port was taken: rank 0 names a port that was free when it
    looked, and another process (any outgoing connection draws its local port from the same range) can take it
    before the process group listens on it. Starting the ranks again on a new port is the remedy (launch.py)."""
    return "EADDRINUSE" in str(error)


LOST_A_PEER = "raised while another rank of its group died or hung"


def gather(calls: dict[Any, Any], timeout_s: float, collective: bool = False
           ) -> tuple[dict[Any, Any], dict[Any, Failure]]:
    """Wait for every call until the deadline. An exception raised *inside* a method (a bug, bad input) is not a
    fault of the actor and propagates; a dead actor or a call past the deadline becomes a Failure. With
    `collective` (the calls are the ranks of one process group), a rank that raised while another rank died or hung
    is a Failure too (cause LOST_A_PEER): a collective fails in its survivors when a peer goes (gloo's "Connection
    closed by peer", NCCL's errors), so the group is broken, not the code. Where no rank died or hung, the first
    exception propagates as before."""
    import ray

    started = time.perf_counter()
    refs = {ref: key for key, ref in calls.items()}
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    results, failures, raised = {}, {}, {}
    deaths = _death_errors()
    for ref in ready:
        try:
            results[refs[ref]] = ray.get(ref)
        except deaths as error:
            failures[refs[ref]] = Failure(describe(error), False, time.perf_counter() - started)
        except ray.exceptions.RayTaskError as error:
            if not collective:
                raise
            raised[refs[ref]] = error
    for ref in pending:
        failures[refs[ref]] = Failure(f"gave no answer within {timeout_s:g}s", True, time.perf_counter() - started)
    if raised and not failures:
        raise next(iter(raised.values()))
    for key in raised:
        failures[key] = Failure(LOST_A_PEER, False, time.perf_counter() - started)
    return results, failures


def wait_until_back(call: Callable[[], Any], timeout_s: float) -> Failure | None:
    """Call `call()` (a cheap method of an actor Ray is restarting) until it answers: None once the actor is back,
    a Failure when it is dead for good (its restarts used up) or not back within the deadline."""
    import ray
    from ray.exceptions import ActorUnavailableError, RayActorError

    started = time.perf_counter()
    while True:
        left = timeout_s - (time.perf_counter() - started)
        if left <= 0:
            return Failure(f"was not back within {timeout_s:g}s", True, time.perf_counter() - started)
        try:
            ray.get(call(), timeout=left)
            return None
        except ActorUnavailableError:  # still restarting
            time.sleep(0.5)
        except RayActorError as error:
            return Failure(describe(error), False, time.perf_counter() - started)
        except ray.exceptions.GetTimeoutError:
            continue


def _kill_processes(processes: list[tuple[int, float]]) -> int:
    """On the node that ran them: kill the processes still alive with the same start time (a reused pid is left
    alone). Returns how many were killed."""
    import psutil

    killed = 0
    for pid, created in processes:
        try:
            process = psutil.Process(pid)
            if abs(process.create_time() - created) < 1e-3:
                process.kill()
                killed += 1
        except psutil.Error:
            continue
    return killed


def kill_orphans(node_id: str, processes: list[tuple[int, float]], timeout_s: float = 60.0) -> int:
    """Kill a dead actor's child processes (a vLLM engine core outlives its actor when the actor is SIGKILLed, and
    on a GPU node it holds the memory its replacement needs), by a task on the actor's node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not processes:
        return 0
    task = ray.remote(num_cpus=0, max_retries=0)(_kill_processes)
    try:
        return ray.get(task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
                       .remote(processes), timeout=timeout_s)
    except Exception:  # the node itself is gone: so are its processes
        return 0


def child_processes() -> tuple[str, list[tuple[int, float]]]:
    """(node id, [(pid, start time)]) of the calling actor's descendants: what kill_orphans needs later."""
    import os

    import psutil
    import ray

    children = psutil.Process(os.getpid()).children(recursive=True)
    return ray.get_runtime_context().get_node_id(), [(c.pid, c.create_time()) for c in children]
