"""The cost-quality curve: held-out reward against generated tokens, over samples per prompt and iterations.

One real `tao-ray run` of the recipe (default recipes/demo-cpu.yaml) per samples-per-prompt value
(generation.samples_per_prompt; default grid 2, 4, 8), one after another, never two at once. Every run evaluates
after every iteration (eval.every=1), so one run gives its whole curve along iterations: for each iteration the
cumulative tokens generated for training (summary.json's `tokens_generated`, summed; iteration 0 is the base model
at 0 tokens), the held-out reward (`heldout_reward_mean`), the transfer and general rewards where the recipe has
those sets, and the cumulative wall seconds of the loop (the sum of each row's `timing_s`; start-up is reported
apart). The evaluation's own greedy answers are not counted as generated tokens: they are the same work at every
grid point. The Pareto front is the set of (tokens, held-out reward) points that no other point beats on both (as
few tokens or fewer, and a reward as high or higher): the budgets worth choosing.

Default overrides keep it affordable on CPU: data.max_heldout_prompts=30 (it caps the transfer and general sets
too), logging.wandb=false, run.keep_checkpoints=1, the runs under a temporary directory (--runs-dir keeps them),
run.name=budget-spp<N> per grid point. --override KEY=VALUE (repeatable) adds dotted overrides after those.

    .venv/bin/python -m benchmarks.compute_budget [--samples 2,4,8] [--iterations 4] [--recipe R.yaml]
                                                  [--override KEY=VALUE ...] [--runs-dir DIR] [--out FILE]

Writes JSON (default benchmarks/results-compute-budget-cpu.json: the hardware, the grid, every point, the Pareto
front), a PNG beside it when matplotlib is importable (default benchmarks/compute-budget-cpu.png), and prints a
table. No timed assertions: the figures are reported, not checked.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.peer_trl import subprocess_env  # the same environment for every benchmark's subprocess

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "recipes/demo-cpu.yaml"
RESULTS = Path(__file__).with_name("results-compute-budget-cpu.json")
PLOT = Path(__file__).with_name("compute-budget-cpu.png")
SAMPLES = (2, 4, 8)
ITERATIONS = 4
DEFAULT_OVERRIDES = ("data.max_heldout_prompts=30", "logging.wandb=false", "run.keep_checkpoints=1")
REWARDS = ("heldout_reward_mean", "transfer_reward_mean", "general_reward_mean")
RUN_TIMEOUT_S = 3 * 3600


# ---- pure functions (tests/benchmarks/test_compute_budget.py) ---------------------------------------------------

def curve(summary: dict[str, Any], samples_per_prompt: int | None = None) -> list[dict[str, Any]]:
    """One point per summary.json row, in iteration order: cumulative generated tokens, the rewards measured at that
    iteration (None where not), and cumulative loop seconds (the sum of every row's timing_s so far)."""
    points, tokens, wall = [], 0, 0.0
    for row in sorted(summary.get("iterations") or [], key=lambda r: r["iteration"]):
        tokens += row.get("tokens_generated") or 0
        wall += sum(v for v in (row.get("timing_s") or {}).values() if isinstance(v, (int, float)))
        point = {"samples_per_prompt": samples_per_prompt, "iteration": row["iteration"], "tokens": tokens,
                 "tokens_iteration": row.get("tokens_generated") or 0, "wall_s": round(wall, 3)}
        point.update({key.removesuffix("_mean"): row.get(key) for key in REWARDS})
        points.append(point)
    return points


def pareto_front(points: list[dict[str, Any]], x: str = "tokens", y: str = "heldout_reward") -> list[dict[str, Any]]:
    """The points no other point dominates (x as small or smaller and y as large or larger, one of them strictly),
    by increasing x. Points without a measured y are left out; of identical (x, y) points the first is kept."""
    measured = [p for p in points if isinstance(p.get(y), (int, float)) and isinstance(p.get(x), (int, float))]
    front: list[dict[str, Any]] = []
    # By x ascending, and at equal x by y descending: a point is on the front iff its y beats every y before it.
    for point in sorted(measured, key=lambda p: (p[x], -p[y])):
        if not front or point[y] > front[-1][y]:
            front.append(point)
    return front


def run_overrides(samples_per_prompt: int, iterations: int, output_dir: Path, extra: list[str]) -> list[str]:
    """The dotted overrides of one grid point; the extra ones come last, so they win."""
    return [*DEFAULT_OVERRIDES, f"generation.samples_per_prompt={samples_per_prompt}", f"run.iterations={iterations}",
            "eval.every=1", f"run.output_dir={output_dir}", f"run.name=budget-spp{samples_per_prompt}", *extra]


def markdown_table(points: list[dict[str, Any]], front: list[dict[str, Any]]) -> str:
    """One row per point; points on the Pareto front are marked."""

    def cell(value: Any, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    on_front = {(p["samples_per_prompt"], p["iteration"]) for p in front}
    lines = ["| samples/prompt | iteration | tokens (cumulative) | held-out | transfer | general | loop s | front |",
             "|---|---|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p['samples_per_prompt']} | {p['iteration']} | {p['tokens']} | {cell(p['heldout_reward'])} "
                     f"| {cell(p['transfer_reward'])} | {cell(p['general_reward'])} | {cell(p['wall_s'], 0)} "
                     f"| {'*' if (p['samples_per_prompt'], p['iteration']) in on_front else ''} |")
    return "\n".join(lines)


# ---- plot (matplotlib's Figure and Agg, as tao_ray/run/report_plots.py) ---------------------------------------------

def plot(path: Path, runs: dict[int, list[dict[str, Any]]], front: list[dict[str, Any]]) -> bool:
    """Held-out reward against cumulative generated tokens, one line per samples-per-prompt value, the Pareto front
    dashed. False when matplotlib is not importable."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(6.4, 4.0), dpi=90)
    ax = fig.subplots()
    for spp, points in runs.items():
        kept = [p for p in points if p["heldout_reward"] is not None]
        if not kept:
            continue
        ax.plot([p["tokens"] for p in kept], [p["heldout_reward"] for p in kept], marker="o",
                label=f"{spp} samples/prompt")
        for p in kept:
            ax.annotate(str(p["iteration"]), (p["tokens"], p["heldout_reward"]), textcoords="offset points",
                        xytext=(3, 4), fontsize=7, color="grey")
    if front:
        ax.step([p["tokens"] for p in front], [p["heldout_reward"] for p in front], where="post", linestyle="--",
                color="black", linewidth=1, label="Pareto front")
    ax.set_title("Held-out reward against generated tokens (labels: iteration)", fontsize=11, loc="left")
    ax.set_xlabel("generated tokens (cumulative, training samples)")
    ax.set_ylabel("held-out reward")
    ax.grid(alpha=0.3)
    if runs:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return True


# ---- driver -----------------------------------------------------------------------------------------------------

def log(message: str) -> None:
    print(f"[compute_budget] {message}", file=sys.stderr, flush=True)


def run_point(recipe: str, spp: int, iterations: int, runs_dir: Path, extra: list[str]) -> dict[str, Any]:
    """One `tao-ray run` for one samples-per-prompt value: its curve, or why there is none."""
    overrides = run_overrides(spp, iterations, runs_dir, extra)
    command = [sys.executable, "-m", "tao_ray", "run", recipe, *overrides, "--overwrite"]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        return {"overrides": overrides, "error": f"timed out after {exc.timeout} s", "points": []}
    result: dict[str, Any] = {"overrides": overrides, "wall_s": round(time.perf_counter() - started, 1)}
    summary_path = runs_dir / f"budget-spp{spp}" / "summary.json"
    if not summary_path.is_file():
        return {**result, "returncode": done.returncode, "points": [],
                "error": (done.stderr or done.stdout).strip().splitlines()[-15:]}
    summary = json.loads(summary_path.read_text())
    if done.returncode != 0:  # the iterations it finished still count; say it stopped early
        result["error"] = (done.stderr or done.stdout).strip().splitlines()[-15:]
        result["returncode"] = done.returncode
    return {**result, "points": curve(summary, spp), "startup_s": summary.get("startup_s"),
            "stopped": summary.get("stopped"), "dtypes": summary.get("dtypes")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", default=",".join(map(str, SAMPLES)),
                        help="comma-separated generation.samples_per_prompt values (default 2,4,8)")
    parser.add_argument("--iterations", type=int, default=ITERATIONS, help="run.iterations of every run")
    parser.add_argument("--recipe", default=RECIPE)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="extra dotted override for every run (repeatable); applied after the defaults")
    parser.add_argument("--runs-dir", type=Path, help="keep the runs here (default: a temporary directory)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS.name})")
    parser.add_argument("--plot", type=Path,
                        help=f"PNG file (default {PLOT.name} beside the default --out, else --out with .png)")
    args = parser.parse_args(argv)
    try:
        grid = [int(s) for s in args.samples.split(",") if s.strip()]
    except ValueError:
        grid = []
    if not grid or min(grid) < 1 or args.iterations < 1 or any("=" not in o for o in args.override):
        parser.error("--samples: positive integers, comma-separated; --iterations >= 1; --override KEY=VALUE")
    plot_path = args.plot or (PLOT if args.out == RESULTS else args.out.with_suffix(".png"))
    from tao_ray.run.tracking import hardware

    runs: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tao-ray-compute-budget-") as tmp:
        runs_dir = (args.runs_dir or Path(tmp)).resolve()
        for spp in grid:
            log(f"samples_per_prompt={spp}: tao-ray run {args.recipe}, {args.iterations} iterations")
            runs[str(spp)] = run_point(args.recipe, spp, args.iterations, runs_dir, args.override)
            r = runs[str(spp)]
            log(f"samples_per_prompt={spp}: {len(r['points'])} points, {r.get('wall_s')} s"
                + (f", error: {r['error']}" if "error" in r else ""))
    points = [p for r in runs.values() for p in r["points"]]
    front = pareto_front(points)
    drawn = plot(plot_path, {int(k): r["points"] for k, r in runs.items()}, front)
    report = {"benchmark": "compute_budget", "recipe": args.recipe, "grid": {"samples_per_prompt": grid,
              "iterations": args.iterations}, "overrides": {"default": list(DEFAULT_OVERRIDES),
              "extra": args.override}, "tokens": "cumulative tokens generated for training (evaluation excluded)",
              "wall_s": "cumulative sum of summary.json timing_s (start-up apart)",
              "total_wall_s": round(time.perf_counter() - started, 1), "runs": runs, "points": points,
              "pareto_front": [{k: p[k] for k in ("samples_per_prompt", "iteration", "tokens", "heldout_reward")}
                               for p in front],
              "plot": str(plot_path) if drawn else None, "hardware": hardware()}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}" + (f" and {plot_path}" if drawn else " (no plot: matplotlib not importable)"))
    print(markdown_table(points, front))


if __name__ == "__main__":
    main()
