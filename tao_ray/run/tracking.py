"""Where a run's numbers go: the console (one line per stage, a table row per iteration), W&B, and summary.json.

summary.json is rewritten atomically after every iteration, so a killed run keeps every completed iteration.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: tracking stays importable without the batch's torch
    from tao_ray.core.batch import Generation
    from tao_ray.data.prompts import PromptRecord

# (header, summary key, decimals): one console table row per iteration.
COLUMNS = [("iter", "iteration", 0), ("heldout", "heldout_reward_mean", 3), ("transfer", "transfer_reward_mean", 3),
           ("unseen", "unseen_reward_mean", 3),
           ("len_x", "length_ratio", 2), ("train", "train_reward_mean", 3),
           ("signal", "diversity.signal_fraction", 2), ("kept", "samples_kept", 0),
           ("gen_s", "timing_s.generate", 1), ("score_s", "timing_s.score", 1), ("train_s", "timing_s.train", 1),
           ("sync_s", "timing_s.sync", 1), ("eval_s", "timing_s.eval", 1), ("tok/s", "tokens_per_s", 0)]
_WIDTH = 8
WANDB_ID_FILE = "wandb_run_id"
NAMESPACES = ("eval", "reward", "train", "diversity", "timing_s", "perf", "sync", "samples")


def hardware() -> dict[str, Any]:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "cuda_devices": torch.cuda.device_count()}
    if info["cuda_devices"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _lookup(row: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


class Tracker:
    def __init__(self, run_dir: Path, summary: dict[str, Any], wandb_enabled: bool, wandb_mode: str,
                 project: str, config: dict[str, Any], resume: bool = False):
        self.run_dir = run_dir
        self.summary = summary
        self.summary.setdefault("iterations", [])
        self.wandb_run = None
        if wandb_enabled:
            self.wandb_run = self._start_wandb(wandb_mode, project, config, resume)
        self._header_printed = False
        self.started = time.perf_counter()
        self.iteration_started = self.started
        self.iteration_seconds: list[float] = []

    def _start_wandb(self, mode: str, project: str, config: dict[str, Any], resume: bool):
        if mode == "auto":
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        # The run id lives in the run dir, so `--resume` appends to the same W&B run instead of starting another.
        id_file = self.run_dir / WANDB_ID_FILE
        try:
            import wandb

            run_id = id_file.read_text().strip() if resume and id_file.is_file() else secrets.token_hex(4)
            run = wandb.init(project=project, name=self.run_dir.name, dir=str(self.run_dir), mode=mode,
                             config=config, id=run_id, resume="allow", reinit="finish_previous",
                             settings=wandb.Settings(silent=True, console="off"))
            id_file.write_text(run_id)
            # Every namespace is plotted against the TAO iteration, not W&B's own step counter.
            run.define_metric("iteration")
            for namespace in NAMESPACES:
                run.define_metric(f"{namespace}/*", step_metric="iteration")
        except Exception as exc:  # tracking must never take a run down
            self.stage(f"W&B disabled: {type(exc).__name__}: {exc}")
            return None
        self.summary["wandb"] = {"mode": mode, "id": run_id, "dir": str(Path(run.dir).parent) if run.dir else None}
        return run

    @staticmethod
    def stage(message: str) -> None:
        print(f"[tao-ray] {message}", flush=True)

    def log_iteration(self, row: dict[str, Any]) -> None:
        self.summary["iterations"].append(row)
        self.flush()
        if not self._header_printed:
            print(" ".join(f"{name:>{_WIDTH}}" for name, _, _ in COLUMNS), flush=True)
            self._header_printed = True
        cells = []
        for _, key, decimals in COLUMNS:
            value = _lookup(row, key)
            cells.append(f"{value:>{_WIDTH}.{decimals}f}" if value is not None else f"{'-':>{_WIDTH}}")
        print(" ".join(cells), flush=True)
        if self.wandb_run is not None:
            self.wandb_run.log({"iteration": row["iteration"], **wandb_metrics(row)})

    def log_samples(self, iteration: int, rows: list[dict[str, Any]]) -> None:
        """A table of sample prompts, candidates and scores for this iteration (W&B only)."""
        if self.wandb_run is None or not rows:
            return
        import wandb

        columns = list(rows[0])
        table = wandb.Table(columns=["iteration", *columns], data=[[iteration, *r.values()] for r in rows])
        self.wandb_run.log({"iteration": iteration, "samples/table": table})

    def progress(self, iteration: int, iterations: int, stage: str, seconds: float, note: str) -> None:
        """One line per stage: what it did, how long it took, and when the run should end."""
        eta = estimate_eta(self.iteration_seconds, iteration, iterations,
                           time.perf_counter() - self.iteration_started)
        left = f"eta {format_duration(eta)}" if eta is not None else "eta -"
        self.stage(f"iter {iteration}/{iterations} {stage:<10} {seconds:6.1f}s  {note:<36} {left}")

    def iteration_begins(self) -> None:
        self.iteration_started = time.perf_counter()

    def iteration_done(self, iteration: int) -> None:
        """Start-up and the base model's evaluation are not iterations: the ETA counts from iteration_begins."""
        self.iteration_seconds.append(time.perf_counter() - self.iteration_started)

    def flush(self) -> None:
        write_json_atomic(self.run_dir / "summary.json", self.summary)

    def finish(self) -> None:
        self.flush()
        if self.wandb_run is not None:
            self.wandb_run.finish()
        sys.stdout.flush()


def wandb_metrics(row: dict[str, Any]) -> dict[str, float]:
    """A summary row as namespaced metrics, the way RL dashboards group them: eval/ (held-out), reward/ (training
    scores), train/ (the learner step), diversity/, timing_s/, perf/ (throughput), sync/ (weight sync)."""
    metrics: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[name] = value

    put("eval/heldout_reward", row.get("heldout_reward_mean"))
    versus = row.get("heldout_vs_base") or {}
    for key, name in (("win_rate", "win_rate_vs_base"), ("ci95_low", "win_rate_ci95_low"),
                      ("ci95_high", "win_rate_ci95_high"), ("mean_diff", "mean_diff_vs_base")):
        put(f"eval/{name}", versus.get(key))
    put("eval/scoring_failed", (row.get("heldout_scoring") or {}).get("scoring/failed"))
    # The guards' inputs: the skill in other words, a skill outside the task, and the serving cost.
    put("eval/transfer_reward", row.get("transfer_reward_mean"))
    put("eval/transfer_win_rate_vs_base", (row.get("transfer_vs_base") or {}).get("win_rate"))
    put("eval/unseen_reward", row.get("unseen_reward_mean"))
    put("eval/unseen_win_rate_vs_base", (row.get("unseen_vs_base") or {}).get("win_rate"))
    put("eval/general_reward", row.get("general_reward_mean"))
    put("eval/general_delta_vs_base", row.get("general_delta"))
    put("eval/response_tokens", row.get("response_tokens_mean"))
    put("eval/length_ratio_vs_base", row.get("length_ratio"))
    put("eval/matched_length_win_rate_vs_base", (row.get("heldout_matched_length") or {}).get("win_rate"))
    if "vetoed" in row:
        put("eval/vetoed", len(row["vetoed"]))
    for eval_set, rates in (row.get("by_type") or {}).items():  # eval/by_type/heldout/max_words
        for kind, rate in rates.items():
            put(f"eval/by_type/{eval_set}/{kind}", rate.get("rate"))
    put("reward/mean", row.get("train_reward_mean"))
    for key, value in (row.get("scoring") or {}).items():
        put(key.replace("scoring/", "reward/"), value)  # reward/<scorer>, reward/failed
    for key, value in (row.get("train") or {}).items():
        put(f"train/{key}", value)
    put("train/samples_kept", row.get("samples_kept"))
    put("train/samples_generated", row.get("samples_generated"))
    for key, value in (row.get("diversity") or {}).items():
        put(f"diversity/{key}", value)
    for key, value in (row.get("timing_s") or {}).items():
        put(f"timing_s/{key}", value)
    put("perf/tokens_generated", row.get("tokens_generated"))
    put("perf/generate_tokens_per_s", row.get("tokens_per_s"))
    train = row.get("train") or {}
    if train.get("tokens") and train.get("seconds"):
        put("perf/learner_tokens_per_s", train["tokens"] / train["seconds"])
    put("perf/mfu", train.get("mfu"))  # on GPUs with a known peak (core/perf.py); None on CPUs
    put("sync/seconds", row.get("weight_sync_s"))
    put("sync/receive_seconds", row.get("weight_receive_s"))
    return metrics


def estimate_eta(done_seconds: list[float], iteration: int, iterations: int, into_current: float) -> float | None:
    """Seconds until the last iteration ends: the mean iteration so far times what is left of this one and the
    rest (None before the first training iteration has ended)."""
    if not done_seconds:
        return None
    per_iteration = sum(done_seconds) / len(done_seconds)
    return max(per_iteration - into_current, 0.0) + per_iteration * max(iterations - iteration, 0)


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def samples_table(prompts: list[PromptRecord], generations: list[Generation], raw: list[list[float | None]],
                  groups: int = 4) -> list[dict[str, Any]]:
    """The first few groups as rows (prompt, candidate, score): what W&B shows as this iteration's samples."""
    return [{"prompt_id": prompts[g.prompt_index].id, "prompt": prompts[g.prompt_index].messages[-1]["content"],
             "candidate": text, "score": score}
            for g, scores in list(zip(generations, raw))[:groups] for text, score in zip(g.response_texts, scores)]
