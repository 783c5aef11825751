"""Learner throughput on the demo model against the machine's practical limit, in each compute dtype.

The limit is a bare PyTorch loop over the same packed micro-batches: forward (logits of the response positions
only), log-softmax gather, backward; no reference, no optimizer step, no DeepSpeed. The learner runs one full GRPO
step (DeepSpeed ZeRO-2 engine, AdamW step) over the same batch, with kl_coef 0 (no reference) and 0.02 (reference
forward too). Every configuration runs in a fresh process, one after another; medians of --repeats after one
warm-up. Prints JSON and writes benchmarks/results-learner-step-cpu.json.

    python -m benchmarks.learner_step [--repeats 3] [--samples 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("results-learner-step-cpu.json")
# (name, runner, compute dtype, kl_coef, shared prefix); the bare loop of the same dtype is each learner row's
# baseline. The bare loop packs row by row; the learner packs each group's prompt once (training.shared_prefix),
# and its "rows" configurations turn that off, to show what the sharing buys.
CONFIGS = [
    ("bare-float32", "bare", "float32", 0.0, False),
    ("learner-float32-kl0", "learner", "float32", 0.0, True),
    ("learner-float32-kl0.02", "learner", "float32", 0.02, True),
    ("bare-bfloat16", "bare", "bfloat16", 0.0, False),
    ("learner-rows-bfloat16-kl0", "learner", "bfloat16", 0.0, False),
    ("learner-bfloat16-kl0", "learner", "bfloat16", 0.0, True),
    ("learner-bfloat16-kl0.02", "learner", "bfloat16", 0.02, True),
]
MICRO_BATCH = 16


def synthetic_batch(samples: int, vocab: int = 40000):
    """Demo-like groups: one prompt of 35-54 tokens answered 4 times, responses of 20 to 64 tokens, +-1
    advantages; token ids in [100, vocab)."""
    import torch

    from tao_ray.core.batch import RolloutBatch

    rng = torch.Generator().manual_seed(0)
    group_prompts = [torch.randint(100, vocab, (int(torch.randint(35, 55, (1,), generator=rng)),),
                                   generator=rng).tolist() for _ in range(-(-samples // 4))]
    prompts = [group_prompts[i // 4] for i in range(samples)]
    responses = [torch.randint(100, vocab, (int(torch.randint(20, 65, (1,), generator=rng)),),
                               generator=rng).tolist() for _ in range(samples)]
    return RolloutBatch(prompts, responses, [0.0] * samples, [(-1.0) ** i for i in range(samples)],
                        [i // 4 for i in range(samples)])


def bare_loop(batch, dtype: str, repeats: int) -> list[float]:
    import time

    import torch
    from transformers import AutoModelForCausalLM

    from tao_ray.core import microbatch
    from tao_ray.core.losses import token_logprobs
    from tao_ray.core.sequences import pack
    from tao_ray.data.demo_model import materialize

    torch.set_num_threads(os.cpu_count() or 1)
    model = AutoModelForCausalLM.from_pretrained(str(materialize()), dtype=torch.float32).train()
    chunks = microbatch.split(batch.lengths(), -(-len(batch) // MICRO_BATCH), 1)
    packed = [pack([batch.prompt_token_ids[j] for j in c], [batch.response_token_ids[j] for j in c], 0)
              for c in chunks]
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        for p in packed:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
                logits = model(input_ids=p.input_ids_BS, attention_mask=p.attention_mask_BS,
                               position_ids=p.position_ids_BS, logits_to_keep=p.logits_to_keep,
                               use_cache=False).logits
                logprobs = token_logprobs(logits[:, :-1], p.response_ids_BR)
            (-(logprobs * p.response_mask_BR).sum() / p.response_mask_BR.sum()).backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times[1:]


def learner_step(batch, dtype: str, kl_coef: float, shared_prefix: bool, repeats: int) -> list[float]:
    import dataclasses

    from tao_ray.config import TrainingSection
    from tao_ray.data.demo_model import materialize
    from tao_ray.engine.learner import LearnerSpec, PolicyLearner

    training = dataclasses.replace(TrainingSection(), lr=1e-6, micro_batch_size=MICRO_BATCH, kl_coef=kl_coef,
                                   compute_dtype=dtype, shared_prefix=shared_prefix)
    # The learner library in this process, no Ray: what a learner actor computes, nothing else.
    learner = PolicyLearner(LearnerSpec(str(materialize()), "float32", training, num_threads=os.cpu_count() or 1))
    learner.setup("127.0.0.1", 29000 + os.getpid() % 1000)
    micro = -(-len(batch) // MICRO_BATCH)
    return [learner.train(batch, micro)["seconds"] for _ in range(repeats + 1)][1:]


def child(name: str, samples: int, repeats: int) -> list[float]:
    _, runner, dtype, kl_coef, shared_prefix = next(c for c in CONFIGS if c[0] == name)
    batch = synthetic_batch(samples)
    if runner == "bare":
        return bare_loop(batch, dtype, repeats)
    return learner_step(batch, dtype, kl_coef, shared_prefix, repeats)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--configs", default=",".join(c[0] for c in CONFIGS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.samples, args.repeats)))
        return
    from tao_ray.run.tracking import hardware

    batch = synthetic_batch(args.samples)
    tokens = sum(batch.lengths())  # prompt + response per row: the work, however it is packed
    distinct = {tuple(p): 0 for p in batch.prompt_token_ids}
    shared_tokens = sum(len(p) for p in distinct) + sum(len(r) for r in batch.response_token_ids)
    results = {}
    for name in args.configs.split(","):
        out = subprocess.run([sys.executable, "-m", "benchmarks.learner_step", "--child", name, "--repeats",
                              str(args.repeats), "--samples", str(args.samples)],
                             capture_output=True, text=True, check=True, env={**os.environ, "DS_ACCELERATOR": "cpu"})
        seconds = json.loads(out.stdout.strip().splitlines()[-1])
        median = statistics.median(seconds)
        results[name] = {"step_seconds": seconds, "median_s": median, "tokens_per_s": tokens / median}
    for name, result in results.items():
        dtype = next(c[2] for c in CONFIGS if c[0] == name)
        bare = results.get(f"bare-{dtype}")
        if bare and not name.startswith("bare"):
            result["fraction_of_bare_loop"] = result["tokens_per_s"] / bare["tokens_per_s"]
    report = {"benchmark": "learner_step", "samples": args.samples, "tokens_per_step": tokens,
              "tokens_computed_with_shared_prefix": shared_tokens,
              "micro_batch_size": MICRO_BATCH, "repeats": args.repeats, "results": results, "hardware": hardware()}
    print(json.dumps(report, indent=2))
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
