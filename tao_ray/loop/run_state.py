"""The driver's durable state: checkpoints written in the background, resuming from one, and restarting the
learner ranks from one after a failure.

TaoDriver inherits these steps from `RunState`; they read and replace its recipe, learners, generators, weight sync,
prompt order and summary rows, which is why they live on the driver rather than beside it. checkpoints.py holds the
file layout they use.
"""

from __future__ import annotations

import time
from typing import Any

import ray

from tao_ray.core import selection
from tao_ray.data.order import PromptOrder
from tao_ray.errors import TaoError
from tao_ray.loop import evaluation
from tao_ray.run import checkpoints, resume
from tao_ray.runtime import faults, launch


class RunState:
    pending_checkpoint = None  # (staging dir, iteration, driver state, best) while its files are written
    checkpoint_write_s: float | None = None  # how long the last completed checkpoint took to write

    def checkpoint(self, iteration: int, heldout: float | None) -> None:
        """Start a checkpoint: every run.checkpoint_every iterations (and the last) the policy, every rank's
        optimizer state and the loop's state; in between only a new best policy. The learners copy their state
        and write it in the background while the next iteration runs; the previous checkpoint is completed first
        (one at a time), and each is renamed into place only once every file is written."""
        self.complete_checkpoint()
        best, _ = self.best((iteration, heldout))
        run = self.recipe.run
        full = iteration % run.checkpoint_every == 0 or iteration == run.iterations
        if not full and best != iteration:
            return
        staging = checkpoints.staging_dir(self.run_dir, iteration)
        self.supervisor.on_learners(self.learners, lambda learner, _: learner.save_checkpoint.remote(
            str(staging), full), "checkpoint")
        state = {"iteration": iteration, "prompt_order": self.order_state(), "best": best}
        self.pending_checkpoint = (staging, iteration, state, best)

    def complete_checkpoint(self, wait: bool = True) -> None:
        """Wait for the pending checkpoint's files, rename it into place and prune older ones. Without `wait`, only
        if every file is written already (asked between stages, so that a checkpoint becomes resumable early)."""
        if self.pending_checkpoint is None:
            return
        if not wait and not all(self.supervisor.on_learners(
                self.learners, lambda learner, _: learner.writes_done.remote(), "control")):
            return
        staging, iteration, state, best = self.pending_checkpoint
        self.pending_checkpoint = None
        self.checkpoint_write_s = max(self.supervisor.on_learners(
            self.learners, lambda learner, _: learner.wait_for_writes.remote(), "checkpoint"))
        final = checkpoints.commit(staging, checkpoints.checkpoint_dir(self.run_dir, iteration), self.inputs.model_dir,
                                   state)
        checkpoints.prune(self.run_dir, self.recipe.run.keep_checkpoints, best)
        self.tracker.stage(f"checkpoint {final.name} complete (written in {self.checkpoint_write_s:.1f}s in the "
                           "background)")

    def restore(self) -> int:
        """Continue from the newest complete checkpoint: learner state, generator weights, prompt order and the
        summary rows up to it. Returns the iteration to continue after (0 when there is nothing to resume)."""
        found = checkpoints.latest(self.run_dir)
        if found is None:
            self.tracker.stage("nothing to resume: no complete checkpoint yet; starting from iteration 0")
            return 0
        done = self.load_checkpoint(*found, rows=self.previous_rows)
        summary = self.tracker.summary
        # Earlier resumes stay listed; each resume_changes entry names the iteration it resumed from.
        changes = resume.compare(self.previous["config"], self.recipe).record() if "config" in self.previous else {}
        changes["optimizer"] = self.optimizer_changes
        summary["resumed_from"] = [*self.previous.get("resumed_from", []), done]
        summary["resume_changes"] = [*self.previous.get("resume_changes", []), {"iteration": done, **changes}]
        self.tracker.stage(f"resumed from {found[0]} (iteration {done})")
        if changes["optimizer"]:
            self.tracker.stage("set on the restored optimizer (the checkpoint held the old values): " + ", ".join(
                f"{key} {old:g} -> {new:g}" for key, (old, new) in changes["optimizer"].items()))
        return done

    def load_checkpoint(self, path, state: dict[str, Any], rows: list[dict]) -> int:
        """Learners, generators, prompt order and summary rows back to a checkpoint's iteration."""
        self.supervisor.on_learners(self.learners, lambda learner, _: learner.load_state.remote(str(path / "learner")),
                                    "checkpoint")
        # load_state brings back the checkpoint's lr, weight decay and clipping; the recipe's win (resume.py).
        training = self.recipe.training
        optimizer = self.supervisor.on_learners(self.learners, lambda learner, _: learner.apply_optimizer_settings
                                                .remote(training.lr, training.weight_decay, training.max_grad_norm),
                                                "control")[0]
        self.optimizer_changes = {f"training.{name}": values for name, values in optimizer.items()
                                  if values[0] != values[1]}
        done = state["iteration"]
        self.sync_weights(done)
        self.order = PromptOrder(len(self.inputs.train), self.recipe.run.seed, **state["prompt_order"],
                                 weights=self.inputs.train_weights)
        self.tracker.summary["iterations"] = [row for row in rows if row["iteration"] <= done]
        return done

    def recover_learners(self, failure: faults.LearnerFailure, iteration: int) -> int:
        """A learner rank died or hung: stop every rank, start them again from the newest complete checkpoint (or
        the base model), refit the generators and continue with the same prompt order. Returns the iteration
        restored. Past run.max_restarts, the run stops with the command that resumes it."""
        restarts = self.tracker.summary["restarts"]["learner"]
        if len(restarts) >= self.recipe.run.max_restarts:
            raise TaoError(f"learner rank {failure.rank} {failure.failure.cause} in iteration {iteration}, after "
                           f"{len(restarts)} restart(s) of the learners (run.max_restarts); every completed "
                           f"iteration is in {self.run_dir}; continue with: {checkpoints.resume_command(self.recipe)}")
        started = time.perf_counter()
        self.pending_checkpoint = None  # its writers are gone: the staged files are incomplete
        self.drop_next_batch()  # the restored prompt order draws it again
        for learner in self.learners:
            ray.kill(learner)  # the survivors are blocked in the broken collective
        self.learners = launch.start_learners(self.recipe, self.inputs.model_dir, self.reservation, self.logs)
        self.sync = self.make_sync()
        restart_s = time.perf_counter() - started
        started = time.perf_counter()
        found = checkpoints.latest(self.run_dir)
        if found is not None:
            done = self.load_checkpoint(*found, rows=self.tracker.summary["iterations"])
        else:  # no checkpoint yet: the fresh ranks hold the base model; start over from iteration 1
            done = self.load_base()
        self.supervisor.iteration = iteration
        self.supervisor.record("learner", failure.rank, failure.failure.cause, failure.failure.detect_s, restart_s,
                               time.perf_counter() - started)
        return done

    def load_base(self) -> int:
        self.sync_weights(0)
        self.order = PromptOrder(len(self.inputs.train), seed=self.recipe.run.seed, weights=self.inputs.train_weights)
        self.tracker.summary["iterations"] = self.tracker.summary["iterations"][:1]
        return 0

    def best(self, pending: tuple[int, float | None]) -> tuple[int | None, float | None]:
        """(iteration, held-out reward) of the best measured evaluation so far, `pending` (not yet logged)
        included; (None, None) while none was measured."""
        scores = {row["iteration"]: evaluation.eligible_reward(row) for row in self.tracker.summary["iterations"]}
        scores[pending[0]] = pending[1]
        series = [scores.get(i) for i in range(max(scores) + 1)]
        best = selection.best_iteration(series)
        return best, None if best is None else series[best]
