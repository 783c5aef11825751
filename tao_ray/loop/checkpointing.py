"""The loop's checkpoints: started at the end of an iteration, written by the learners in the background while the
next iteration runs, completed (renamed into place, older ones pruned) once every file is written; and loaded back
into the learners on resume or after a learner failure. run/checkpoints.py holds the file layout.

One checkpoint is pending at a time. The driver decides what goes in (the loop's state: iteration, prompt order,
best iteration) and applies what a loaded checkpoint restores to its own state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tao_ray.config import Recipe
from tao_ray.run import checkpoints


@dataclass
class Pending:
    staging: Path
    iteration: int
    state: dict[str, Any]
    """The loop's state at this checkpoint: iteration, prompt order, best iteration."""
    best: int | None


class Checkpointer:
    def __init__(self, recipe: Recipe, run_dir: Path, model_dir: str, stage):
        """`stage(line)` prints a progress line."""
        self.recipe, self.run_dir, self.model_dir, self.stage = recipe, run_dir, model_dir, stage
        self.pending: Pending | None = None
        self.write_s: float | None = None  # how long the last completed checkpoint took to write

    def due(self, iteration: int, best: int | None) -> bool | None:
        """What to write after `iteration`: True the full resumable state (every run.checkpoint_every iterations
        and the last), False the policy only (a new best in between), None nothing."""
        run = self.recipe.run
        if iteration % run.checkpoint_every == 0 or iteration == run.iterations:
            return True
        return False if best == iteration else None

    def start(self, learners, iteration: int, full: bool, state: dict[str, Any], best: int | None) -> None:
        """The learners copy their state and write it in the background while the next iteration runs; the
        previous checkpoint is completed first (one at a time)."""
        self.complete(learners)
        staging = checkpoints.staging_dir(self.run_dir, iteration)
        learners.every("save_checkpoint", str(staging), full, stage="checkpoint")
        self.pending = Pending(staging, iteration, state, best)

    def complete(self, learners, wait: bool = True) -> None:
        """Wait for the pending checkpoint's files, rename it into place and prune older ones. Without `wait`, only
        if every file is written already (asked between stages, so that a checkpoint becomes resumable early)."""
        if self.pending is None:
            return
        if not wait and not all(learners.every("writes_done")):
            return
        pending, self.pending = self.pending, None
        self.write_s = max(learners.every("wait_for_writes", stage="checkpoint"))
        final = checkpoints.commit(pending.staging, checkpoints.checkpoint_dir(self.run_dir, pending.iteration),
                                   self.model_dir, pending.state)
        checkpoints.prune(self.run_dir, self.recipe.run.keep_checkpoints, pending.best)
        self.stage(f"checkpoint {final.name} complete (written in {self.write_s:.1f}s in the background)")

    def abandon(self) -> None:
        """The learners that were writing the pending checkpoint are gone: its staged files are incomplete."""
        self.pending = None

    def load(self, learners, path: Path) -> dict[str, tuple[float, float]]:
        """Every rank's weights and optimizer state from a checkpoint; then the recipe's optimizer settings, which
        win over the checkpoint's (run/resume.py). Returns {training.<name>: (restored, now)} for those changed."""
        learners.every("load_state", str(path / "learner"), stage="checkpoint")
        training = self.recipe.training
        optimizer = learners.every("apply_optimizer_settings", training.lr, training.weight_decay,
                                   training.max_grad_norm)[0]
        return {f"training.{name}": values for name, values in optimizer.items() if values[0] != values[1]}
