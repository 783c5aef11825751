"""Run a per-sample reward function so that one bad sample cannot stop the run.

In: a reward function `fn(record: dict, response: str) -> float`, and parallel lists of prompt records and response
texts. Out: one score per sample, in order; a score is None where fn raised, returned something that is not a finite
number, hung past the timeout, or killed its process. Each failure is counted and described in one line.

Which sampler:
- `InlineSampler` calls fn in this process. Use it for pure, trusted, fast verifiers (such as `constraint_reward`):
  it catches exceptions but cannot stop a hang or survive a crash, and costs nothing per sample.
- `IsolatedSampler` calls fn in one long-lived child process, with a timeout per sample. Use it for user code,
  verifiers that execute generated code, heavy regexes, or native extensions: anything that might hang or crash.
  A Python thread cannot be killed, so a hang can only be stopped by killing a process.

fn must be picklable by reference for `IsolatedSampler`: a function defined at the top level of an importable module
(or a `functools.partial` of one with picklable arguments), because the child imports it by its module and name.
Lambdas and nested functions are refused when the sampler is built. As with any "spawn" multiprocessing, a script
that uses an IsolatedSampler needs the `if __name__ == "__main__":` guard, because the child re-imports the script.
"""

from __future__ import annotations

import abc
import math
import multiprocessing
import os
import pickle
import signal
import threading
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

RewardFn = Callable[[dict, str], Any]

_REASON_CHARS = 200
# How long close() lets an idle child leave its loop on its own (normally milliseconds) before killing it.
_CLOSE_GRACE_S = 1.0
_KILL_WAIT_S = 5.0
_ORPHAN_CHECK_S = 1.0


class _NotAScore(ValueError):
    """fn returned normally, but with a value that is not a finite number."""


def _one_line(text: str) -> str:
    text = " ".join(text.split())  # a multi-line message would break one-reason-per-line logs
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _NotAScore):
        return _one_line(str(exc))
    return _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _coerce_score(value: Any) -> float:
    """float(value) for numbers (bool, int, numpy and 0-d tensor scalars included); raises _NotAScore otherwise."""
    # float("0.5") would parse a string, which is a verifier bug rather than a score: only __float__ counts.
    if not hasattr(type(value), "__float__"):
        raise _NotAScore(f"returned {_one_line(repr(value))} ({type(value).__name__}), not a number")
    score = float(value)
    if not math.isfinite(score):
        raise _NotAScore(f"returned {score}, not a finite number")
    return score


class _Sampler(abc.ABC):
    """Counters and context-manager plumbing shared by both samplers; each says how one sample is scored."""

    def __init__(self, fn: RewardFn):
        self.fn = fn
        self.scored = 0  # samples that got a score
        self.failed = 0  # samples that got None, for any reason (timed_out and crashed included)
        self.timed_out = 0
        self.crashed = 0  # the child died while scoring (os._exit, segfault, out-of-memory kill)
        self.last_failures: list[str] = []  # one line per failed sample of the latest score() call, for logging

    def score(self, records: list[dict], responses: list[str]) -> list[float | None]:
        """One score per (records[i], responses[i]), in order; None for a failed sample, explained in last_failures."""
        if len(records) != len(responses):
            raise ValueError(f"{len(records)} records but {len(responses)} responses")
        self.last_failures = []
        scores = [self._score_one(i, record, response) for i, (record, response) in enumerate(zip(records, responses))]
        self.scored += sum(s is not None for s in scores)
        return scores

    @abc.abstractmethod
    def _score_one(self, index: int, record: dict, response: str) -> float | None:
        """The score of one sample, or None after recording why in _fail."""

    def _fail(self, index: int, reason: str) -> None:
        self.failed += 1
        self.last_failures.append(f"sample {index}: {reason}")

    def close(self) -> None:  # noqa: B027 (an optional hook: only samplers that own a child process override it)
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class InlineSampler(_Sampler):
    """Calls fn in this process. Exceptions and non-numbers become None; hangs and crashes are not contained."""

    def _score_one(self, index: int, record: dict, response: str) -> float | None:
        try:
            return _coerce_score(self.fn(record, response))
        except Exception as exc:  # KeyboardInterrupt and SystemExit still stop the run: they are the user's intent
            self._fail(index, _describe(exc))
            return None


class IsolatedSampler(_Sampler):
    """Calls fn in one reused child process; a sample that raises, hangs past `timeout_s` or kills the child gets
    None, and the next sample is scored by a fresh child started on demand.

    The timeout covers one sample's call (not the child's start-up, which has its own `start_timeout_s`, because
    importing fn's module may take longer than a sample). A child that cannot load fn at all is a setup error, not a
    per-sample one: score() and start() raise RuntimeError then. Not thread-safe: one sampler per scoring thread.
    The child is stopped by close(), on leaving a `with` block, when the sampler is garbage-collected, at interpreter
    exit, or by itself once it notices that its parent has died.
    """

    def __init__(self, fn: RewardFn, timeout_s: float, start_timeout_s: float = 120.0):
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        super().__init__(fn)
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        try:
            # Pickled once here so a lambda or nested function fails at construction, not in the child.
            self._fn_bytes = pickle.dumps(fn)
        except Exception as exc:
            raise TypeError(
                f"IsolatedSampler needs fn defined at the top level of an importable module: {_describe(exc)}"
            ) from exc
        # spawn, not fork: forking a process that has threads (Ray workers, torch, gRPC) can copy a lock held by a
        # thread that does not exist in the child, and the child deadlocks. forkserver would make restarts cheaper,
        # but its server is process-wide state shared with other libraries, and restarts only follow a failure that
        # already cost up to timeout_s. spawn is also the one method that exists on Linux, macOS and Windows.
        self._context = multiprocessing.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._finalizer: weakref.finalize | None = None

    def start(self) -> None:
        """Start the child now instead of at the first sample (idempotent)."""
        if self._proc is not None:
            return
        # A child SIGKILLed or SIGTERMed while it loads was killed from outside (the kernel's out-of-memory killer,
        # or this scorer's own worker taking its children along as Ray stops it), not by fn's module: one more start
        # tells the two apart. Any other start-up failure is fn's, and a second try would repeat it.
        for attempt in (1, 2):
            self._spawn()
            status, detail = self._await_ready()
            if status == "ready":
                return
            self._discard_child()
            if not (status == "killed" and attempt == 1):
                raise RuntimeError(f"reward process could not load {_fn_name(self.fn)}: {detail}")

    def _spawn(self) -> None:
        parent_conn, child_conn = self._context.Pipe()
        # Not daemonic, so fn may itself use multiprocessing (code-execution verifiers often do); the finalizer
        # below stops the child at interpreter exit before multiprocessing waits for its non-daemonic children.
        proc = self._context.Process(target=_child_main, args=(child_conn, self._fn_bytes), name="tao-ray-reward")
        proc.start()
        # Our copy of the child's end must go, or the pipe would never report EOF when the child dies.
        child_conn.close()
        self._proc, self._conn = proc, parent_conn
        self._finalizer = weakref.finalize(self, _stop_child, proc, parent_conn)

    def _await_ready(self) -> tuple[str, str]:
        """("ready", ""), or why not: "error" (fn could not be loaded), "timeout", "died", or "killed" (by SIGKILL
        or SIGTERM, which come from outside)."""
        assert self._conn is not None and self._proc is not None
        try:
            if self._conn.poll(self.start_timeout_s):
                status, detail = self._conn.recv()
                return status, detail or ""
            return "timeout", f"no answer within start_timeout_s={self.start_timeout_s:g} s"
        except (EOFError, OSError):
            self._proc.join(_CLOSE_GRACE_S)
            code = self._proc.exitcode
            # SIGKILL and SIGTERM come from outside; a SIGSEGV or SIGABRT is the module's own doing.
            from_outside = code is not None and -code in (signal.SIGKILL, signal.SIGTERM)
            return ("killed" if from_outside else "died",
                    f"it exited during start-up ({_exit_reason(self._proc)}); see its stderr")

    def _score_one(self, index: int, record: dict, response: str) -> float | None:
        self.start()
        assert self._conn is not None and self._proc is not None
        try:
            self._conn.send((record, response))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            return self._child_died(index)
        except Exception as exc:  # the sample could not be pickled; the pipe is untouched, so the child stays
            self._fail(index, f"could not send the sample to the reward process: {_describe(exc)}")
            return None
        try:
            # poll() also returns True when the child has died (EOF), so a crash is seen at once, not at the timeout.
            if not self._conn.poll(self.timeout_s):
                self._discard_child()
                self.timed_out += 1
                self._fail(index, f"timed out after {self.timeout_s:g} s")
                return None
            status, value = self._conn.recv()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return self._child_died(index)
        except BaseException:
            # Interrupted mid-sample (Ctrl-C, a cancelled task): the child would answer this sample's call next time.
            self._discard_child()
            raise
        if status == "ok":
            return value
        self._fail(index, value)
        return None

    def _child_died(self, index: int) -> None:
        assert self._proc is not None
        self._proc.join(_CLOSE_GRACE_S)
        reason = _exit_reason(self._proc)
        self._discard_child()
        self.crashed += 1
        self._fail(index, f"reward process died ({reason})")
        return None

    def _discard_child(self) -> None:
        """Kill the current child (with anything it started) and forget it; the next sample starts a fresh one."""
        if self._proc is None:
            return
        _kill(self._proc)
        assert self._finalizer is not None and self._conn is not None
        self._finalizer.detach()
        self._conn.close()
        self._proc = self._conn = self._finalizer = None

    def close(self) -> None:
        """Stop the child. The sampler can still be used afterwards: it starts a new child on demand."""
        if self._finalizer is not None:
            self._finalizer()  # runs _stop_child once; detached, so neither GC nor exit runs it again
        self._proc = self._conn = self._finalizer = None


def _fn_name(fn: Any) -> str:
    target = getattr(fn, "func", fn)  # functools.partial
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _exit_reason(proc: BaseProcess) -> str:
    code = proc.exitcode
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _kill(proc: BaseProcess) -> None:
    # The child leads its own process group, so the group kill also takes whatever fn started (a subprocess running
    # generated code, say) instead of leaving it spinning on a shared machine.
    if proc.pid is not None and hasattr(os, "killpg"):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:  # the group is already gone, or the child had not yet made its own group
            pass
    proc.kill()
    proc.join(_KILL_WAIT_S)  # bounded: a process stuck in uninterruptible I/O must not stall the run


def _stop_child(proc: BaseProcess, conn: Connection) -> None:
    """Ask an idle child to leave, else kill it. Run by close(), GC or interpreter exit: never raises."""
    try:
        try:
            conn.send(None)
        except Exception:  # the child is gone already; _kill below reaps it
            pass
        conn.close()
        proc.join(_CLOSE_GRACE_S)
        if proc.exitcode is None:
            _kill(proc)
    except Exception:
        pass


def _child_main(conn: Connection, fn_bytes: bytes) -> None:
    """The child's loop: load fn, report ready, then answer one (record, response) at a time until told to stop."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()  # see _kill; also keeps a terminal's Ctrl-C for the parent, which then stops us itself
    parent_pid = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    try:
        fn = pickle.loads(fn_bytes)
    except BaseException as exc:
        conn.send(("error", _describe(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent closed its end or died
            return
        if message is None:
            return
        record, response = message
        try:
            reply = ("ok", _coerce_score(fn(record, response)))
        except BaseException as exc:  # even SystemExit: this process exists to absorb whatever fn does
            reply = ("error", _describe(exc))
        conn.send(reply)


def _exit_when_orphaned(parent_pid: int) -> None:
    # An idle child sees EOF when its parent dies, but one stuck in fn would run forever; this thread ends it.
    # (It needs the GIL, so a hang inside C code that holds the GIL outlives the parent until that code returns.)
    while os.getppid() == parent_pid:
        time.sleep(_ORPHAN_CHECK_S)
    os._exit(1)
