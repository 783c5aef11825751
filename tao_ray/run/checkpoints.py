"""Iteration checkpoints, atomic and resumable.

Layout of one checkpoint, `runs/<name>/checkpoints/iter-NNNN/`:
    model/        the policy as an HF directory (weights, config, tokenizer): for export, eval and serving
    learner/      DeepSpeed state of every rank (weights + optimizer): for an exact resume
    driver.json   the loop's own state: iteration, prompt order, best iteration so far

Everything is written under `.tmp-iter-NNNN/` and renamed into place last, so a directory named `iter-NNNN` is
complete by construction: a run killed mid-write leaves only a `.tmp-` directory, which is ignored and replaced.
Retention: the newest K resumable checkpoints keep everything; the best one keeps its `model/`. Between
run.checkpoint_every iterations a new best is written as `model/` and `driver.json` only (not resumable).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tao_ray.config import Recipe

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                    "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model")
DRIVER_STATE = "driver.json"


def root(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def checkpoint_dir(run_dir: Path, iteration: int) -> Path:
    return root(run_dir) / f"iter-{iteration:04d}"


def model_dir(run_dir: Path, iteration: int) -> Path:
    return checkpoint_dir(run_dir, iteration) / "model"


def staging_dir(run_dir: Path, iteration: int) -> Path:
    path = root(run_dir) / f".tmp-iter-{iteration:04d}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def commit(staging: Path, final: Path, base_model_dir: str, driver_state: dict[str, Any]) -> Path:
    """Complete a staged checkpoint (tokenizer files, driver state) and rename it into place."""
    for name in _TOKENIZER_FILES:
        source = Path(base_model_dir) / name
        if source.is_file():
            shutil.copy2(source, staging / "model" / name)
    (staging / DRIVER_STATE).write_text(json.dumps(driver_state, indent=2))
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return final


def complete(run_dir: Path) -> list[Path]:
    """Checkpoints that can be resumed from, oldest first."""
    return sorted(p for p in root(run_dir).glob("iter-*") if (p / DRIVER_STATE).is_file() and (p / "learner").is_dir())


def latest(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    found = complete(run_dir)
    if not found:
        return None
    return found[-1], json.loads((found[-1] / DRIVER_STATE).read_text())


def set_aside(run_dir: Path, resume: bool) -> Path | None:
    """A new run (no --resume) never overwrites an earlier one: a run dir holding checkpoints is renamed to
    <name>.prev-<timestamp> beside it, so nothing computed is lost. Returns where it went (None: nothing to move)."""
    if resume or not complete(run_dir):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = run_dir.with_name(f"{run_dir.name}.prev-{stamp}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = run_dir.with_name(f"{run_dir.name}.prev-{stamp}-{suffix}")
    os.replace(run_dir, target)
    return target


def prune(run_dir: Path, keep_last: int, best_iteration: int | None) -> None:
    """Keep the newest `keep_last` resumable checkpoints and the best one's model; a model-only checkpoint (a new
    best between run.checkpoint_every) goes once it is no longer the best. `best_iteration` None: no held-out
    evaluation has been measured yet, so no checkpoint is kept as the best."""
    every = sorted(p for p in root(run_dir).glob("iter-*") if p.is_dir())
    keep = set([p for p in every if (p / "learner").is_dir()][-keep_last:])
    best = None if best_iteration is None else checkpoint_dir(run_dir, best_iteration)
    for path in every:
        if path in keep:
            continue
        if path == best:
            shutil.rmtree(path / "learner", ignore_errors=True)  # the best is kept for its model only
        else:
            shutil.rmtree(path, ignore_errors=True)


def resume_command(recipe: Recipe) -> str:
    """The exact command that continues this run (its output dir spelled out: the cwd may differ next time)."""
    overrides = [o for o in recipe.overrides if not o.startswith("run.output_dir=")]
    words = ["tao-ray", "run", recipe.source, *overrides, f"run.output_dir={recipe.run.output_dir}", "--resume"]
    return " ".join(shlex.quote(word) for word in words)
