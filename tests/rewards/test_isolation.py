"""IsolatedSampler and InlineSampler: a sample that raises, hangs, crashes its process or returns a non-number gets
None and is counted; every other sample is still scored, in order."""

import functools
import sys
import time
from pathlib import Path

import pytest

from tao_ray.rewards.isolation import InlineSampler, IsolatedSampler
from tests.rewards import isolation_targets as targets

# A regression that makes a hang uncontained must fail here, not sit until the suite-wide timeout.
pytestmark = pytest.mark.timeout(60)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and process groups")


def _run(sampler, responses: list[str], record: dict | None = None) -> list[float | None]:
    return sampler.score([dict(record or {}) for _ in responses], responses)


@pytest.fixture
def isolated():
    with IsolatedSampler(targets.behave, timeout_s=0.5) as sampler:
        yield sampler


def test_values_come_back_in_order_from_one_reused_child(isolated):
    records = [{"value": v} for v in (0.1, 0.2, 0.3)]
    assert isolated.score(records, ["ok"] * 3) == [0.1, 0.2, 0.3]
    pid = isolated._proc.pid
    assert isolated.score(records[:1], ["ok"]) == [0.1]
    assert isolated._proc.pid == pid
    assert (isolated.scored, isolated.failed, isolated.last_failures) == (4, 0, [])


def test_exception_fails_only_that_sample_and_keeps_the_child(isolated):
    assert _run(isolated, ["ok", "raise", "ok"]) == [1.0, None, 1.0]
    pid = isolated._proc.pid
    assert isolated.last_failures == ["sample 1: ValueError: bad"]
    assert (isolated.scored, isolated.failed, isolated.timed_out, isolated.crashed) == (2, 1, 0, 0)
    assert _run(isolated, ["ok"]) == [1.0]
    assert isolated._proc.pid == pid and isolated.last_failures == []


@pytest.mark.parametrize("hang", ["sleep", "spin"])
def test_hang_times_out_and_a_fresh_child_scores_the_rest(isolated, hang):
    _run(isolated, ["ok"])  # start-up is not part of what is timed below
    hung = isolated._proc
    started = time.monotonic()
    assert _run(isolated, ["ok", hang, "ok", "ok"]) == [1.0, None, 1.0, 1.0]
    assert time.monotonic() - started < 5.0
    assert isolated.last_failures == ["sample 1: timed out after 0.5 s"]
    assert (isolated.timed_out, isolated.failed) == (1, 1)
    assert not hung.is_alive()
    assert isolated._proc.pid != hung.pid


@pytest.mark.parametrize(("crash", "reason"), [("exit", "exit code 1"), pytest.param("segv", "killed by SIGSEGV",
                                                                                      marks=posix_only)])
def test_child_that_dies_costs_one_sample(isolated, crash, reason):
    started = time.monotonic()
    assert _run(isolated, ["ok", crash, "ok"]) == [1.0, None, 1.0]
    assert isolated.last_failures == [f"sample 1: reward process died ({reason})"]
    assert (isolated.crashed, isolated.timed_out, isolated.failed) == (1, 0, 1)
    # Death shows up as EOF on the pipe at once; it must not wait out the timeout as a hang would (start-up aside).
    assert time.monotonic() - started < 5.0


def test_interrupted_call_does_not_leave_a_stale_reply_for_the_next_sample(isolated, monkeypatch):
    _run(isolated, ["ok"])
    busy = isolated._proc

    def interrupted(timeout):
        raise KeyboardInterrupt

    monkeypatch.setattr(isolated._conn, "poll", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(isolated, ["ok"], {"value": 0.1})
    # The old child still owed an answer for 0.1; a fresh one answers the new sample.
    assert not busy.is_alive()
    assert _run(isolated, ["ok"], {"value": 0.2}) == [0.2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_timeout_also_kills_processes_that_fn_started(tmp_path):
    pid_file = tmp_path / "pid"
    with IsolatedSampler(targets.behave, timeout_s=1.0) as sampler:
        assert _run(sampler, ["grandchild"], {"pid_file": str(pid_file)}) == [None]
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 3.0
    while _running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(grandchild)


def _running(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a killed process may wait as a zombie until its new parent reaps it


@pytest.mark.parametrize("sampler_type", ["inline", "isolated"])
def test_values_that_are_not_finite_numbers_are_failures(sampler_type):
    fn = targets.behave
    sampler = InlineSampler(fn) if sampler_type == "inline" else IsolatedSampler(fn, timeout_s=2.0)
    with sampler:
        scores = _run(sampler, ["nan", "inf", "string", "none", "true", "ok"])
    assert scores == [None, None, None, None, 1.0, 1.0]
    assert sampler.last_failures == [
        "sample 0: returned nan, not a finite number",
        "sample 1: returned inf, not a finite number",
        "sample 2: returned '0.5' (str), not a number",
        "sample 3: returned None (NoneType), not a number",
    ]


def test_close_and_context_exit_leave_no_child():
    sampler = IsolatedSampler(targets.constant, timeout_s=2.0)
    assert _run(sampler, ["a", "b"]) == [1.0, 1.0]
    proc = sampler._proc
    sampler.close()
    assert not proc.is_alive() and proc.exitcode == 0  # left its loop when asked, was not killed
    sampler.close()  # idempotent
    assert _run(sampler, ["c"]) == [1.0]  # a closed sampler starts a new child on demand
    with sampler:
        proc = sampler._proc
    assert not proc.is_alive()


def test_partial_of_a_module_function_is_accepted():
    with IsolatedSampler(functools.partial(targets.scaled, factor=0.5), timeout_s=2.0) as sampler:
        assert _run(sampler, ["abcd", ""]) == [2.0, 0.0]


def test_fn_the_child_cannot_import_is_refused_loudly():
    with pytest.raises(TypeError, match="top level of an importable module"):
        IsolatedSampler(lambda record, response: 1.0, timeout_s=1.0)
    sampler = IsolatedSampler(targets.Unloadable(), timeout_s=1.0)
    with pytest.raises(RuntimeError, match="ImportError: simulated missing dependency"):
        sampler.start()
    assert sampler._proc is None


@posix_only
def test_a_child_killed_from_outside_while_loading_is_started_once_more(tmp_path):
    log = tmp_path / "loads"
    with IsolatedSampler(targets.KilledWhileLoading(str(log), kills=1), timeout_s=2.0) as sampler:
        assert _run(sampler, ["a", "b"]) == [1.0, 1.0]
        assert sampler.failed == 0
    assert log.read_text().count("load") == 2


@posix_only
def test_a_child_killed_on_every_load_is_refused_after_the_second_try(tmp_path):
    log = tmp_path / "loads"
    sampler = IsolatedSampler(targets.KilledWhileLoading(str(log), kills=5), timeout_s=2.0)
    with pytest.raises(RuntimeError, match="killed by SIGKILL"):
        sampler.start()
    assert sampler._proc is None
    assert log.read_text().count("load") == 2


def test_inline_sampler_catches_exceptions_in_process():
    sampler = InlineSampler(targets.behave)
    assert _run(sampler, ["ok", "raise", "ok"], {"value": 0.25}) == [0.25, None, 0.25]
    assert sampler.last_failures == ["sample 1: ValueError: bad"]
    assert (sampler.scored, sampler.failed) == (2, 1)
    sampler.close()  # nothing to stop, but the interface matches IsolatedSampler


def test_records_and_responses_must_pair_up():
    with pytest.raises(ValueError, match="2 records but 1 responses"):
        InlineSampler(targets.constant).score([{}, {}], ["x"])
