"""The TAO loop, in plain sight: setup() -> run() -> cleanup().

Each iteration: take a prompt batch -> generate diverse groups -> score them -> build one RolloutBatch -> learn ->
sync weights to every generator -> evaluate on held-out prompts -> checkpoint -> log. Iteration 0 evaluates the base
model before any training.

The driver is the one owner of the run's state: the policy version the generators serve, the prompt feed (prompt
order and the batch drawn ahead), the weight sync, the pending checkpoint and the summary rows. The stages it calls
are objects that hold no run state of their own: Rollouts (samples and scores), PromptFeed, Checkpointer. Actors are
reached only through the pools of runtime/run_actors.py, so tests/loop runs this loop with stand-in pools.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from typing import Any

import ray

from tao_ray.config import Recipe
from tao_ray.core import algorithms, data_parallel, learning, perf, selection
from tao_ray.core.batch import Generation, RolloutBatch
from tao_ray.core.composition import Scores
from tao_ray.data.inputs import RunInputs
from tao_ray.data.order import PromptOrder
from tao_ray.errors import TaoError
from tao_ray.loop import evaluation, pipeline, rows
from tao_ray.loop.checkpointing import Checkpointer
from tao_ray.loop.prompt_feed import PromptFeed
from tao_ray.loop.rollouts import Rollouts
from tao_ray.run import checkpoints, report, resume, tracking
from tao_ray.run.tracking import Tracker, hardware
from tao_ray.runtime import faults
from tao_ray.runtime.run_actors import RunActors
from tao_ray.runtime.supervision import Supervisor
from tao_ray.sync.driver import SendersLost

SERVED_WEIGHTS_PARAMETER = "model.embed_tokens.weight"


def measured(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3f}"


class TaoDriver:
    def __init__(self, recipe: Recipe, inputs: RunInputs, resume: bool = False, actor_logs: bool = False):
        self.recipe, self.inputs, self.resume, self.actor_logs = recipe, inputs, resume, actor_logs
        self.run_dir = recipe.run_dir.resolve()  # actors, possibly on other nodes, get absolute paths
        self.started_at = time.perf_counter()
        self.policy_version = 0  # the iteration whose weights the generators serve (0: the base model)
        self.background = pipeline.Background()
        self.previous: dict[str, Any] = {}  # the summary.json of the run being resumed
        # Set by begin() and attach(): what the run reports to, its actors and the stages that use them.
        self.tracker: Tracker | None = None
        self.supervisor: Supervisor | None = None
        self.actors: RunActors | None = None
        self.sync = None
        self.rollouts: Rollouts | None = None
        self.feed: PromptFeed | None = None
        self.eval_sets: list[evaluation.EvalSet] = []
        self.checkpointer = Checkpointer(recipe, self.run_dir, inputs.model_dir, tracking.Tracker.stage)

    # ---- setup -------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        self.begin()
        logs = None if self.actor_logs else self.run_dir / "logs"  # one file per actor (actors/logs.py)
        self.attach(RunActors.start(self.recipe, self.inputs, self.supervisor, logs, self.actor_logs,
                                    self.tracker.stage))

    def begin(self) -> None:
        """The run directory, summary.json (the resumed run's rows kept), W&B and the supervisor."""
        recipe = self.recipe
        self.run_dir.mkdir(parents=True, exist_ok=True)
        previous = self.run_dir / "summary.json"
        self.previous = json.loads(previous.read_text()) if self.resume and previous.is_file() else {}
        summary = {"recipe": recipe.source, "run_name": recipe.run.name, "model": self.inputs.model_dir,
                   "config": dataclasses.asdict(recipe), "hardware": hardware(), "iterations": [],
                   "best_iteration": None, "checkpoint_dir": None, "stopped": "running"}
        self.tracker = Tracker(self.run_dir, summary, recipe.logging.wandb, recipe.logging.wandb_mode,
                               recipe.logging.wandb_project, summary["config"], resume=self.resume)
        summary["restarts"] = self.previous.get("restarts") or {"generator": [], "scorer": [], "learner": []}
        self.supervisor = Supervisor(recipe, self.tracker, summary["restarts"])
        self.supervisor.resume_hint = (f"every completed iteration is in {self.run_dir}; on a healthy cluster "
                                       f"continue with: {checkpoints.resume_command(recipe)}")

    def attach(self, actors: RunActors) -> None:
        """Take the run's actors: the stages that call them, the evaluated sets and the weight sync."""
        self.actors = actors
        self.rollouts = Rollouts(self.recipe, actors.generators, actors.scorers)
        self.feed = PromptFeed(self.inputs.train, self.recipe.generation.prompts_per_iteration, self.fresh_order(),
                               self.rollouts, self.background)
        self.eval_sets = [evaluation.EvalSet(name, prompts, scorers) for name, prompts, scorers in (
            ("heldout", self.inputs.heldout, actors.eval_scorers),
            ("transfer", self.inputs.transfer, actors.eval_scorers),
            ("unseen", self.inputs.unseen, actors.eval_scorers),
            ("general", self.inputs.general, actors.general_scorers)) if prompts]
        self.sync = actors.make_sync()
        summary, startup = self.tracker.summary, actors.startup
        summary["actors"] = startup.actors
        summary["learner"] = startup.learner
        # The learner and the engines may compute in different dtypes (model.dtype, training.compute_dtype,
        # generation.dtype, resolved on their own nodes).
        summary["dtypes"] = {"weights": startup.learner["weights_dtype"],
                             "learner_compute": startup.learner["compute_dtype"], "engine": startup.engine_dtype}
        summary["startup_s"] = {"actors": startup.actors_s, "engine": startup.engine_s}
        summary["weight_sync"] = {"path": self.sync.name}
        self.tracker.stage(f"actors ready in {startup.actors_s:.1f}s (vLLM engine {startup.engine_s:.1f}s); "
                           f"weight sync: {self.sync.name}")

    def fresh_order(self, **state) -> PromptOrder:
        return PromptOrder(len(self.inputs.train), self.recipe.run.seed, **state, weights=self.inputs.train_weights)

    # ---- the loop ----------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        done = self.restore() if self.resume else 0
        if done == 0:
            # The base model's evaluation, with iteration 1's samples in the same engine calls.
            self.log_iteration(0, self.eval_row(self.evaluate(with_next_batch=self.recipe.run.iterations > 0)),
                               timing={}, train_row={})
        iteration = done + 1
        while iteration <= self.recipe.run.iterations:
            try:
                reason = self.iterate(iteration)
            except faults.LearnerFailure as failure:
                iteration = self.recover_learners(failure, iteration) + 1
                continue
            if reason:
                return self.finish(reason)
            iteration += 1
        return self.finish("completed")

    def iterate(self, iteration: int) -> str | None:
        """One TAO iteration; returns why the run should stop now, if it should."""
        self.supervisor.iteration = iteration
        self.tracker.iteration_begins()
        self.check_health()
        timing: dict[str, float] = {}
        prompts, generations, scores, scoring = self.feed.take_batch(iteration, timing, self.timed, self.sync,
                                                                     self.policy_version)
        self.tracker.log_samples(iteration, tracking.samples_table(prompts, generations, scores.raw))
        # The previous checkpoint, if its files are written: resumable before the update, should a rank die in it.
        self.checkpointer.complete(self.actors.learners, wait=False)
        batch = self.build_batch(generations, scores)
        last = iteration == self.recipe.run.iterations
        if self.recipe.run.max_staleness and not last:
            # On the weights before this update, while the learner trains.
            self.feed.draw_in_background(self.sync, self.policy_version)
        with self.timed(timing, "train", iteration) as note:
            train_metrics = self.learn(batch)
            note.append(f"{len(batch)} samples")
            self.feed.settle()
        self.checkpointer.complete(self.actors.learners, wait=False)  # the previous one's, if its files are written
        self.check_health()
        with self.timed(timing, "sync", iteration) as note:
            receive_s = self.sync_weights(iteration)
            note.append(f"policy version {iteration} to {len(self.actors.generators)} generator(s)")
        evaluated = None
        if iteration % self.recipe.eval.every == 0 or last:
            self.check_health()
            with self.timed(timing, "eval", iteration) as note:
                # On-policy, the next batch is drawn on these same weights: in the evaluation's engine calls.
                evaluated = self.evaluate(with_next_batch=not last and self.feed.next_batch is None)
                note.append(evaluated.describe()
                            + (", with the next batch's samples" if self.feed.next_batch is not None else ""))
        eval_row = self.eval_row(evaluated)
        with self.timed(timing, "checkpoint", iteration):
            self.checkpoint(iteration, evaluation.eligible_reward(eval_row))
        self.tracker.iteration_done(iteration)
        self.log_iteration(iteration, eval_row, timing=timing, train_row=rows.train_fields(
            self.recipe.generation.strategy, prompts, generations, scores, scoring, len(batch), timing, train_metrics,
            receive_s, evaluated.versions if evaluated is not None else None, self.checkpointer.write_s,
            self.feed.order_state()))
        reason = self.stop_reason() if evaluated is not None else None
        limit = self.recipe.run.max_wall_minutes
        if not reason and limit is not None and time.perf_counter() - self.started_at > 60 * limit:
            reason = f"time budget: {limit} minutes reached after iteration {iteration}"
        return reason

    # ---- stages ------------------------------------------------------------------------------------------------

    def build_batch(self, generations: list[Generation], scores: Scores) -> RolloutBatch:
        """Pairing margins and thresholds compare raw scores; advantages come from learning scores."""
        training = self.recipe.training
        return algorithms.get(training.algorithm).build_batch(generations, scores, training)

    def learn(self, batch: RolloutBatch) -> dict[str, float | None]:
        if not len(batch):
            self.tracker.stage("no group carried signal this iteration (all samples scored alike): no update")
            return {}
        learners = self.actors.learners
        step = learning.plan(batch, len(learners), self.recipe.training)
        metrics = data_parallel.merge_metrics(learners.every_rank("train", lambda rank: (
            step.shards[rank], step.micro_batches, step.denominators, self.policy_version), "train"))
        learner = self.tracker.summary["learner"]
        metrics["mfu"] = perf.mfu(learner["parameters"], sum(batch.lengths()), metrics["seconds"], learner["device"],
                                  len(learners), with_reference=algorithms.uses_reference(self.recipe.training))
        return metrics

    def sync_weights(self, version: int) -> float:
        """Send the new weights to every generator as policy `version`. When the sync fails, a dead learner rank
        is a LearnerFailure; dead generators are restarted and refitted, which is the sync itself."""
        started = time.perf_counter()
        try:
            received = self.sync.update(version, timeout_s=self.supervisor.timeout("sync"), abort=self.learner_died)
        except (ray.exceptions.RayError, TimeoutError, SendersLost) as error:
            self.actors.learners.check()
            self.policy_version = version
            if self.sync.restart_all_on_failure:  # a collective sync: none may stay half-received
                self.actors.generators.restart_all(self.sync, version, f"weight sync failed "
                                                   f"({faults.describe(error)})", time.perf_counter() - started)
            else:
                self.actors.generators.make_current(self.sync, version)
            self.tracker.stage(f"weight sync interrupted ({faults.describe(error)}); generators refitted")
            return 0.0
        self.policy_version = version
        return received

    def learner_died(self) -> str | None:
        """Why a weight sync should stop waiting: a learner rank the health watch saw die (its node may have held
        the payload a generator is still fetching, which Ray gives up on only after minutes)."""
        dead = self.actors.health.seen_dead("learner")
        return f"learner rank {dead[0]} died" if dead else None

    def check_health(self) -> None:
        """The deaths the health watch saw since the last stage (runtime/health.py), handled before any actor is
        called again: a generator is waited for and refitted to the current policy version before it samples, a
        scorer waited for, a learner rank's death is a LearnerFailure; each recorded in summary.json's restarts."""
        watch = self.actors.health
        for death in watch.take():
            # The watch looks every interval_s: the death happened at most that long before it was seen.
            failure = faults.Failure(f"died between calls (seen {death.state} by the health watch)", False,
                                     watch.interval_s)
            self.actors.pools()[death.role].replace_dead(death.rank, failure, self.sync, self.policy_version)

    def evaluate(self, with_next_batch: bool = False) -> evaluation.Evaluation:
        """Label-free scores of greedy answers to every evaluated set (evaluation.py), rated by each set's scorers
        (None where a scorer failed on an answer). `with_next_batch`: the next iteration's samples are drawn in
        the same engine calls (pipeline.py)."""
        answer = [prompt for eval_set in self.eval_sets for prompt in eval_set.prompts]
        # Adaptive sampling scores as it draws: its scoring would mix with the evaluation's.
        if with_next_batch and self.recipe.generation.strategy != "adaptive":
            prompts, before = self.feed.take_prompts()
            samples, generations = self.rollouts.generate(prompts, self.sync, self.policy_version, answer=answer)
            self.feed.drawn_with_evaluation(prompts, before, samples)
        else:
            generations = self.rollouts.generate(answer, self.sync, self.policy_version, greedy=True)
        answers = evaluation.split_by_set(self.eval_sets, generations)
        scores, lengths, behaviours, components = {}, {}, {}, {}
        for eval_set in self.eval_sets:
            # Generations index the concatenated list; each set's scorer call indexes its own prompts.
            own = [dataclasses.replace(g, prompt_index=i) for i, g in enumerate(answers[eval_set.name])]
            scored = self.rollouts.score(eval_set.prompts, own, eval_set.scorers)
            scores[eval_set.name] = [group[0] for group in scored.raw]
            components[eval_set.name] = {name: [group[0] for group in groups]
                                         for name, groups in scored.components.items()}
            behaviours[eval_set.name] = self.rollouts.by_type(eval_set.prompts, own, eval_set.scorers)
            lengths[eval_set.name] = [len(g.response_token_ids[0]) for g in own]
        heldout = answers["heldout"]
        report.save_samples(self.run_dir, len(self.tracker.summary["iterations"]), self.inputs.heldout,
                            [g.response_texts[0] for g in heldout], scores["heldout"])
        return evaluation.Evaluation(scores, lengths, sorted({g.policy_version for g in generations}),
                                     self.actors.eval_scorers.stats(), behaviours, components)

    def eval_row(self, evaluated: evaluation.Evaluation | None) -> dict[str, Any]:
        """The summary row's evaluation fields (none for an iteration without an evaluation)."""
        if evaluated is None:
            return {"heldout_reward_mean": None}
        rows = self.tracker.summary["iterations"]
        return evaluation.row_fields(evaluated, rows[0] if rows else None, self.recipe.eval)

    def stop_reason(self) -> str | None:
        rows = self.tracker.summary["iterations"]
        return selection.stop_reason([r["heldout_reward_mean"] for r in rows], [r["train_reward_mean"] for r in rows],
                                     self.recipe.eval.patience, self.recipe.eval.max_drop)

    # ---- checkpoints, resume and learner recovery ----------------------------------------------------------------

    def checkpoint(self, iteration: int, heldout: float | None) -> None:
        """Every run.checkpoint_every iterations (and the last) the policy, every rank's optimizer state and the
        loop's state; in between only a new best policy (checkpointing.py)."""
        self.checkpointer.complete(self.actors.learners)
        best, _ = self.best((iteration, heldout))
        full = self.checkpointer.due(iteration, best)
        if full is not None:
            state = {"iteration": iteration, "prompt_order": self.feed.order_state(), "best": best}
            self.checkpointer.start(self.actors.learners, iteration, full, state, best)

    def restore(self) -> int:
        """Continue from the newest complete checkpoint: learner state, generator weights, prompt order and the
        summary rows up to it. Returns the iteration to continue after (0 when there is nothing to resume)."""
        found = checkpoints.latest(self.run_dir)
        if found is None:
            self.tracker.stage("nothing to resume: no complete checkpoint yet; starting from iteration 0")
            return 0
        done, optimizer_changes = self.load_checkpoint(*found, rows=self.previous.get("iterations", []))
        summary = self.tracker.summary
        # Earlier resumes stay listed; each resume_changes entry names the iteration it resumed from.
        changes = resume.compare(self.previous["config"], self.recipe).record() if "config" in self.previous else {}
        changes["optimizer"] = optimizer_changes
        summary["resumed_from"] = [*self.previous.get("resumed_from", []), done]
        summary["resume_changes"] = [*self.previous.get("resume_changes", []), {"iteration": done, **changes}]
        self.tracker.stage(f"resumed from {found[0]} (iteration {done})")
        if optimizer_changes:
            self.tracker.stage("set on the restored optimizer (the checkpoint held the old values): " + ", ".join(
                f"{key} {old:g} -> {new:g}" for key, (old, new) in optimizer_changes.items()))
        return done

    def load_checkpoint(self, path, state: dict[str, Any], rows: list[dict]) -> tuple[int, dict]:
        """Learners, generators, prompt order and summary rows back to a checkpoint's iteration; returns it and the
        optimizer settings the recipe changed on the restored state."""
        optimizer_changes = self.checkpointer.load(self.actors.learners, path)
        done = state["iteration"]
        self.sync_weights(done)
        self.feed.restart(self.fresh_order(**state["prompt_order"]))
        self.tracker.summary["iterations"] = [row for row in rows if row["iteration"] <= done]
        return done, optimizer_changes

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
        self.checkpointer.abandon()  # its writers are gone: the staged files are incomplete
        self.feed.drop_next_batch()  # the restored prompt order draws it again
        self.sync.close(self.supervisor.timeout("control"))  # the old group's communicators, where they answer
        self.actors.restart_learners()
        self.sync = self.actors.make_sync()
        restart_s = time.perf_counter() - started
        started = time.perf_counter()
        found = checkpoints.latest(self.run_dir)
        if found is not None:
            done = self.load_checkpoint(*found, rows=self.tracker.summary["iterations"])[0]
        else:  # no checkpoint yet: the fresh ranks hold the base model; start over from iteration 1
            self.sync_weights(0)
            self.feed.restart(self.fresh_order())
            self.tracker.summary["iterations"] = self.tracker.summary["iterations"][:1]
            done = 0
        self.supervisor.iteration = iteration
        self.supervisor.record("learner", failure.rank, failure.failure.cause, failure.failure.detect_s, restart_s,
                               time.perf_counter() - started)
        return done

    def best(self, pending: tuple[int, float | None]) -> tuple[int | None, float | None]:
        """(iteration, held-out reward) of the best measured evaluation so far, `pending` (not yet logged)
        included; (None, None) while none was measured."""
        scores = {row["iteration"]: evaluation.eligible_reward(row) for row in self.tracker.summary["iterations"]}
        scores[pending[0]] = pending[1]
        series = [scores.get(i) for i in range(max(scores) + 1)]
        best = selection.best_iteration(series)
        return best, None if best is None else series[best]

    # ---- bookkeeping -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def timed(self, timing: dict[str, float], stage: str, iteration: int):
        """Time a stage and print its progress line; the stage may append a note with its counts."""
        started = time.perf_counter()
        note: list[str] = []
        yield note
        timing[stage] = time.perf_counter() - started
        self.tracker.progress(iteration, self.recipe.run.iterations, stage, timing[stage], ", ".join(note))

    def log_iteration(self, iteration: int, eval_row: dict[str, Any], timing: dict[str, float],
                      train_row: dict[str, Any]) -> None:
        row = {"iteration": iteration, "train_reward_mean": None,
               "timing_s": {k: timing.get(k, 0.0) for k in ("generate", "score", "train", "sync", "eval",
                                                             "checkpoint")},
               "tokens_generated": 0, "weight_sync_s": 0.0,
               # A fingerprint of the weights each generator serves: the sum of its input embedding, which every
               # full-weight sync moves (an adapter sync leaves it alone); None where an engine cannot tell.
               "served_weights": self.actors.generators.parameter_sums(SERVED_WEIGHTS_PARAMETER), **eval_row,
               **train_row}
        if row.get("vetoed"):
            self.tracker.stage(f"iteration {iteration} cannot become the best checkpoint: {'; '.join(row['vetoed'])}")
        summary = self.tracker.summary
        summary["best_iteration"], summary["best_heldout_reward"] = self.best((iteration,
                                                                              evaluation.eligible_reward(row)))
        best = summary["best_iteration"]
        summary["checkpoint_dir"] = (None if best is None else self.inputs.model_dir if best == 0
                                     else str(checkpoints.model_dir(self.run_dir, best)))
        self.tracker.log_iteration(row)

    def finish(self, reason: str) -> dict[str, Any]:
        self.feed.drop_next_batch()
        self.checkpointer.complete(self.actors.learners)
        summary = self.tracker.summary
        summary["stopped"] = reason
        summary["wall_s"] = time.perf_counter() - self.started_at  # this invocation's, start-up included
        self.tracker.flush()
        self.tracker.stage(report.after_run(self.run_dir))
        base = summary["iterations"][0]["heldout_reward_mean"]
        best = (f"{measured(summary['best_heldout_reward'])} at best iteration {summary['best_iteration']}"
                if summary["best_iteration"] is not None else "not measured at any iteration")
        self.tracker.stage(f"done ({reason}): held-out reward {measured(base)} at iteration 0 -> {best}; "
                           f"summary: {self.run_dir / 'summary.json'}")
        return summary

    def cleanup(self) -> None:
        if self.checkpointer.pending is not None and self.actors is not None:
            try:  # a run stopped by an error still keeps the checkpoint its learners were writing
                self.checkpointer.complete(self.actors.learners)
            except Exception as error:  # noqa: BLE001 - the error that stopped the run is the one to report
                self.tracker.stage(f"the last checkpoint could not be completed: {faults.describe(error)}")
        self.background.close()
        if self.tracker is not None:
            self.tracker.finish()
        if self.sync is not None:
            try:  # communicators are destroyed before their processes end
                self.sync.close(self.supervisor.timeout("control"))
            except Exception as error:  # noqa: BLE001 - cleanup goes on: the actors are stopped next
                self.tracker.stage(f"the weight-sync group could not be closed: {faults.describe(error)}")
        if self.actors is not None:
            self.actors.stop()


def run(recipe: Recipe, inputs: RunInputs, resume: bool = False, actor_logs: bool = False) -> dict[str, Any]:
    checkpoints.set_aside(recipe.run_dir, resume)
    driver = TaoDriver(recipe, inputs, resume, actor_logs)
    try:
        driver.setup()
        return driver.run()
    except KeyboardInterrupt:
        if driver.tracker is not None:
            driver.tracker.summary["stopped"] = "interrupted"
        raise
    except TaoError as error:  # summary.json says why the run stopped (a lost node, an actor that kept dying...)
        if driver.tracker is not None:
            driver.tracker.summary["stopped"] = f"error: {error}"
        raise
    finally:
        driver.cleanup()
