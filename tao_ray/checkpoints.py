"""Iteration checkpoints: written to a temporary directory, then renamed into place, so a checkpoint directory
either is complete or does not exist. Keeps the newest K plus the best one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                    "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model")


def checkpoint_dir(run_dir: Path, iteration: int) -> Path:
    return run_dir / "checkpoints" / f"iter-{iteration:04d}"


def staging_dir(run_dir: Path, iteration: int) -> Path:
    path = run_dir / "checkpoints" / f".tmp-iter-{iteration:04d}"
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def commit(staging: Path, final: Path, base_model_dir: str) -> Path:
    """Add the tokenizer files (learners save weights and config only), then rename into place."""
    for name in _TOKENIZER_FILES:
        source = Path(base_model_dir) / name
        if source.is_file():
            shutil.copy2(source, staging / name)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    return final


def prune(run_dir: Path, keep_last: int, best_iteration: int | None) -> None:
    root = run_dir / "checkpoints"
    kept = sorted(p for p in root.glob("iter-*") if p.is_dir())
    best = checkpoint_dir(run_dir, best_iteration) if best_iteration is not None else None
    for path in kept[:-keep_last] if keep_last else kept:
        if path != best:
            shutil.rmtree(path, ignore_errors=True)
