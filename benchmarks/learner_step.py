"""Learner step time on the demo model: one DeepSpeed GRPO step over a fixed synthetic batch, per configuration,
each in a fresh process so allocator settings apply from start-up. Prints JSON with medians and the hardware.

    python -m benchmarks.learner_step [--repeats 3] [--samples 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# Configurations compared in the same run; the first is the baseline.
CONFIGS = {
    "glibc-default": {},
    # Large tensors (logits) are freed and reallocated every micro-batch; by default glibc returns them to the OS
    # with munmap, and the next allocation page-faults them back in (high system time). Keeping them cached:
    "glibc-no-trim": {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**31),
                      "MALLOC_TOP_PAD_": str(2**28)},
}


def one_run(samples: int, repeats: int) -> list[float]:
    import torch

    from tao_ray.actors.learner import LearnerActor
    from tao_ray.batch import RolloutBatch
    from tao_ray.demo_model import materialize

    training = dict(lr=1e-6, weight_decay=0.0, micro_batch_size=8, max_grad_norm=1.0, zero_stage=2, epochs=1,
                    gradient_checkpointing=False, seed=0, clip_eps=0.2, kl_coef=0.02, loss_aggregation="token")
    learner = LearnerActor(str(materialize()), "float32", training, "cpu", 0, 1, os.cpu_count() or 1)
    learner.setup("127.0.0.1", 29000 + os.getpid() % 1000)
    rng = torch.Generator().manual_seed(0)
    prompts = [torch.randint(100, 40000, (60,), generator=rng).tolist() for _ in range(samples)]
    responses = [torch.randint(100, 40000, (int(torch.randint(20, 96, (1,), generator=rng)),),
                               generator=rng).tolist() for _ in range(samples)]
    batch = RolloutBatch(prompts, responses, [0.0] * samples, [(-1.0) ** i for i in range(samples)],
                         list(range(samples)))
    micro = -(-samples // training["micro_batch_size"])
    return [learner.train(batch, micro)["seconds"] for _ in range(repeats)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.samples, args.repeats)))
        return
    from tao_ray.tracking import hardware

    results = {}
    for name, env in CONFIGS.items():
        out = subprocess.run([sys.executable, "-m", "benchmarks.learner_step", "--child", "--repeats",
                              str(args.repeats), "--samples", str(args.samples)],
                             env={**os.environ, **env}, capture_output=True, text=True, check=True)
        seconds = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = {"env": env, "step_seconds": seconds, "median_s": statistics.median(seconds)}
    baseline = results["glibc-default"]["median_s"]
    for result in results.values():
        result["speedup_vs_baseline"] = baseline / result["median_s"]
    print(json.dumps({"benchmark": "learner_step", "samples": args.samples, "results": results,
                      "hardware": hardware()}, indent=2))


if __name__ == "__main__":
    main()
