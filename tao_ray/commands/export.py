"""Export a run's best (or a chosen) checkpoint as a standalone HF model directory (weights, config, tokenizer).

In: a run directory (with summary.json). Out: `out`, written via a temporary directory and renamed into place.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from tao_ray.errors import TaoError
from tao_ray.run.checkpoints import model_dir


def best_model_dir(run_dir: Path) -> Path:
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise TaoError(f"{run_dir}: no summary.json; pass the directory of a tao-ray run (runs/<name>)")
    summary = json.loads(summary_path.read_text())
    if summary.get("checkpoint_dir") is None and summary.get("iterations"):
        raise TaoError(f"{summary_path}: no held-out evaluation of this run could be scored, so it has no best "
                       "checkpoint; pass --iteration N to export a given one")
    source = Path(summary.get("checkpoint_dir") or "")
    if not (source / "config.json").is_file():
        raise TaoError(f"{summary_path}: key 'checkpoint_dir' ({source}) is not a model directory; "
                       "the run has no checkpoint yet")
    return source


def iteration_model_dir(run_dir: Path, iteration: int) -> Path:
    source = model_dir(run_dir, iteration)
    if not (source / "config.json").is_file():
        raise TaoError(f"{run_dir}: no checkpoint for iteration {iteration} (only the newest and the best are kept)")
    return source


def export(run_dir: Path, out: Path, iteration: int | None = None) -> Path:
    source = best_model_dir(run_dir) if iteration is None else iteration_model_dir(run_dir, iteration)
    if out.exists() and any(out.iterdir()):
        raise TaoError(f"{out}: exists and is not empty; choose a new --out directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def from_args(args: argparse.Namespace) -> int:
    print(export(Path(args.run_dir), Path(args.out), args.iteration))
    return 0
