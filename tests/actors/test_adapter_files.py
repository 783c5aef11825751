import os
import subprocess
import sys

from tao_ray.actors.adapter_files import PREFIX, new_adapter_dir, owner_pid, remove_orphans


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def make(root, name: str, age_s: float, now: float):
    path = root / name
    path.mkdir()
    (path / "adapter_config.json").write_text("{}")
    os.utime(path, (now - age_s, now - age_s))
    return path


def test_a_dead_generators_old_adapter_directory_goes_and_every_other_stays(tmp_path):
    now = 1_000_000.0
    dead = dead_pid()
    orphan = make(tmp_path, f"{PREFIX}{dead}-abc", 7200, now)
    young = make(tmp_path, f"{PREFIX}{dead}-def", 60, now)  # maybe a live generator in another pid namespace
    live = make(tmp_path, f"{PREFIX}{os.getpid()}-ghi", 7200, now)
    unnamed = make(tmp_path, f"{PREFIX}xyz", 7200, now)  # written before directories carried a pid
    other = make(tmp_path, "someone-elses-dir", 7200, now)
    assert remove_orphans(str(tmp_path), now) == [str(orphan)]
    assert not orphan.exists() and all(p.exists() for p in (young, live, unnamed, other))


def test_a_new_adapter_directory_names_this_process():
    path = new_adapter_dir()
    try:
        assert owner_pid(os.path.basename(path)) == os.getpid()
    finally:
        os.rmdir(path)
