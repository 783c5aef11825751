"""The Ray session: the one place that calls `ray.init`, for the run and for every command that starts actors.

Under `ray job submit` (RAY_ADDRESS set) it joins that cluster; otherwise it starts a local Ray sized to at least
this machine's cores. Logical CPUs in a local Ray are bookkeeping, not cores, so a recipe that asks for more than the
machine has still fits.
"""

from __future__ import annotations

import os

import ray

# Actors import tao_ray from the installed package; no working-dir upload is needed for a local run.
RUNTIME_ENV = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "VLLM_CONFIGURE_LOGGING": "1"}}


def connect(cpus_wanted: float = 0.0, actor_logs: bool = False) -> bool:
    """Join the cluster named by RAY_ADDRESS, else start a local Ray with at least `cpus_wanted` logical CPUs.
    Returns True when this call started Ray (so the caller shuts it down); False when Ray was already up or is a
    cluster. `actor_logs`: stream the actors' output to this console (otherwise it stays in files)."""
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], runtime_env=RUNTIME_ENV, log_to_driver=actor_logs,
                 logging_level="error")
        return False
    num_cpus = max(float(os.cpu_count() or 1), cpus_wanted)
    ray.init(num_cpus=int(num_cpus + 0.999), include_dashboard=False, runtime_env=RUNTIME_ENV,
             log_to_driver=actor_logs, configure_logging=True, logging_level="error")
    return True
