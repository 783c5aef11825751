"""Is the run directory one directory for every node? Checked once at start-up, before any work is done.

Learner ranks write checkpoints (each rank its own optimizer partition), the driver writes summary.json and renames
checkpoints into place, and the user reads both from one path. On a multi-node cluster that only holds when the run
directory is on storage every node mounts. The probe: the driver writes a file with a fresh token; a task on every
node that hosts a learner or a generator reads it and writes an answer beside it; the driver reads the answers.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from tao_ray.errors import TaoError


def _answer_probe(probe: str, token: str, node_id: str) -> str | None:
    """On the probed node: None when the probe was read and answered, else what went wrong."""
    path = Path(probe)
    try:
        if path.read_text() != token:
            return "read a different file there"
        (path.parent / f"{path.name}.{node_id}").write_text(token)
    except OSError as exc:
        return f"could not read or write there ({exc.strerror or exc})"
    return None


def check_shared(run_dir: Path, nodes: dict[str, str]) -> None:
    """`nodes`: {node_id: what runs there}. Raises a one-line TaoError when a node cannot share the directory."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = secrets.token_hex(16)
    probe = run_dir / f".probe-{token}"
    probe.write_text(token)
    answer = ray.remote(num_cpus=0, max_retries=0)(_answer_probe)
    try:
        calls = {node_id: answer.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))
                 .remote(str(probe), token, node_id) for node_id in nodes}
        for node_id, problem in zip(calls, ray.get(list(calls.values()), timeout=120)):
            if problem is None and not (run_dir / f"{probe.name}.{node_id}").is_file():
                problem = "wrote an answer there that the driver cannot see"
            if problem:
                raise TaoError(f"run.output_dir: {run_dir.parent} is not shared between the driver's node and the "
                               f"node of {nodes[node_id]}, which {problem}; put run.output_dir on storage every "
                               "node mounts at the same path (NFS, a cluster filesystem, a shared volume)")
    finally:
        for path in run_dir.glob(f"{probe.name}*"):
            path.unlink(missing_ok=True)
