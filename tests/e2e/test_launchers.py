"""The cluster scripts against real Ray heads on this machine, with token authentication: cluster/slurm.sbatch in
its dry run (a head and a joined raylet, a cheap `--check` job, Ray stopped), and cluster/local.sh start / status /
stop with cluster/submit.sh --no-wait and --follow.

Other Ray clusters may run on the machine. Each test gives its cluster its own temporary directory and free
ports, checks that the scripts' own `stop` ended every process of that cluster and nothing else (bystander
processes that look like another cluster's must survive it), and kills whatever is left in teardown.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from .cluster import REPO, VENV_BIN, free_port, kill_cluster

pytestmark = pytest.mark.e2e

JOB_ID = re.compile(r"^tao-ray-demo-cpu-\d{8}-\d{6}-[0-9a-f]{6}$")


@pytest.fixture
def gcs_port() -> int:
    return free_port()


@pytest.fixture
def root(gcs_port):
    # Short: Ray's socket paths under it must stay below the Unix limit of 107 characters.
    path = Path(tempfile.mkdtemp(prefix="tr-", dir="/tmp"))
    yield path
    kill_cluster(path, gcs_port)


def base_env(root: Path, gcs_port: int) -> dict[str, str]:
    """The caller's environment without Ray's variables or the venv on PATH (as on a cluster started by hand)."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN]
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TAO_RAY_"))},
            "PATH": os.pathsep.join(path), "RAY": str(VENV_BIN / "ray"), "PYTHON": sys.executable,
            "TAO_RAY_BIN": str(VENV_BIN), "TAO_RAY_PORT": str(gcs_port), "TAO_RAY_STOP_GRACE_S": "3"}


def cluster_processes(temp_dir: Path, gcs_port: int) -> list[str]:
    """Live processes that name the cluster's session directory or its GCS address."""
    address = re.compile(rf"address=\S*:{gcs_port}$")
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            cmdline = process.info["cmdline"] or []
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(f"{temp_dir}/session_" in part or address.search(part) for part in cmdline):
                found.append(" ".join(cmdline)[:200])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def bystanders(root):
    """Processes shaped like another cluster's (its session directory, its GCS address): a targeted stop must
    leave them alone."""
    other = root / "other" / "ray" / "session_2026-01-01_00-00-00_000000_1"
    started = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", f"--log-dir={other}/logs",
                                 f"--gcs-address=127.0.0.1:{free_port()}"]),
               subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                                 "--session-dir=/tmp/ray/session_2026-01-01_00-00-00_000000_2"])]
    yield started
    for process in started:
        process.kill()
        process.wait()


def test_the_sbatch_dry_run_starts_a_two_node_cluster_submits_and_stops_it(root, gcs_port, bystanders):
    env = {**base_env(root, gcs_port), "TAO_RAY_DRY_RUN": "1", "TAO_RAY_SHARED": str(root),
           "TAO_RAY_TEMP_DIR": str(root / "ray"), "TAO_RAY_NODE_OPTIONS": "--num-cpus 1",
           "RECIPE": "recipes/demo-cpu.yaml", "OVERRIDES": f"--check run.output_dir={root}/runs"}
    # Output to a file, not a pipe: a Ray daemon left holding a pipe would keep the test waiting past the script.
    log = root / "sbatch.out"
    with log.open("w") as sink:
        result = subprocess.run(["bash", "cluster/slurm.sbatch"], cwd=REPO, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, timeout=600)
    out = log.read_text()
    assert result.returncode == 0, out[-6000:]
    srun = [line for line in out.splitlines() if line.startswith("dry run: srun")]
    assert [line.split(" -w localhost ")[1].split()[:2] for line in srun] == [
        ["bash", "cluster/local.sh"]] * 3
    assert [line.split("cluster/local.sh ")[1].split()[0] for line in srun] == ["start", "join", "stop"]
    assert "all 2 node(s) joined" in out
    assert "ok: recipes/demo-cpu.yaml" in out, out[-6000:]
    assert re.search(r"Job 'tao-ray-demo-cpu-[\w-]+' succeeded", out)

    (token,) = root.glob("tao-ray/clusters/dry-run-*/token")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in token.parent.glob("ray-*.log")) == ["ray-localhost-0.log", "ray-localhost-1.log"]
    assert cluster_processes(root / "ray", gcs_port) == []
    assert all(process.poll() is None for process in bystanders), "the stop ended another cluster's process"


def test_local_sh_start_status_stop_with_submit_no_wait_and_follow(root, gcs_port, bystanders):
    env = {**base_env(root, gcs_port), "RAY_AUTH_TOKEN_PATH": str(root / "token"),
           "TAO_RAY_DASHBOARD_PORT": str(free_port())}

    def script(name: str, *args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", f"cluster/{name}", *args], cwd=REPO, env={**env, **(extra or {})},
                              capture_output=True, text=True, timeout=300)

    def submit(*args: str) -> subprocess.CompletedProcess:
        return script("submit.sh", *args, extra={"RAY_ADDRESS": f"http://127.0.0.1:{env['TAO_RAY_DASHBOARD_PORT']}"})

    started = script("local.sh", "start", "--num-cpus", "1", "--temp-dir", str(root / "ray"),
                     "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
                     "--metrics-export-port", str(free_port()))
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    assert stat.S_IMODE((root / "token").stat().st_mode) == 0o600
    assert (root / "token.cluster").read_text().split() == [f"gcs_port={gcs_port}", f"temp_dir={root}/ray"]

    # Right after start, `ray status` may answer "No cluster status" until the autoscaler's first report.
    deadline = time.monotonic() + 60
    while True:
        status = script("local.sh", "status")
        if re.search(r"Active:\n 1 node_\w+\n", status.stdout) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert status.returncode == 0 and re.search(r"Active:\n 1 node_\w+\n", status.stdout), status.stdout

    ok = submit("--no-wait", "recipes/demo-cpu.yaml", "--check", f"run.output_dir={root}/runs")
    assert ok.returncode == 0 and JOB_ID.match(ok.stdout.strip()), ok.stdout + ok.stderr[-3000:]
    followed = submit("--follow", ok.stdout.strip())
    assert followed.returncode == 0, followed.stdout[-3000:] + followed.stderr[-3000:]
    assert "ok: recipes/demo-cpu.yaml" in followed.stdout

    # A relative output dir inside a Ray job is a one-line error: the job fails, and --follow says so.
    bad = submit("--no-wait", "recipes/demo-cpu.yaml", "run.output_dir=runs")
    assert bad.returncode == 0 and JOB_ID.match(bad.stdout.strip())
    failed = submit("--follow", bad.stdout.strip())
    assert failed.returncode == 1 and "did not succeed" in failed.stderr, failed.stderr[-3000:]
    assert "tao-ray: error:" in failed.stdout and "absolute path" in failed.stdout

    stopped = script("local.sh", "stop")
    assert stopped.returncode == 0 and f"stopping the cluster in {root}/ray" in stopped.stdout, stopped.stderr
    assert cluster_processes(root / "ray", gcs_port) == []
    assert all(process.poll() is None for process in bystanders), "the stop ended another cluster's process"
