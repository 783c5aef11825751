"""A run's report: RUN_DIR/summary.json (plus RUN_DIR/samples/ where the run saved answers) in; RUN_DIR/report.html
and the PNG plots it shows (RUN_DIR/report/*.png, linked by relative paths) out.

The page holds the outcome (best iteration, why the run stopped), a table of numbers per iteration, the plots, a
few held-out answers of the base and the best model side by side, the hardware and where every actor ran. It reads
only files, so it works on a finished, a killed or an older run; unmeasured values (null) show as "–".

Sample answers: the held-out evaluation calls `save_samples`, which writes RUN_DIR/samples/iter-NNNN.jsonl with
the greedy answers to the first SAMPLE_PROMPTS held-out prompts ({"prompt_id", "prompt", "answer", "score"} a line).
"""

from __future__ import annotations

import datetime
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tao_ray.errors import TaoError

SAMPLE_PROMPTS = 5
PLOT_DIR = "report"
SHOWN_CHARS = 1200  # an answer longer than this is cut in the page (the samples file keeps it whole)


# ---- sample answers (written by the driver) --------------------------------------------------------------------

def samples_path(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / "samples" / f"iter-{iteration:04d}.jsonl"


def save_samples(run_dir: Path, iteration: int, prompts: Sequence, answers: Sequence[str],
                 scores: Sequence[float | None] | None = None, limit: int = SAMPLE_PROMPTS) -> Path:
    """Greedy answers to the first `limit` held-out prompts (PromptRecords), with their scores when given.
    Written to a temporary file and renamed, so a killed run leaves a whole file or none."""
    path = samples_path(run_dir, iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, (prompt, answer) in enumerate(list(zip(prompts, answers))[:limit]):
        user = [m["content"] for m in prompt.messages if m["role"] == "user"]
        lines.append(json.dumps({"prompt_id": prompt.id, "prompt": user[-1] if user else "", "answer": answer,
                                 "score": scores[k] if scores is not None else None}))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, path)
    return path


def load_samples(run_dir: Path, iteration: int | None) -> list[dict] | None:
    """The saved answers of one iteration; None when the run saved none (older runs, no evaluation there)."""
    path = samples_path(run_dir, iteration) if iteration is not None else None
    if path is None or not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- the report ------------------------------------------------------------------------------------------------

def load_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise TaoError(f"{run_dir}: no summary.json; report takes a tao-ray run directory (runs/<name>)")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TaoError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); is the file complete?") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("iterations"), list):
        raise TaoError(f"{path}: no 'iterations' list; report takes the summary.json that `tao-ray run` writes")
    return summary


def write_report(run_dir: Path) -> Path:
    """Writes RUN_DIR/report.html and its plots; returns the page's path."""
    from tao_ray.run import report_plots  # matplotlib loads only when a report is drawn, not with the driver

    run_dir = Path(run_dir)
    summary = load_summary(run_dir)
    rows = summary["iterations"]
    plots = report_plots.draw_all(run_dir / PLOT_DIR, rows, summary.get("best_iteration"),
                                  (summary.get("config") or {}).get("eval"))
    page = render(summary, [(f"{PLOT_DIR}/{name}", caption) for name, caption in plots], run_dir)
    path = run_dir / "report.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page)
    os.replace(tmp, path)
    return path


def after_run(run_dir: Path) -> str:
    """The driver's hook: writes the report and returns a line saying where. A report that cannot be drawn must not
    fail a run whose numbers are already safe in summary.json, so any error becomes the returned line."""
    try:
        return f"report: {write_report(run_dir)}"
    except Exception as exc:
        return f"report not written ({type(exc).__name__}: {exc}); retry with: tao-ray report {run_dir}"


def fmt(value: Any, decimals: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return html.escape(str(value))


def _table(header: list[str], body: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    lines = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in body)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>'


def _pairs(items: list[tuple[str, str]]) -> str:
    return '<table class="pairs">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items) + "</table>"


def _versus(row: dict, name: str = "heldout") -> str:
    vs = row.get(f"{name}_vs_base") or {}
    if vs.get("win_rate") is None:
        return "–"
    return f"{vs['win_rate']:.2f} [{fmt(vs.get('ci95_low'), 2)}, {fmt(vs.get('ci95_high'), 2)}]"


def outcome(summary: dict[str, Any]) -> list[tuple[str, str]]:
    rows, config = summary["iterations"], summary.get("config") or {}
    best = summary.get("best_iteration")
    best_row = next((row for row in rows if row["iteration"] == best), {})
    base = rows[0].get("heldout_reward_mean") if rows else None
    total = sum(sum((row.get("timing_s") or {}).values()) for row in rows)
    return [("Recipe", fmt(summary.get("recipe"))), ("Run", fmt(summary.get("run_name"))),
            ("Model", fmt(summary.get("model"))),
            ("Algorithm / reward", f"{fmt((config.get('training') or {}).get('algorithm'))} / "
                                   f"{fmt((config.get('scoring') or {}).get('reward'))}"),
            ("Stopped", "still running, or killed before it finished" if summary.get("stopped") == "running"
             else fmt(summary.get("stopped"))),
            ("Iterations", fmt(rows[-1]["iteration"] if rows else None)),
            ("Best iteration", fmt(best) if best is not None else "none measured"),
            ("Held-out reward: base → best", f"{fmt(base)} → {fmt(summary.get('best_heldout_reward'))}"),
            ("Best's win rate over base [95% CI]", _versus(best_row)),
            ("Weight sync", fmt((summary.get("weight_sync") or {}).get("path"))),
            ("Loop time (all stages)", f"{total:.1f} s")]


def iteration_table(rows: list[dict]) -> str:
    from tao_ray.run.report_plots import after_base, tokens_per_sample  # matplotlib: see write_report

    body = [[str(row["iteration"]), fmt(row.get("heldout_reward_mean")), _versus(row),
             fmt(row.get("transfer_reward_mean")), fmt(row.get("unseen_reward_mean")),
             fmt(row.get("general_reward_mean")),
             fmt(row.get("length_ratio"), 2), fmt("; ".join(row.get("vetoed") or []) or None),
             fmt(row.get("train_reward_mean")), fmt((row.get("diversity") or {}).get("signal_fraction"), 2),
             fmt(tokens_per_sample(row), 1), fmt(row.get("tokens_per_s"), 0), fmt(after_base("weight_sync_s")(row), 2),
             f"{sum((row.get('timing_s') or {}).values()):.1f}"] for row in rows]
    return _table(["iter", "held-out", "win rate vs base [95% CI]", "transfer", "unseen", "general", "length vs base",
                   "vetoed", "train", "signal", "tokens/sample", "tokens/s",
                   "sync s", "total s"], body, "numbers")


def samples_section(summary: dict[str, Any], run_dir: Path) -> str:
    rows = summary["iterations"]
    base = load_samples(run_dir, 0)
    best = summary.get("best_iteration")
    label = "best"
    if best in (None, 0):  # the base stayed best: show the last evaluated answers instead
        saved = [row["iteration"] for row in rows if row["iteration"] > 0 and load_samples(run_dir, row["iteration"])]
        best, label = (saved[-1], "last") if saved else (None, "")
    other = load_samples(run_dir, best)
    if base is None and other is None:
        return "<p class=note>No sample answers were saved in this run (runs before tao-ray saved them).</p>"
    by_id = {s["prompt_id"]: s for s in other or []}
    ids = [s["prompt_id"] for s in base or other]
    base_by_id = {s["prompt_id"]: s for s in base or []}

    def cell(sample: dict | None) -> str:
        if sample is None:
            return '<span class="note">not saved</span>'
        text = sample["answer"] if len(sample["answer"]) <= SHOWN_CHARS else sample["answer"][:SHOWN_CHARS] + " …"
        return f'<pre>{html.escape(text)}</pre><div class="score">score {fmt(sample.get("score"))}</div>'

    body = []
    for prompt_id in ids:
        first = base_by_id.get(prompt_id) or by_id.get(prompt_id)
        body.append([f'<b>{html.escape(str(prompt_id))}</b><div class="prompt">{html.escape(first["prompt"])}</div>',
                     cell(base_by_id.get(prompt_id)), cell(by_id.get(prompt_id))])
    right = "trained model" if best is None else f"{label} (iteration {best})" + (
        "; the base stayed best" if label == "last" else "")
    return _table(["prompt", "base (iteration 0)", right], body, "samples")


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:14px}
td,th{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
table.numbers td{text-align:right;font-variant-numeric:tabular-nums}th{background:#f5f5f5}
table.pairs th{width:16em}table.samples{width:100%}table.samples td{width:40%}
table.samples td:first-child{width:20%}
pre,.prompt{white-space:pre-wrap;word-break:break-word;margin:0;font-size:13px}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:12px}
figure{margin:0;border:1px solid #eee;padding:6px}figure img{width:100%}figcaption{font-size:13px;color:#555}
.note,.score{color:#666;font-size:13px}
"""


def render(summary: dict[str, Any], plots: list[tuple[str, str]], run_dir: Path) -> str:
    """The whole page: inline CSS, no scripts, images by relative path."""
    name = summary.get("run_name") or Path(run_dir).name
    rows = summary["iterations"]
    figures = "".join(f'<figure><img src="{html.escape(src)}" alt="{html.escape(caption)}">'
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>" for src, caption in plots)
    hardware = _pairs([(html.escape(str(k)), fmt(v)) for k, v in (summary.get("hardware") or {}).items()])
    actors = summary.get("actors") or []
    where = (_table(["role", "rank", "node ip", "node id"],
                    [[fmt(a.get("role")), fmt(a.get("rank")), fmt(a.get("node_ip")), fmt((a.get("node_id") or "")[:16])]
                     for a in actors]) if actors else "<p class=note>Actor placement was not recorded.</p>")
    nodes = len({a.get("node_id") for a in actors})
    config = html.escape(json.dumps(summary.get("config") or {}, indent=2))
    made = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tao-ray report: {html.escape(str(name))}</title>
<style>{STYLE}</style></head><body>
<h1>tao-ray report: {html.escape(str(name))}</h1>
<p class="note">Recipe {fmt(summary.get("recipe"))}. Written {made} from summary.json. "–": not measured.</p>
<h2>Outcome</h2>{_pairs(outcome(summary))}
<h2>Per iteration</h2>{iteration_table(rows)}
<p class="note">Held-out rewards are label-free scores of greedy answers; the win rate is paired per prompt against
the base model (ties count half). Tokens per sample counts every drawn sample, dropped near-duplicates included.</p>
<h2>Plots</h2><div class="plots">{figures}</div>
<h2>Sample answers</h2>{samples_section(summary, run_dir)}
<h2>Hardware</h2>{hardware}
<h2>Where actors ran ({len(actors)} actors on {nodes} node(s))</h2>{where}
<details><summary>Recipe settings</summary><pre>{config}</pre></details>
</body></html>
"""
