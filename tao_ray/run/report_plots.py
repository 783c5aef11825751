"""The run report's plots: summary.json rows in, one small PNG per plot out (matplotlib's Agg renderer).

Every plot is drawn even when its numbers are missing (an older run, iteration 0 only, evaluations that measured
nothing): the axes then say "not measured", so the page never shows a broken image. Unmeasured values (null) are
left out of a line rather than drawn as 0.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

# Figure objects, not pyplot: no global figure state and no display backend to choose; savefig renders PNGs
# with Agg.
from matplotlib.figure import Figure

STAGES = ("generate", "score", "train", "sync", "eval", "checkpoint")
SIZE = (6.4, 3.4)
DPI = 90


def value(row: dict[str, Any], dotted: str) -> Any:
    """row["a"]["b"] for "a.b"; None where any part is missing or null."""
    for part in dotted.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def series(rows: list[dict], get: str | Callable[[dict], float | None]) -> tuple[list[int], list[float]]:
    """(iterations, values) of the rows where the value was measured."""
    pick = get if callable(get) else (lambda row: value(row, get))
    points = [(row["iteration"], pick(row)) for row in rows]
    kept = [(i, v) for i, v in points if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return [i for i, _ in kept], [float(v) for _, v in kept]


def after_base(dotted: str) -> Callable[[dict], Any]:
    """A training-stage value; None at iteration 0, which only evaluates the base model (its row holds zeros)."""
    return lambda row: value(row, dotted) if row["iteration"] > 0 else None


def tokens_per_sample(row: dict[str, Any]) -> float | None:
    """Mean tokens per drawn sample. The row has tokens and samples drawn (dropped near-duplicates included), not a
    mean length, so this is the generation cost per sample rather than the kept answers' length."""
    samples = row.get("samples_generated")
    return row.get("tokens_generated", 0) / samples if samples else None


def _figure(title: str, ylabel: str, rows: list[dict]):
    fig = Figure(figsize=SIZE, dpi=DPI)
    ax = fig.subplots()
    _style(ax, title, ylabel, rows)
    return fig, ax


def _style(ax, title: str, ylabel: str, rows: list[dict]) -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel(ylabel)
    ax.set_xlabel("iteration")
    iterations = [row["iteration"] for row in rows] or [0]
    ax.set_xlim(min(iterations) - 0.5, max(iterations) + 0.5)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)


def _not_measured(ax) -> None:
    ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="grey")


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png")


def _lines(path: Path, rows: list[dict], title: str, ylabel: str, keys: list[tuple[str, str | Callable]],
           ylim: tuple[float, float] | None = None) -> None:
    """One line per (label, key), measured points only; 'not measured' when no key has a point."""
    fig, ax = _figure(title, ylabel, rows)
    drawn = 0
    for label, key in keys:
        xs, ys = series(rows, key)
        if xs:
            ax.plot(xs, ys, marker="o", label=label)
            drawn += 1
    if not drawn:
        _not_measured(ax)
    elif len(keys) > 1:
        ax.legend(fontsize=8, loc="best")
    if ylim:
        ax.set_ylim(*ylim)
    _save(fig, path)


def heldout(path: Path, rows: list[dict], best: int | None = None) -> None:
    """Held-out reward (top) and the paired win rate over the base model with its 95% CI (bottom)."""
    fig = Figure(figsize=(SIZE[0], SIZE[1] * 1.6), dpi=DPI)
    top, bottom = fig.subplots(2, 1, sharex=True)
    _style(top, "Held-out reward (label-free, greedy answers)", "mean reward", rows)
    xs, ys = series(rows, "heldout_reward_mean")
    if xs:
        top.plot(xs, ys, marker="o", color="tab:blue")
        if best in xs:
            top.plot([best], [ys[xs.index(best)]], marker="*", markersize=16, color="tab:orange", linestyle="",
                     label=f"best (iteration {best})")
            top.legend(fontsize=8, loc="best")
    else:
        _not_measured(top)
    top.set_xlabel("")
    _style(bottom, "Win rate over the base model (95% CI)", "win rate", rows)
    bottom.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    versus = [(row["iteration"], row["heldout_vs_base"]) for row in rows
              if value(row, "heldout_vs_base.win_rate") is not None]
    if versus:
        xs, ys = [i for i, _ in versus], [v["win_rate"] for _, v in versus]
        low = [y - (v.get("ci95_low") if v.get("ci95_low") is not None else y) for y, (_, v) in zip(ys, versus)]
        high = [(v.get("ci95_high") if v.get("ci95_high") is not None else y) - y for y, (_, v) in zip(ys, versus)]
        bottom.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=4, color="tab:green")
    else:
        _not_measured(bottom)
    bottom.set_ylim(0, 1)
    _save(fig, path)


def train_reward(path: Path, rows: list[dict]) -> None:
    _lines(path, rows, "Train reward (raw scores of the sampled candidates)", "mean reward",
           [("train", "train_reward_mean")])


def diversity(path: Path, rows: list[dict]) -> None:
    _lines(path, rows, "Learning signal and diversity", "fraction / distance",
           [("signal fraction", "diversity.signal_fraction"), ("distinct-1", "diversity.distinct_1"),
            ("distinct-2", "diversity.distinct_2"), ("mean distance", "diversity.mean_pairwise_distance")],
           ylim=(0, 1.05))


def response_length(path: Path, rows: list[dict]) -> None:
    _lines(path, rows, "Response length (tokens per drawn sample)", "tokens", [("tokens", tokens_per_sample)])


def throughput(path: Path, rows: list[dict]) -> None:
    _lines(path, rows, "Generation throughput", "tokens / s", [("tokens/s", "tokens_per_s")])


def weight_sync(path: Path, rows: list[dict]) -> None:
    _lines(path, rows, "Weight sync (learner to every generator)", "seconds", [("sync", after_base("weight_sync_s"))])


def time_breakdown(path: Path, rows: list[dict]) -> None:
    """Stacked seconds per stage for each iteration."""
    fig, ax = _figure("Time per iteration, by stage", "seconds", rows)
    iterations = [row["iteration"] for row in rows]
    bottom = [0.0] * len(rows)
    for stage in STAGES:
        seconds = [value(row, f"timing_s.{stage}") or 0.0 for row in rows]
        if any(seconds):
            ax.bar(iterations, seconds, bottom=bottom, label=stage, width=0.6)
            bottom = [b + s for b, s in zip(bottom, seconds)]
    if any(bottom):
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        _not_measured(ax)
    _save(fig, path)


def length_ratio(path: Path, rows: list[dict], low: float | None = None, high: float | None = None) -> None:
    """The held-out answers' mean length over the base model's, with the guards' bounds: an iteration outside them
    cannot become the best checkpoint."""
    fig, ax = _figure("Held-out answer length over the base model's", "length ratio", rows)
    xs, ys = series(rows, "length_ratio")
    if xs:
        ax.plot(xs, ys, marker="o", color="tab:purple", label="length ratio")
    else:
        _not_measured(ax)
    ax.axhline(1.0, color="grey", linewidth=1)
    for bound, name in ((low, "eval.min_length_ratio"), (high, "eval.max_length_ratio")):
        if bound is not None:
            ax.axhline(bound, color="tab:red", linestyle="--", linewidth=1, label=f"{name} {bound:g}")
    top = max([*ys, *(b for b in (low, high) if b is not None), 1.0])
    ax.set_ylim(0, top * 1.1)
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def behaviour_changes(rows: list[dict]) -> tuple[list[str], list[int], list[list[float | None]]]:
    """(behaviour labels "set: type", iterations, change of each pass rate against the base model's per iteration):
    the rows' by_type entries. None where an iteration did not measure that behaviour."""
    base = (rows[0].get("by_type") or {}) if rows else {}
    labels = [(eval_set, kind) for eval_set, rates in base.items() for kind in rates]
    measured = [row for row in rows if row.get("by_type")]
    changes = [[None if (rate := value(row, "by_type").get(eval_set, {}).get(kind)) is None
                else rate["rate"] - base[eval_set][kind]["rate"] for row in measured] for eval_set, kind in labels]
    return [f"{eval_set}: {kind}" for eval_set, kind in labels], [row["iteration"] for row in measured], changes


def behaviours(path: Path, rows: list[dict]) -> None:
    """A heat map, behaviours x iterations, coloured by the change of each pass rate against the base model: what
    improved (blue) and what was traded away (red)."""
    labels, iterations, changes = behaviour_changes(rows)
    fig = Figure(figsize=(SIZE[0] * 1.25, max(SIZE[1], 0.6 + 0.24 * len(labels))), dpi=DPI)
    ax = fig.subplots()
    ax.set_title("Pass rate by behaviour, change against the base model", fontsize=11, loc="left")
    if not labels or not iterations:
        _not_measured(ax)
        ax.set_axis_off()
        _save(fig, path)
        return
    grid = [[float("nan") if c is None else c for c in line] for line in changes]
    image = ax.imshow(grid, cmap="RdBu", vmin=-0.5, vmax=0.5, aspect="auto")
    ax.set_xticks(range(len(iterations)), [str(i) for i in iterations])
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("iteration")
    fig.colorbar(image, ax=ax, label="pass rate - base")
    _save(fig, path)


def draw_all(plot_dir: Path, rows: list[dict], best: int | None, eval_limits: dict[str, Any] | None = None
             ) -> list[tuple[str, str]]:
    """Writes every plot into plot_dir; returns (file name, caption) in display order. `eval_limits`: the run's eval
    section (the length guards' bounds)."""
    limits = eval_limits or {}
    plots = [("heldout.png", "Held-out reward and win rate over the base model", partial(heldout, best=best)),
             ("behaviours.png", "Pass rate by behaviour against the base model", behaviours),
             ("length_ratio.png", "Answer length against the base model, with both guards",
              partial(length_ratio, low=limits.get("min_length_ratio"), high=limits.get("max_length_ratio"))),
             ("train_reward.png", "Train reward", train_reward),
             ("diversity.png", "Signal fraction and diversity", diversity),
             ("response_length.png", "Response length", response_length),
             ("time_breakdown.png", "Time per stage", time_breakdown),
             ("throughput.png", "Tokens per second", throughput),
             ("weight_sync.png", "Weight-sync seconds", weight_sync)]
    plot_dir.mkdir(parents=True, exist_ok=True)
    for name, _, draw in plots:
        draw(plot_dir / name, rows)
    return [(name, caption) for name, caption, _ in plots]
