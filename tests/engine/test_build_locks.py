import os
import time

from tao_ray.engine.build_locks import OP, STALE_AFTER_S, clear_stale_shm_op_lock, remove_if_stale


def _lock(directory, age_s, now):
    directory.mkdir(exist_ok=True)
    lock = directory / "lock"
    lock.write_text("")
    os.utime(lock, (now - age_s, now - age_s))
    return lock


def test_only_a_lock_older_than_any_build_is_removed(tmp_path):
    now = 1_000_000.0
    building = _lock(tmp_path / "building", 5, now)
    assert remove_if_stale(building, now) is None and building.exists()
    stale = _lock(tmp_path / "stale", STALE_AFTER_S + 1, now)
    assert remove_if_stale(stale, now) == STALE_AFTER_S + 1 and not stale.exists()
    # A second rank finding it gone reports nothing.
    assert remove_if_stale(stale, now) is None


def test_the_ops_stale_lock_in_torchs_extensions_directory_is_removed_and_no_other(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    now = time.time()
    other = _lock(tmp_path / "cuda_op", STALE_AFTER_S + 60, now)
    stale = _lock(tmp_path / OP, STALE_AFTER_S + 60, now)
    assert clear_stale_shm_op_lock() is not None
    assert not stale.exists() and other.exists()
    assert clear_stale_shm_op_lock() is None
