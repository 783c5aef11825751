"""Algorithms on the demo at equal wall time: the demo recipe once per configuration, each stopped by the same
`run.max_wall_minutes` budget, compared on held-out reward. Prints JSON with the hardware.

    python -m benchmarks.algorithms [--minutes 6] [--configs grpo,dpo,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "grpo": [],
    "rloo": ["training.algorithm=rloo"],
    "dpo": ["training.algorithm=dpo", "training.min_margin=0.2", "training.lr=5e-6"],
    "rft": ["training.algorithm=rft", "training.min_score=0.5", "training.lr=1e-5"],
    "grpo-lora": ["training.lora.r=16", "training.lora.alpha=32", "training.lr=5e-4"],
    # LoRA moves fewer weights per step, so each algorithm gets about 10x its full fine-tuning learning rate.
    "rloo-lora": ["training.algorithm=rloo", "training.lora.r=16", "training.lora.alpha=32", "training.lr=5e-4"],
    "dpo-lora": ["training.algorithm=dpo", "training.min_margin=0.2", "training.lora.r=16",
                 "training.lora.alpha=32", "training.lr=5e-5"],
    "rft-lora": ["training.algorithm=rft", "training.min_score=0.5", "training.lora.r=16", "training.lora.alpha=32",
                 "training.lr=1e-4"],
}


def run_one(name: str, overrides: list[str], minutes: float, output_dir: Path) -> dict:
    started = time.perf_counter()
    command = [sys.executable, "-m", "tao_ray", "run", "recipes/demo-cpu.yaml", *overrides,
               f"run.max_wall_minutes={minutes}", "run.iterations=50", "logging.wandb=false",
               f"run.output_dir={output_dir}", f"run.name={name}"]
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        return {"overrides": overrides, "error": result.stderr.strip().splitlines()[-1:], "wall_s": wall}
    summary = json.loads((output_dir / name / "summary.json").read_text())
    rows = summary["iterations"]
    return {"overrides": overrides, "wall_s": wall, "iterations": len(rows) - 1,
            "heldout_by_iteration": [r["heldout_reward_mean"] for r in rows],
            "heldout_base": rows[0]["heldout_reward_mean"], "heldout_best": summary["best_heldout_reward"],
            "best_iteration": summary["best_iteration"], "heldout_last": rows[-1]["heldout_reward_mean"],
            "last_vs_base": rows[-1].get("heldout_vs_base"), "weight_sync": summary["weight_sync"]["path"],
            "weight_sync_s": [r["weight_sync_s"] for r in rows[1:]], "stopped": summary["stopped"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=6.0, help="wall budget per configuration")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    from tao_ray.run.tracking import hardware

    results = {}
    with tempfile.TemporaryDirectory(prefix="tao-ray-bench-") as tmp:
        for name in args.configs.split(","):
            results[name] = run_one(name, CONFIGS[name], args.minutes, Path(tmp))
            print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "algorithms", "recipe": "recipes/demo-cpu.yaml", "minutes_per_config": args.minutes,
                      "results": results, "hardware": hardware()}, indent=2))


if __name__ == "__main__":
    main()
