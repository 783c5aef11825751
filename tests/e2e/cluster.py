"""A real multi-node Ray cluster on one machine: a head and more raylets joined with `ray start --address`, each
with its own CPUs and a custom resource naming it, under token authentication, started through cluster/local.sh.

The raylets run with a PATH that does not name the venv (as on a cluster started by hand): whatever a job needs
must not depend on it. Teardown kills every process of this cluster, found by its own temporary directory, and
their children (vLLM engine processes included), leaving any other Ray on the machine alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    def __init__(self, nodes: int = 2, cpus_per_node: int = 2):
        self.nodes, self.cpus = nodes, cpus_per_node
        # Short: Ray's socket paths under it must stay below the Unix limit of 107 characters.
        self.root = Path(tempfile.mkdtemp(prefix="tr-", dir="/tmp"))
        self.token_path = self.root / "token"
        self.port, self.dashboard_port = free_port(), free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN]
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
                    "PATH": os.pathsep.join(path), "RAY": str(VENV_BIN / "ray"), "PYTHON": sys.executable,
                    "RAY_AUTH_TOKEN_PATH": str(self.token_path), "TAO_RAY_PORT": str(self.port),
                    "TAO_RAY_DASHBOARD_PORT": str(self.dashboard_port)}

    def _local(self, *args: str) -> None:
        subprocess.run(["bash", str(REPO / "cluster" / "local.sh"), *args], env=self.env, cwd=REPO, check=True,
                       capture_output=True, text=True, timeout=180)

    def start(self) -> LocalCluster:
        # Every port free: another Ray's head on the machine holds the defaults (the dashboard agent's 52365
        # among them; without its agent a head answers every job submission "No available agent").
        self._local("start", "--num-cpus", str(self.cpus), "--resources", '{"node_0": 1}', "--temp-dir",
                    str(self.root / "ray"), "--ray-client-server-port", str(free_port()),
                    "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()))
        for node in range(1, self.nodes):
            self._join(node)
        self.wait_for_nodes(range(self.nodes))
        return self

    def _join(self, node: int) -> None:
        head = f"{socket.gethostbyname(socket.gethostname())}:{self.port}"
        self._local("join", head, "--num-cpus", str(self.cpus), "--resources", f'{{"node_{node}": 1}}',
                    "--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()))

    def add_node(self) -> None:
        """A node that joins later (node_N, N the next number)."""
        self._join(self.nodes)
        self.wait_for_nodes([self.nodes])
        self.nodes += 1

    def wait_for_nodes(self, numbers, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            status = subprocess.run([str(VENV_BIN / "ray"), "status", "--address", f"127.0.0.1:{self.port}"],
                                    env={**self.env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True)
            if all(f"node_{n}" in status.stdout for n in numbers):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster did not come up with nodes {list(numbers)}: {status.stdout[-2000:]}")
            time.sleep(2)

    def _raylets(self) -> dict[str, object]:
        """{node id: its raylet process} for every live raylet of this cluster."""
        import psutil

        found = {}
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            if any(str(self.root) in part for part in cmdline):
                node = next((part.split("=", 1)[1] for part in cmdline if part.startswith("--node_id=")), None)
                if node:
                    found[node] = process
        return found

    def head_node_id(self) -> str:
        return next(node for node, process in self._raylets().items()
                    if "node_0," in " ".join(process.info["cmdline"]))

    def kill_node(self, node_id: str) -> int:
        """Take one node away as a preemption would: its raylet and every process under it (its object store,
        workers, actors and their vLLM engines) killed at once. Returns how many processes were killed."""
        raylet = self._raylets()[node_id]
        return kill_all([raylet, *raylet.children(recursive=True)])

    def submit(self, *args: str, timeout_s: float = 1500) -> subprocess.CompletedProcess:
        """cluster/submit.sh from the repository root, as the README tells users."""
        return subprocess.run(["bash", str(REPO / "cluster" / "submit.sh"), *args], cwd=REPO,
                              env={**self.env, "RAY_ADDRESS": self.dashboard}, capture_output=True, text=True,
                              timeout=timeout_s)

    def job(self, *entrypoint: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
        """`ray job submit -- ENTRYPOINT` with tao-ray's bin directory first on the job's PATH, as on a cluster whose
        image installs tao-ray (the raylets' own PATH does not name it)."""
        runtime_env = json.dumps({"env_vars": {"PATH": f"{VENV_BIN}:{self.env['PATH']}"}})
        return subprocess.run([str(VENV_BIN / "ray"), "job", "submit", "--address", self.dashboard,
                               "--runtime-env-json", runtime_env, "--", *entrypoint],
                              env={**self.env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True,
                              timeout=timeout_s)

    def stop(self) -> None:
        kill_cluster(self.root, self.port)


def kill_cluster(root: Path, gcs_port: int | None = None) -> None:
    """Kill every process of the cluster whose temporary directory is under `root`, and their children (vLLM
    engine processes included); with `gcs_port`, also the head's Ray client server, whose command line names only
    the GCS address. Any other Ray on the machine is left alone. Then delete `root`."""
    import psutil

    mine = str(root)
    address = re.compile(rf"address=\S*:{gcs_port}$") if gcs_port else None
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            if any(mine in part or (address and address.search(part)) for part in cmdline):
                found.append(process)
                found.extend(process.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    kill_all(found)
    shutil.rmtree(root, ignore_errors=True)


def kill_all(processes: list) -> int:
    """SIGKILL every process (those already gone are skipped) and wait for them; returns how many were given."""
    import psutil

    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=30)
    return len(processes)
