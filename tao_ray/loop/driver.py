"""The TAO loop, in plain sight: setup() -> run() -> cleanup().

Each iteration: take a prompt batch -> generate diverse groups -> score them -> build one RolloutBatch -> learn ->
sync weights to every generator -> evaluate on held-out prompts -> checkpoint -> log. Iteration 0 evaluates the base
model before any training. Remote calls go to every actor first; `ray.get` then collects the whole list.
Drawing and scoring samples (rollouts.py) and checkpoints, resume and learner recovery (run_state.py) are the
driver's steps kept in their own modules.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from typing import Any

import ray

from tao_ray.config import Recipe
from tao_ray.core import algorithms, data_parallel, diversity, learning, perf, selection
from tao_ray.core.batch import Generation, RolloutBatch
from tao_ray.core.composition import Scores
from tao_ray.data.inputs import RunInputs, general_reward
from tao_ray.data.order import PromptOrder
from tao_ray.errors import TaoError
from tao_ray.loop import evaluation, pipeline
from tao_ray.loop.rollouts import Rollouts
from tao_ray.loop.run_state import RunState
from tao_ray.rewards import registry
from tao_ray.run import checkpoints, report, tracking
from tao_ray.run.tracking import Tracker, hardware
from tao_ray.runtime import faults, launch, placement, session, storage
from tao_ray.runtime.supervision import Supervisor
from tao_ray.sync import driver as weight_sync

SERVED_WEIGHTS_PARAMETER = "model.embed_tokens.weight"


def measured(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3f}"


class TaoDriver(Rollouts, RunState):
    def __init__(self, recipe: Recipe, inputs: RunInputs, resume: bool = False, actor_logs: bool = False):
        self.recipe, self.inputs, self.resume, self.actor_logs = recipe, inputs, resume, actor_logs
        self.run_dir = recipe.run_dir.resolve()  # actors, possibly on other nodes, get absolute paths
        self.order = PromptOrder(len(inputs.train), seed=recipe.run.seed, weights=inputs.train_weights)
        self.started_ray = False
        self.started_at = time.perf_counter()
        self.policy_version = 0  # the iteration whose weights the generators serve (0: the base model)
        self.next_batch: pipeline.NextBatch | None = None  # drawn ahead of its iteration (pipeline.py)
        self.background = pipeline.Background()

    # ---- setup -------------------------------------------------------------------------------------------------

    def setup(self) -> None:
        recipe, res = self.recipe, self.recipe.resources
        self.run_dir.mkdir(parents=True, exist_ok=True)
        previous = self.run_dir / "summary.json"
        resumable = self.resume and previous.is_file()
        self.previous = json.loads(previous.read_text()) if resumable else {}
        self.previous_rows = self.previous.get("iterations", [])
        summary = {"recipe": recipe.source, "run_name": recipe.run.name, "model": self.inputs.model_dir,
                   "config": dataclasses.asdict(recipe), "hardware": hardware(), "iterations": [],
                   "best_iteration": None, "checkpoint_dir": None, "stopped": "running"}
        self.tracker = Tracker(self.run_dir, summary, recipe.logging.wandb, recipe.logging.wandb_mode,
                               recipe.logging.wandb_project, summary["config"], resume=self.resume)
        summary["restarts"] = self.previous.get("restarts") or {"generator": [], "scorer": [], "learner": []}
        self.supervisor = Supervisor(recipe, self.tracker, summary["restarts"])
        self.logs = None if self.actor_logs else self.run_dir / "logs"  # one file per actor (actors/logs.py)
        eval_reward = recipe.eval.reward or recipe.scoring.reward
        general = general_reward(recipe) if self.inputs.general else eval_reward
        judges = recipe.scoring.judge.judges if registry.needs_judge(recipe.scoring.reward, eval_reward, general) else 0
        # Evaluation answers are scored raw, so the training scorers serve each evaluated set unless its reward
        # differs.
        own_eval_scorers = eval_reward != recipe.scoring.reward
        own_general_scorers = general not in (eval_reward, recipe.scoring.reward)
        counts = (judges, res.scorers if own_eval_scorers else 0, res.scorers if own_general_scorers else 0)
        started = time.perf_counter()
        self.started_ray = session.connect(launch.local_cpu_demand(placement.requests(recipe, *counts)),
                                           self.actor_logs)
        self.reservation = placement.reserve(recipe, *counts)
        summary["actors"] = self.reservation.locations()
        nodes = {where["node_id"] for where in summary["actors"]}
        self.tracker.stage(f"ray up ({'local' if self.started_ray else 'cluster'}); resources reserved on "
                           f"{len(nodes)} node(s) (placement {res.placement}) in {time.perf_counter() - started:.1f}s;"
                           f" starting {res.generators} generator(s), {res.scorers} scorer(s), {res.learners} "
                           "learner rank(s)")
        storage.check_shared(self.run_dir, self.reservation.nodes(("learner", "generator")))
        started = time.perf_counter()
        self.generators = launch.start_generators(recipe, self.inputs.model_dir, self.reservation, self.logs)
        self.judges = (launch.start_judges(recipe, self.inputs.judge_model_dir, self.reservation, self.logs)
                       if judges else [])
        normalize = recipe.scoring.normalize == "group"
        paths = self.inputs.scoring_paths
        self.scorers = launch.start_scorers(recipe, recipe.scoring.reward, normalize, self.judges, paths,
                                            self.reservation, log_dir=self.logs)
        self.eval_scorers = (launch.start_scorers(recipe, eval_reward, judges=self.judges, paths=paths,
                                                  placement=self.reservation, role="eval_scorer", log_dir=self.logs)
                             if own_eval_scorers else self.scorers)
        self.general_scorers = (launch.start_scorers(recipe, general, judges=self.judges, paths=paths,
                                                     placement=self.reservation, role="general_scorer",
                                                     log_dir=self.logs)
                                if own_general_scorers else
                                self.eval_scorers if general == eval_reward else self.scorers)
        self.eval_sets = [evaluation.EvalSet(name, prompts, scorers) for name, prompts, scorers in (
            ("heldout", self.inputs.heldout, self.eval_scorers), ("transfer", self.inputs.transfer, self.eval_scorers),
            ("general", self.inputs.general, self.general_scorers)) if prompts]
        self.learners = launch.start_learners(recipe, self.inputs.model_dir, self.reservation, self.logs)
        summary["learner"] = ray.get(self.learners[0].describe.remote(), timeout=self.supervisor.timeout("control"))
        engine = ray.get(self.generators[0].describe.remote(), timeout=self.supervisor.timeout("startup"))
        # The learner and the engines may compute in different dtypes (model.dtype, training.compute_dtype,
        # generation.dtype, resolved on their own nodes).
        summary["dtypes"] = {"weights": summary["learner"]["weights_dtype"],
                             "learner_compute": summary["learner"]["compute_dtype"], "engine": engine["dtype"]}
        try:
            engine_s = ray.get([g.ready.remote() for g in self.generators + self.judges],
                               timeout=self.supervisor.timeout("startup"))
        except ray.exceptions.GetTimeoutError:
            raise TaoError(f"the vLLM engines did not start within resources.startup_timeout_s "
                           f"({res.startup_timeout_s:g}s); raise it for large models or slow storage") from None
        self.supervisor.note_engines(self.generators)
        self.sync = self.make_sync()
        summary["startup_s"] = {"actors": time.perf_counter() - started, "engine": max(engine_s)}
        summary["weight_sync"] = {"path": self.sync.name}
        self.tracker.stage(f"actors ready in {summary['startup_s']['actors']:.1f}s "
                           f"(vLLM engine {max(engine_s):.1f}s); weight sync: {self.sync.name}")

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
        timing: dict[str, float] = {}
        prompts, generations, scores, scoring = self.take_batch(iteration, timing)
        self.tracker.log_samples(iteration, tracking.samples_table(prompts, generations, scores.raw))
        batch = self.build_batch(generations, scores)
        last = iteration == self.recipe.run.iterations
        if self.recipe.run.max_staleness and not last:
            self.sample_next_in_background()  # on the weights before this update, while the learner trains
        with self.timed(timing, "train", iteration) as note:
            train_metrics = self.learn(batch)
            note.append(f"{len(batch)} samples")
            if self.next_batch is not None:
                self.next_batch.settle()
        self.complete_checkpoint(wait=False)  # the previous iteration's, if its files are written
        with self.timed(timing, "sync", iteration) as note:
            receive_s = self.sync_weights(iteration)
            note.append(f"policy version {iteration} to {len(self.generators)} generator(s)")
        evaluated = None
        if iteration % self.recipe.eval.every == 0 or last:
            with self.timed(timing, "eval", iteration) as note:
                # On-policy, the next batch is drawn on these same weights: in the evaluation's engine calls.
                evaluated = self.evaluate(with_next_batch=not last and self.next_batch is None)
                note.append(evaluated.describe()
                            + (", with the next batch's samples" if self.next_batch is not None else ""))
        eval_row = self.eval_row(evaluated)
        with self.timed(timing, "checkpoint", iteration):
            self.checkpoint(iteration, evaluation.eligible_reward(eval_row))
        self.tracker.iteration_done(iteration)

        # Reported numbers are raw scores: comparable across iterations whatever the normalization.
        flat_rewards = [r for group in scores.raw for r in group if r is not None]
        tokens = sum(g.tokens_drawn or g.tokens_generated for g in generations)
        self.log_iteration(iteration, eval_row, timing=timing, train_row={
            "train_reward_mean": selection.mean(flat_rewards),
            "samples_generated": sum(g.samples_drawn or len(g.response_texts) for g in generations),
            "samples_kept": len(batch), "scoring_failed": scores.failed, "tokens_generated": tokens,
            # Samples drawn with the evaluation have no time of their own; drawn in the background, that thread's.
            "tokens_per_s": tokens / sampling_s if (sampling_s := timing.get("sampled_ahead", timing["generate"]))
            else None,
            "weight_sync_s": timing["sync"], "weight_receive_s": receive_s, "train": train_metrics,
            "sampled_ahead_s": timing.get("sampled_ahead"),
            "checkpoint_write_s": self.checkpoint_write_s,
            "scoring": scoring,
            "prompt_ids": [p.id for p in prompts], "prompt_order": self.order_state(),
            "policy_version": {"samples": sorted({g.policy_version for g in generations}),
                               "heldout": evaluated.versions if evaluated is not None else None},
            "diversity": {"strategy": self.recipe.generation.strategy, **diversity.batch_metrics(
                [g.response_texts for g in generations], scores.raw,
                [g.tokens_drawn or g.tokens_generated for g in generations],
                [g.mean_distance for g in generations], [g.samples_drawn for g in generations])}})
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
        step = learning.plan(batch, len(self.learners), self.recipe.training)
        metrics = data_parallel.merge_metrics(self.supervisor.on_learners(self.learners, lambda learner, rank: (
            learner.train.remote(step.shards[rank], step.micro_batches, step.denominators, self.policy_version)),
            "train"))
        learner = self.tracker.summary["learner"]
        metrics["mfu"] = perf.mfu(learner["parameters"], sum(batch.lengths()), metrics["seconds"], learner["device"],
                                  len(self.learners), with_reference=algorithms.uses_reference(self.recipe.training))
        return metrics

    def sync_weights(self, version: int) -> float:
        """Send the new weights to every generator as policy `version`. When the sync fails, a dead learner rank
        is a LearnerFailure; dead generators are restarted and refitted, which is the sync itself."""
        try:
            received = self.sync.update(version, timeout_s=self.supervisor.timeout("sync"))
        except (ray.exceptions.RayError, TimeoutError) as error:
            self.supervisor.check_learners(self.learners)
            self.policy_version = version
            self.supervisor.make_current(self.generators, self.sync, version)
            self.tracker.stage(f"weight sync interrupted ({faults.describe(error)}); generators refitted")
            return 0.0
        self.policy_version = version
        return received

    def make_sync(self):
        """The weight-sync channel between the current learners and generators (metadata checked, group set up).
        A generator found dead on the way is restarted first (its refit comes with the next sync)."""
        res, lora = self.recipe.resources, self.recipe.training.lora
        sync = weight_sync.make_sync(res.device, self.learners, self.generators, res.tensor_parallel_size,
                                     lora_adapter=lora.r > 0 and lora.sync == "adapter")
        try:
            sync.init()
        except ray.exceptions.RayError:
            self.supervisor.check_learners(self.learners)
            self.supervisor.revive(self.generators, sync)
            sync.init()
        return sync

    def evaluate(self, with_next_batch: bool = False) -> evaluation.Evaluation:
        """Label-free scores of greedy answers to every evaluated set (evaluation.py), rated by each set's scorers
        (None where a scorer failed on an answer). `with_next_batch`: the next iteration's samples are drawn in
        the same engine calls (pipeline.py)."""
        answer = [prompt for eval_set in self.eval_sets for prompt in eval_set.prompts]
        # Adaptive sampling scores as it draws: its scoring would mix with the evaluation's.
        if with_next_batch and self.recipe.generation.strategy != "adaptive":
            prompts, before = self.take_next_prompts()
            samples, generations = self.generate(prompts, answer=answer)
            self.next_batch = pipeline.NextBatch(prompts, before, generations=samples)
        else:
            generations = self.generate(answer, greedy=True)
        answers = evaluation.split_by_set(self.eval_sets, generations)
        scores, lengths = {}, {}
        for eval_set in self.eval_sets:
            # Generations index the concatenated list; each set's scorer call indexes its own prompts.
            own = [dataclasses.replace(g, prompt_index=i) for i, g in enumerate(answers[eval_set.name])]
            raw = self.score(eval_set.prompts, own, eval_set.scorers).raw
            scores[eval_set.name] = [group[0] for group in raw]
            lengths[eval_set.name] = [len(g.response_token_ids[0]) for g in own]
        heldout = answers["heldout"]
        report.save_samples(self.run_dir, len(self.tracker.summary["iterations"]), self.inputs.heldout,
                            [g.response_texts[0] for g in heldout], scores["heldout"])
        return evaluation.Evaluation(scores, lengths, sorted({g.policy_version for g in generations}),
                                     self.scoring_stats(self.eval_scorers))

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

    # ---- bookkeeping -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def timed(self, timing: dict[str, float], stage: str, iteration: int):
        """Time a stage and print its progress line; the stage may append a note with its counts."""
        started = time.perf_counter()
        note: list[str] = []
        yield note
        timing[stage] = time.perf_counter() - started
        self.tracker.progress(iteration, self.recipe.run.iterations, stage, timing[stage], ", ".join(note))

    def served_weights(self) -> list[float | None]:
        """A fingerprint of the weights each generator serves: the sum of its input embedding, which every
        full-weight sync moves (an adapter sync leaves it alone). Rows show the new weights landed in every engine;
        None where an engine names the parameter otherwise (or shards it) and cannot tell."""
        calls = {k: g.parameter_sum.remote(SERVED_WEIGHTS_PARAMETER) for k, g in enumerate(self.generators)}
        try:
            sums, _ = faults.gather(calls, self.supervisor.timeout("control"))
        except ray.exceptions.RayTaskError:  # the engine names or shards its embedding otherwise
            sums = {}
        return [sums.get(k) for k in range(len(self.generators))]

    def log_iteration(self, iteration: int, eval_row: dict[str, Any], timing: dict[str, float],
                      train_row: dict[str, Any]) -> None:
        row = {"iteration": iteration, "train_reward_mean": None,
               "timing_s": {k: timing.get(k, 0.0) for k in ("generate", "score", "train", "sync", "eval",
                                                             "checkpoint")},
               "tokens_generated": 0, "weight_sync_s": 0.0, "served_weights": self.served_weights(), **eval_row,
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
        self.drop_next_batch()
        self.complete_checkpoint()
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
        if getattr(self, "pending_checkpoint", None) is not None:
            try:  # a run stopped by an error still keeps the checkpoint its learners were writing
                self.complete_checkpoint()
            except Exception as error:  # noqa: BLE001 - the error that stopped the run is the one to report
                self.tracker.stage(f"the last checkpoint could not be completed: {faults.describe(error)}")
        self.background.close()
        tracker = getattr(self, "tracker", None)
        if tracker is not None:
            tracker.finish()
        if getattr(self, "generators", None):
            self.supervisor.stop_generators(self.generators)
        actors = {id(a): a for role in ("scorers", "eval_scorers", "general_scorers", "judges", "learners")
                  for a in getattr(self, role, [])}
        for actor in actors.values():
            ray.kill(actor)
        if getattr(self, "reservation", None) is not None:
            self.reservation.release()
        if self.started_ray:
            ray.shutdown()


def run(recipe: Recipe, inputs: RunInputs, resume: bool = False, actor_logs: bool = False) -> dict[str, Any]:
    checkpoints.set_aside(recipe.run_dir, resume)
    driver = TaoDriver(recipe, inputs, resume, actor_logs)
    try:
        driver.setup()
        return driver.run()
    except KeyboardInterrupt:
        if getattr(driver, "tracker", None) is not None:
            driver.tracker.summary["stopped"] = "interrupted"
        raise
    finally:
        driver.cleanup()

