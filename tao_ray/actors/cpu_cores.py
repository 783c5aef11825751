"""How many of a small CPU node's cores vLLM-CPU, and the sentence embedder beside it, may compute on.

vLLM-CPU binds its compute threads to every core of the node but `VLLM_CPU_NUM_OF_RESERVED_CPU` of them (one by
default), which it keeps for its scheduler process. On a big node one core is a fair price; on a small one it is
half the machine. Measured on the 2-core demo machine, the demo's evaluation call (100 greedy answers and 64
samples, ~9,500 tokens, bf16) took 33 s with one core reserved and 20 s with none: the scheduler shares a core with
a compute thread at little cost. The pipeline's stages take turns on such a node (the learner idles while the
engine generates), so the engine gets every core.
"""

from __future__ import annotations

import os

SMALL_NODE_CORES = 4
"""Nodes with at most this many cores reserve none for vLLM's scheduler."""


def reserved_scheduler_cores(available: int, preset: str | None) -> str | None:
    """The value to give VLLM_CPU_NUM_OF_RESERVED_CPU, or None to leave vLLM's default (and a preset) alone."""
    if preset is not None or available > SMALL_NODE_CORES:
        return None
    return "0"


def give_engine_every_core() -> None:
    """Call before building a vLLM engine on CPU: on a small node no core is reserved for the scheduler and the engine
    runs in this process on every core. A value the user set in the environment wins."""
    available = len(os.sched_getaffinity(0))
    value = reserved_scheduler_cores(available, os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU"))
    if value is not None:
        os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = value
    if available <= SMALL_NODE_CORES and "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ:
        run_engine_in_this_process(available)


def run_engine_in_this_process(threads: int) -> None:
    """On a small node, the engine's scheduler and its (tensor-parallel size 1) worker run inside the actor's
    process rather than in two processes of their own: each of those imports vLLM and torch again, about 10 s of a
    core apiece. Measured in a 1-CPU Ray actor on the demo machine: the 135M engine was built in 21.0 s that way and
    in 3.8 s in-process, and 64 samples of 96 tokens took 9.9 s and 9.8 s (medians of 3).

    In-process, vLLM binds no OpenMP threads (its worker process would have) and its CPU worker turns
    `torch.set_num_threads` into a no-op for the whole process, so the thread count is set here, before the engine
    is built: every core, which is what a small node gives the engine and the embedder beside it alike. Ray would
    otherwise leave the actor at its CPU share (1 thread for generator_cpus 1). On bigger nodes vLLM keeps its own
    processes and core binding (and NUMA placement), which pay off there. Several engines on one small node each
    take every core too, as vLLM's own binding did; they then contend (the chaos soak's two engines evaluated in
    about 18 s per iteration that way, and in about 6 s on one thread each)."""
    import torch

    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    torch.set_num_threads(threads)


def embedder_threads(available: int, actor_threads: int) -> int:
    """Threads for a generator actor's sentence embedder on CPU (the diversity distances). It runs inside the
    actor's call while the engine waits, so on a small node, where the engine computes on every core, it may use
    them all; elsewhere it keeps the actor's own share (Ray sets OMP_NUM_THREADS to the actor's CPUs). On the demo
    machine, embedding a batch's 64 samples took 1.5 s on 1 thread and 0.8 s on 2."""
    return available if available <= SMALL_NODE_CORES else actor_threads


def give_embedder_the_engine_cores() -> None:
    import torch

    torch.set_num_threads(embedder_threads(len(os.sched_getaffinity(0)), torch.get_num_threads()))
