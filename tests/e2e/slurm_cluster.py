"""A one-node SLURM cluster on this machine, for the tests that submit cluster/slurm.sbatch with sbatch: Debian's
slurm-wlm (slurmctld, slurmd) and munge, which `make test` installs where apt-get is available. Its slurm.conf
(SLURM_CONF) names this host with its cores and half its memory, free ports and state under a temporary directory;
the daemons run in the foreground as the test's children and are stopped (with every job cancelled) afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from .cluster import free_port

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "sinfo")


def missing() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    absent = [name for name in DAEMONS if shutil.which(name) is None]
    if absent:
        return (f"SLURM is not installed ({', '.join(absent)} missing); `make test` installs Debian's slurm-wlm "
                "and munge where apt-get is available")
    if os.geteuid() != 0:
        return "the one-node SLURM cluster runs its daemons as root"
    return None


class SlurmCluster:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.processes: list[subprocess.Popen] = []
        self.munged: subprocess.Popen | None = None

    def write_conf(self) -> None:
        memory_mb = psutil.virtual_memory().total // 2**20 // 2
        (self.root / "state").mkdir()
        (self.root / "spool").mkdir()
        self.conf.write_text("\n".join([
            "ClusterName=taoraytest", f"SlurmctldHost={self.host}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"StateSaveLocation={self.root}/state",
            f"SlurmdSpoolDir={self.root}/spool", f"SlurmctldPidFile={self.root}/slurmctld.pid",
            f"SlurmdPidFile={self.root}/slurmd.pid", f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "ReturnToService=2", "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none", "KillWait=10",
            f"SlurmctldLogFile={self.root}/slurmctld.log", f"SlurmdLogFile={self.root}/slurmd.log",
            f"NodeName={self.host} CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName=test Nodes={self.host} Default=YES MaxTime=INFINITE State=UP", ""]))

    def start(self) -> SlurmCluster:
        self.write_conf()
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode != 0:
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            self.munged = subprocess.Popen(["munged", "--foreground", "--force"], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
            self._until(lambda: subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode
                        == 0, 30, "munged did not answer")
        for daemon in ("slurmctld", "slurmd"):
            self.processes.append(subprocess.Popen([daemon, "-D"], env=self.env, stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL))
        self._until(lambda: self.run("sinfo", "-h", "-o", "%T").stdout.strip() == "idle", 60,
                    "the SLURM node did not come up idle")
        return self

    def run(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), env={**self.env, **kwargs.pop("env", {})}, capture_output=True,
                              text=True, timeout=60, **kwargs)

    def job_state(self, job_id: str) -> str:
        out = self.run("scontrol", "show", "job", job_id).stdout
        return next((part.split("=", 1)[1] for part in out.split() if part.startswith("JobState=")), "UNKNOWN")

    def wait(self, job_id: str, timeout_s: float) -> str:
        """The job's final state (COMPLETED, FAILED, CANCELLED, ...)."""
        deadline = time.monotonic() + timeout_s
        while (state := self.job_state(job_id)) in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"SLURM job {job_id} still {state} after {timeout_s:g}s")
            time.sleep(3)
        return state

    def stop(self) -> None:
        self.run("scancel", "--full", "--partition=test")
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.munged is not None:
            self.munged.terminate()
            self.munged.wait(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _until(check, timeout_s: float, problem: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(problem)
            time.sleep(1)
