"""Full-model weight sync on CPU: one LearnerActor and one GeneratorActor (vLLM) on a real local Ray, the demo model,
N timed syncs per strategy (median), with each sync split into its steps, and the memory-bandwidth bound of each
strategy: bytes copied per sync / measured memcpy speed. Prints JSON and writes results-weight-sync-cpu.json.

    python -m benchmarks.weight_sync [--repeats 7] [--strategies object-store,shared-memory]

Strategies (both are CpuInPlaceSync; the first is the path every sync took before the same-node shortcut):
- object-store:  learner packs a safetensors payload -> Ray object store -> generator stages it in /dev/shm ->
                 the engine's worker reloads from the file.
- shared-memory: learner writes the safetensors layout into its own shared-memory file (memfd, mapped once) and
                 sends only the path -> the worker reloads from it (learner and generator on one node).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

EMBEDDING = "model.embed_tokens.weight"  # not prepacked by vLLM-CPU: comparable bit for bit


def memcpy_bytes_per_s(mib: int = 512, repeats: int = 7) -> float:
    """Median speed of one large tensor copy (bytes copied per second; each byte is read once and written once)."""
    import torch

    src = torch.ones(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)  # fault the pages in first
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        dst.copy_(src)
        seconds.append(time.perf_counter() - started)
    return src.numel() * 4 / statistics.median(seconds)


def copies(strategy: str, engine_bytes: int, sent_bytes: int) -> dict[str, int]:
    """Every full copy of the weights one sync makes on the way, by step (bytes written). `sent_bytes`: the
    payload, in the engine's dtype. safe_open's tensors are views of the file (no copy). The engine's reload:
    the weight loader copies each tensor into a fresh parameter, then each layer is processed (oneDNN prepacks the
    linear weights; the others are copied back into the live tensors): two copies of the engine's weights.
    safetensors' `save` is counted once (a lower bound: it may build its buffer before handing Python the bytes)."""
    reload = {"worker: weight loader copy": engine_bytes, "worker: prepack / copy back": engine_bytes}
    if strategy == "object-store":
        return {"learner: safetensors save": sent_bytes, "ray: put into object store": sent_bytes,
                "generator: ray.get (bytes out of the store)": sent_bytes, "generator: stage to /dev/shm": sent_bytes,
                **reload}
    return {"learner: write into shared file": sent_bytes, **reload}


def run(repeats: int, strategies: list[str], kv_cache_gb: float) -> dict:
    import ray

    from tao_ray.actors.generator import GeneratorActor, GeneratorSpec
    from tao_ray.actors.learner import LearnerActor
    from tao_ray.config import TrainingSection
    from tao_ray.data.demo_model import materialize
    from tao_ray.engine.learner import LearnerSpec
    from tao_ray.run.tracking import hardware
    from tao_ray.sync import driver as weight_sync

    model_dir = str(materialize())
    speed = memcpy_bytes_per_s()
    ray.init(num_cpus=4, include_dashboard=False, logging_level="warning")
    try:
        training = TrainingSection(lr=1e-5, micro_batch_size=4)
        learner = ray.remote(num_cpus=1)(LearnerActor).remote(LearnerSpec(model_dir, "float32", training))
        generator = ray.remote(num_cpus=1)(GeneratorActor).remote(
            GeneratorSpec(model_dir, "float32", 512, kv_cache_gb, 0.5))
        address, port = ray.get(learner.rendezvous_address.remote())
        ray.get([learner.setup.remote(address, port), generator.ready.remote()])
        ray.get(learner.scale_parameter.remote(EMBEDDING, 1.5))  # a visible change the sync must carry
        expected = ray.get(learner.parameter_sum.remote(EMBEDDING))
        numel = ray.get(learner.describe.remote())["parameters"]
        results = {}
        version = 0
        for strategy in strategies:
            sync = weight_sync.CpuInPlaceSync([learner], [generator], shared_memory=strategy == "shared-memory")
            sync.init()
            version += 1
            sync.update(version)  # warm-up: first mapping of the shared file, first reload
            rows = []
            for _ in range(repeats):
                version += 1
                started = time.perf_counter()
                sync.update(version)
                wall = time.perf_counter() - started
                pack, receive = ray.get([learner.pack_timing.remote(), generator.receive_timing.remote()])
                transfer = receive["started"] - (pack["started"] + pack["seconds"])
                rows.append({"wall_s": wall, "pack_s": pack["seconds"], "transfer_s": transfer,
                             "stage_s": receive["stage_s"], "reload_s": receive["reload_s"],
                             "reset_cache_s": receive["reset_cache_s"]})
            served = ray.get(generator.parameter_sum.remote(EMBEDDING))
            engine_dtype = ray.get(generator.weight_dtype.remote())
            sent_bytes = numel * {"float32": 4, "bfloat16": 2, "float16": 2}[sync.dtype or "float32"]
            engine_bytes = numel * {"float32": 4, "bfloat16": 2, "float16": 2}[engine_dtype]
            moved = copies(strategy, engine_bytes, sent_bytes)
            total = sum(moved.values())
            median = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
            median["other_s"] = median["wall_s"] - sum(v for k, v in median.items() if k != "wall_s")
            results[strategy] = {
                "sent_dtype": sync.dtype or "float32", "engine_dtype": engine_dtype,
                "median": median, "syncs": rows, "bytes_copied": moved, "bytes_copied_total": total,
                "bandwidth_bound_s": total / speed, "exact": served == expected}
        baseline = results.get("object-store")
        for result in results.values():
            if baseline:
                result["speedup_vs_object_store"] = baseline["median"]["wall_s"] / result["median"]["wall_s"]
        return {"benchmark": "weight_sync", "model": "SmolLM2-135M-Instruct", "parameters": numel,
                "repeats": repeats, "memcpy_bytes_per_s": speed, "results": results, "hardware": hardware()}
    finally:
        ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--strategies", default="object-store,shared-memory")
    parser.add_argument("--kv-cache-gb", type=float, default=0.25)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results-weight-sync-cpu.json")))
    args = parser.parse_args()
    result = run(args.repeats, args.strategies.split(","), args.kv_cache_gb)
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
