"""Where a run's numbers go: the console (one line per stage, a table row per iteration), W&B, and summary.json.

summary.json is rewritten atomically after every iteration, so a killed run keeps every completed iteration.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

# (header, summary key, decimals): one console table row per iteration.
COLUMNS = [("iter", "iteration", 0), ("heldout", "heldout_reward_mean", 3), ("train", "train_reward_mean", 3),
           ("signal", "diversity.signal_fraction", 2), ("kept", "samples_kept", 0),
           ("gen_s", "timing_s.generate", 1), ("score_s", "timing_s.score", 1), ("train_s", "timing_s.train", 1),
           ("sync_s", "timing_s.sync", 1), ("eval_s", "timing_s.eval", 1), ("tok/s", "tokens_per_s", 0)]
_WIDTH = 8


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
                 project: str, config: dict[str, Any]):
        self.run_dir = run_dir
        self.summary = summary
        self.summary.setdefault("iterations", [])
        self.wandb_run = None
        if wandb_enabled:
            self.wandb_run = self._start_wandb(wandb_mode, project, config)
        self._header_printed = False

    def _start_wandb(self, mode: str, project: str, config: dict[str, Any]):
        if mode == "auto":
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        try:
            import wandb

            run = wandb.init(project=project, name=self.run_dir.name, dir=str(self.run_dir), mode=mode,
                             config=config, reinit="finish_previous")
        except Exception as exc:  # tracking must never take a run down
            self.stage(f"W&B disabled: {type(exc).__name__}: {exc}")
            return None
        self.summary["wandb"] = {"mode": mode, "dir": str(Path(run.dir).parent) if run.dir else None}
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
            self.wandb_run.log(_flatten(row), step=row["iteration"])

    def flush(self) -> None:
        write_json_atomic(self.run_dir / "summary.json", self.summary)

    def finish(self) -> None:
        self.flush()
        if self.wandb_run is not None:
            self.wandb_run.finish()
        sys.stdout.flush()


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = value
    return flat
