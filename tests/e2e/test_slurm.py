"""cluster/slurm.sbatch under a real (one-node) SLURM: sbatch starts a Ray cluster inside the allocation, submits
a small demo run as a Ray job, follows it to its end and stops every Ray process it started; a job cancelled with
scancel mid-run leaves no Ray process behind either. Skipped, with the reason, where SLURM cannot be installed."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from .cluster import REPO, VENV_BIN, free_port
from .slurm_cluster import SlurmCluster, missing

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(missing() is not None, reason=missing() or "")]

TINY = ["run.iterations=1", "data.max_heldout_prompts=4", "generation.prompts_per_iteration=4",
        "generation.max_tokens=16", "generation.kv_cache_gb=0.25", "resources.learner_cpus=1", "logging.wandb=false",
        "data.transfer_prompts=''", "data.general_prompts=''"]


@pytest.fixture(scope="module")
def slurm():
    cluster = SlurmCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def shared():
    """The job's shared directory: its Ray's temporary files and the run, checkpoints included (GBs), removed after
    the test whatever its outcome: a SLURM job writes outside pytest's tmp_path, so nothing else would."""
    path = Path(tempfile.mkdtemp(prefix="tr-slurm-", dir="/tmp"))  # short: Ray's socket paths live under it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def job_processes(shared: Path) -> list[str]:
    """Live processes of the job's Ray cluster (its own temporary directory, under `shared`)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.info["status"] != psutil.STATUS_ZOMBIE and f"{shared}/ray" in cmdline:
                found.append(cmdline[:200])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def submit(slurm: SlurmCluster, shared: Path, overrides: list[str]) -> str:
    # Every port of the job's Ray a free one, and its own temporary directory: other Ray clusters may run on this
    # machine (the suite's own), and one holding a default port (the dashboard agent's 52365 among them) would leave
    # this head answering every job submission "No available agent".
    ports = (f"--dashboard-agent-listen-port {free_port()} --metrics-export-port {free_port()} "
             f"--ray-client-server-port {free_port()}")
    result = slurm.run(
        "sbatch", "--parsable", "--nodes=1", "--gpus-per-node=0", "--cpus-per-task=2", "--mem=0",
        f"--output={shared}/job-%j.out", "cluster/slurm.sbatch", cwd=REPO,
        env={"RECIPE": "recipes/demo-cpu.yaml", "OVERRIDES": " ".join(overrides), "TAO_RAY_SHARED": str(shared),
             "TAO_RAY_NODE_OPTIONS": f"--num-cpus 4 {ports}", "TAO_RAY_TEMP_DIR": str(shared / "ray"),
             "TAO_RAY_PORT": str(free_port()), "TAO_RAY_DASHBOARD_PORT": str(free_port()),
             "RAY": str(VENV_BIN / "ray"), "TAO_RAY_BIN": str(VENV_BIN), "PYTHON": str(VENV_BIN / "python")})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]


def test_sbatch_runs_the_recipe_on_ray_inside_the_allocation_and_stops_ray(slurm, shared):
    job_id = submit(slurm, shared, [*TINY, f"run.output_dir={shared}/runs"])
    state = slurm.wait(job_id, timeout_s=900)
    out = (shared / f"job-{job_id}.out").read_text()
    assert state == "COMPLETED", out[-6000:]
    assert "all 1 node(s) joined" in out and "job finished with status 0" in out
    assert re.search(r"done \(completed\): held-out reward", out), out[-6000:]
    summary = json.loads((shared / "runs" / "demo-cpu" / "summary.json").read_text())
    assert summary["stopped"] == "completed" and [row["iteration"] for row in summary["iterations"]] == [0, 1]
    assert (shared / "runs" / "demo-cpu" / "checkpoints" / "iter-0001" / "model" / "config.json").is_file()
    assert "Ray stopped on 1 node(s)" in out
    assert job_processes(shared) == []


def test_scancel_mid_run_leaves_no_ray_process(slurm, shared):
    job_id = submit(slurm, shared, [*TINY, "run.iterations=20", f"run.output_dir={shared}/runs"])
    out_file = shared / f"job-{job_id}.out"
    deadline = time.monotonic() + 600
    while "iter 1/20" not in (out_file.read_text() if out_file.exists() else ""):
        assert time.monotonic() < deadline, "the run did not reach its first iteration"
        assert slurm.job_state(job_id) in ("PENDING", "CONFIGURING", "RUNNING"), out_file.read_text()[-6000:]
        time.sleep(3)
    assert slurm.run("scancel", job_id).returncode == 0
    assert slurm.wait(job_id, timeout_s=300) == "CANCELLED"
    deadline = time.monotonic() + 120  # the script's EXIT trap stops Ray; SLURM then kills what is left
    while (left := job_processes(shared)) and time.monotonic() < deadline:
        time.sleep(3)
    assert left == [], left
