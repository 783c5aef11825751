"""Which loss carries the TAO effect over to prompts written by someone else: the instruction-following demo
(recipes/demo-if-cpu.yaml) once per loss setting, each stopped by the same `run.max_wall_minutes`, compared at its
best checkpoint on every evaluated set: held-out, transfer (the same skills, other phrasings), unseen (kinds of
constraint never trained on) and arithmetic (a skill outside the task), with each set's paired win rate over the
base model and its 95% CI, the length ratio against the base, and the per-instruction-type pass rates.

    python -m benchmarks.tao_effect [--minutes 9] [--settings token,sequence,constant,...]

Prints JSON with the hardware and writes results-tao-effect-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = "recipes/demo-if-cpu.yaml"
OUT = Path(__file__).with_name("results-tao-effect-cpu.json")
SETS = ("heldout", "transfer", "unseen", "general")
# One pass over each batch, symmetric clipping: the recipe's default before clip-higher won this benchmark.
ONE_EPOCH = ["training.epochs=1", "training.clip_eps_high=null"]
SETTINGS = {
    # GRPO's usual form: token-mean over the batch, advantages divided by the group's std.
    "token": ONE_EPOCH,
    # Each response weighs the same whatever its length.
    "sequence": [*ONE_EPOCH, "training.loss_aggregation=sequence"],
    # Dr. GRPO: each response's token sum over one fixed length, advantages not divided by the std.
    "constant": [*ONE_EPOCH, "training.loss_aggregation=constant", "training.normalize_std=false"],
    # DAPO's clip-higher with two passes over each batch (clipping is active only off the sampling policy): the
    # recipe as committed.
    "clip-higher": [],
}


def at_best(summary: dict) -> dict:
    """The best checkpoint's row (the base row when no iteration beat it)."""
    rows = summary["iterations"]
    best = summary.get("best_iteration")
    return next((r for r in rows if r["iteration"] == best), rows[0])


def describe(summary: dict) -> dict:
    rows, best = summary["iterations"], at_best(summary)
    base = rows[0]
    sets = {}
    for name in SETS:
        if base.get(f"{name}_reward_mean") is None:
            continue
        versus = best.get(f"{name}_vs_base") or {}
        sets[name] = {"base": base[f"{name}_reward_mean"], "best": best.get(f"{name}_reward_mean"),
                      "win_rate": versus.get("win_rate"), "ci95": [versus.get("ci95_low"), versus.get("ci95_high")],
                      "curve": [r.get(f"{name}_reward_mean") for r in rows]}
    types = {}
    for name, by in (best.get("by_type") or {}).items():
        base_by = (base.get("by_type") or {}).get(name, {})
        types[name] = {kind: {"base": base_by.get(kind, {}).get("rate"), "best": value.get("rate")}
                       for kind, value in by.items()}
    return {"iterations": len(rows) - 1, "best_iteration": summary.get("best_iteration"), "sets": sets,
            "length_ratio": best.get("length_ratio"), "length_curve": [r.get("length_ratio") for r in rows],
            "matched_length": best.get("heldout_matched_length"), "by_type": types, "stopped": summary["stopped"]}


def run_one(name: str, overrides: list[str], minutes: float, output_dir: Path) -> dict:
    started = time.perf_counter()
    command = [sys.executable, "-m", "tao_ray", "run", RECIPE, *overrides, f"run.max_wall_minutes={minutes}",
               "run.iterations=50", "logging.wandb=false", f"run.output_dir={output_dir}", f"run.name={name}"]
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        return {"overrides": overrides, "error": result.stderr.strip().splitlines()[-1:], "wall_s": wall}
    summary = json.loads((output_dir / name / "summary.json").read_text())
    return {"overrides": overrides, "wall_s": round(wall, 1), **describe(summary)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=9.0, help="wall budget per setting")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    from tao_ray.run.tracking import hardware

    results = {}
    with tempfile.TemporaryDirectory(prefix="tao-ray-effect-") as tmp:
        for name in args.settings.split(","):
            results[name] = run_one(name, SETTINGS[name], args.minutes, Path(tmp))
            print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    report = {"benchmark": "tao_effect", "recipe": RECIPE, "minutes_per_setting": args.minutes, "results": results,
              "hardware": hardware()}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
