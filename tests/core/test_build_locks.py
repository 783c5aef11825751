import os

from tao_ray.actors.build_locks import STALE_AFTER_S, stale_locks


def _lock(root, name, age_s, now):
    directory = root / name
    directory.mkdir()
    lock = directory / "lock"
    lock.write_text("")
    os.utime(lock, (now - age_s, now - age_s))
    return lock


def test_only_locks_older_than_any_build_are_stale(tmp_path):
    now = 1_000_000.0
    old = _lock(tmp_path, "deepspeed_shm_comm", STALE_AFTER_S + 1, now)
    _lock(tmp_path, "cpu_adam", 5, now)  # a build in progress
    (tmp_path / "fused_adam").mkdir()  # built, no lock
    assert stale_locks(tmp_path, now) == [old]


def test_a_missing_extensions_directory_has_no_locks(tmp_path):
    assert stale_locks(tmp_path / "absent", 0.0) == []


def test_a_stale_lock_in_torchs_extensions_directory_is_removed(tmp_path, monkeypatch):
    import time

    from tao_ray.actors.build_locks import clear_stale_build_locks

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    stale = _lock(tmp_path, "old_op", STALE_AFTER_S + 60, time.time())
    fresh = _lock(tmp_path, "building_op", 1, time.time())
    assert clear_stale_build_locks() == [stale]
    assert not stale.exists() and fresh.exists()
