"""The TAO loop, in plain sight: setup() -> run() -> cleanup().

Each iteration: take a prompt batch -> generate diverse groups -> score them -> build one RolloutBatch -> learn ->
sync weights to every generator -> evaluate on held-out prompts -> checkpoint -> log. Iteration 0 evaluates the base
model before any training. Remote calls go to every actor first; `ray.get` then collects the whole list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from typing import Any

import ray

from tao_ray import (
    algorithms,
    checkpoints,
    evaluation,
    faults,
    launch,
    learning,
    pipeline,
    placement,
    report,
    resume,
    storage,
    tracking,
    weight_sync,
)
from tao_ray.batch import Generation, RolloutBatch
from tao_ray.config import Recipe
from tao_ray.core import data_parallel, diversity, perf, selection
from tao_ray.data.order import PromptOrder
from tao_ray.data.prompts import PromptRecord
from tao_ray.errors import TaoError
from tao_ray.inputs import RunInputs, general_reward
from tao_ray.rewards.compose import Scores
from tao_ray.sampling import SamplingPlan
from tao_ray.supervision import Supervisor
from tao_ray.tracking import Tracker, hardware

SERVED_WEIGHTS_PARAMETER = "model.embed_tokens.weight"


def split_evenly(items: list, parts: int) -> list[list]:
    """Contiguous, near-equal shards (some empty when there are fewer items than parts)."""
    size = math.ceil(len(items) / parts) if items else 0
    return [items[i * size:(i + 1) * size] for i in range(parts)]


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def measured(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3f}"


class TaoDriver:
    def __init__(self, recipe: Recipe, inputs: RunInputs, resume: bool = False, actor_logs: bool = False):
        self.recipe, self.inputs, self.resume, self.actor_logs = recipe, inputs, resume, actor_logs
        self.run_dir = recipe.run_dir.resolve()  # actors, possibly on other nodes, get absolute paths
        self.order = PromptOrder(len(inputs.train), seed=recipe.run.seed, weights=inputs.train_weights)
        self.started_ray = False
        self.started_at = time.perf_counter()
        self.policy_version = 0  # the iteration whose weights the generators serve (0: the base model)
        self.next_batch: pipeline.NextBatch | None = None  # drawn ahead of its iteration (pipeline.py)
        self.background = pipeline.Background()
        self.pending_checkpoint = None  # (staging dir, iteration, driver state, best) while its files are written
        self.checkpoint_write_s = None

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
        judges = recipe.scoring.judge.judges if "judge" in recipe.scoring.reward + eval_reward + general else 0
        # Evaluation answers are scored raw, so the training scorers serve each evaluated set unless its reward
        # differs.
        own_eval_scorers = eval_reward != recipe.scoring.reward
        own_general_scorers = general not in (eval_reward, recipe.scoring.reward)
        counts = (judges, res.scorers if own_eval_scorers else 0, res.scorers if own_general_scorers else 0)
        started = time.perf_counter()
        self.started_ray = launch.init_ray(placement.requests(recipe, *counts), self.actor_logs)
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
            "train_reward_mean": mean(flat_rewards),
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

    def take_batch(self, iteration: int, timing: dict[str, float]) -> tuple[list[PromptRecord], list[Generation],
                                                                             Scores, dict[str, Any]]:
        """This iteration's prompts, samples and scores: drawn now, or already (pipeline.py)."""
        ahead, self.next_batch = self.next_batch, None
        if ahead is None:
            prompts = self.take_next_prompts()[0]
        else:
            prompts = ahead.prompts
            generations, scores, scoring, timing["sampled_ahead"] = ahead.result()
        with self.timed(timing, "generate", iteration) as note:
            if ahead is None:
                generations = self.generate(prompts)
            note.append(f"{sum(len(g.response_texts) for g in generations)} samples for {len(prompts)} prompts"
                        + ("" if ahead is None else " (drawn ahead)"))
        if ahead is None or scores is None:
            with self.timed(timing, "score", iteration) as note:
                scores, scoring = self.score(prompts, generations), self.scoring_stats(self.scorers)
                note.append(f"{sum(map(len, scores.raw))} scored, {scores.failed} failed")
        else:
            timing["score"] = 0.0
        return prompts, generations, scores, scoring

    def take_next_prompts(self) -> tuple[list[PromptRecord], dict[str, Any]]:
        before = self.order.state()
        indices = self.order.next_batch(self.recipe.generation.prompts_per_iteration)
        return [self.inputs.train[i] for i in indices], before

    def sample_next_in_background(self) -> None:
        prompts, before = self.take_next_prompts()

        def work():
            generations = self.generate(prompts)
            scores = self.score(prompts, generations)
            return generations, scores, self.scoring_stats(self.scorers)

        self.next_batch = pipeline.NextBatch(prompts, before, future=self.background.submit(work))

    def order_state(self) -> dict[str, Any]:
        """The prompt order to resume from: before a batch drawn ahead was taken."""
        return self.next_batch.order_state if self.next_batch is not None else self.order.state()

    def drop_next_batch(self) -> None:
        if self.next_batch is not None:
            self.next_batch.settle()
            self.next_batch = None

    def generate(self, prompts: list[PromptRecord], greedy: bool = False, answer: list[PromptRecord] | None = None):
        """Groups of candidates from every generator. The adaptive strategy scores while it samples, so its
        Generations arrive with raw and learning scores; the score stage then skips them. `answer`: prompts also
        answered greedily in the same engine calls; then (samples, answers) is returned."""
        gen = self.recipe.generation
        n, temperature = (1, 0.0) if greedy else (gen.samples_per_prompt, gen.temperature)
        plan = None if greedy else self.sampling_plan()
        count = len(self.generators)
        shards = list(zip(split_evenly(list(enumerate(prompts)), count),
                          split_evenly(list(enumerate(answer or [])), count), strict=True))
        adaptive = plan is not None and plan.strategy == "adaptive"

        def call(k, generator, shard):
            sample, greedy_prompts = ([(i, list(p.messages)) for i, p in part] for part in shard)
            return generator.generate_and_answer.remote(
                sample, n, temperature, gen.top_p, gen.max_tokens, plan,
                self.scorers[k % len(self.scorers)] if adaptive else None,
                [p.as_dict() for _, p in shard[0]] if adaptive else None, greedy_prompts)

        parts = self.supervisor.on_generators(self.generators, [s if s[0] or s[1] else None for s in shards], call,
                                              "eval" if greedy or answer else "generate", self.sync,
                                              self.policy_version)
        samples = [generation for k in sorted(parts) for generation in parts[k][0]]
        return samples if answer is None else (samples, [g for k in sorted(parts) for g in parts[k][1]])

    def sampling_plan(self) -> SamplingPlan:
        gen = self.recipe.generation
        return SamplingPlan(strategy=gen.strategy, n=gen.samples_per_prompt, min_distance=gen.min_distance,
                            max_draws=max(gen.samples_per_prompt, math.ceil(gen.draw_budget * gen.samples_per_prompt)),
                            template=gen.condition_template, settle_after=gen.settle_after)

    def score(self, prompts: list[PromptRecord], generations: list[Generation], scorers: list | None = None
              ) -> Scores:
        """Raw and learning scores per generation (those scored during sampling keep theirs); a failed sample is
        None in both."""
        scorers = scorers or self.scorers
        todo = [g for g in generations if g.rewards is None]
        pairs = [(prompts[g.prompt_index].as_dict(), g.response_texts) for g in todo]
        shards = split_evenly(pairs, len(scorers))
        parts = self.supervisor.on_scorers(
            scorers, shards, lambda _, scorer, shard: scorer.score.remote([r for r, _ in shard], [t for _, t in shard]),
            next((role for role, actors in (("scorer", self.scorers), ("eval_scorer", self.eval_scorers),
                                            ("general_scorer", self.general_scorers)) if actors is scorers),
                 "scorer"))
        results = [parts[k] for k in sorted(parts)]
        fresh = iter([pair for part in results for pair in zip(part.raw, part.learning)])
        both = [(g.rewards, g.learning_rewards) if g.rewards is not None else next(fresh) for g in generations]
        return Scores([raw for raw, _ in both], [learning for _, learning in both])

    def scoring_stats(self, scorers: list) -> dict[str, Any]:
        """Each component's mean raw score (reward/<name>) and failures, merged over the scorers."""
        parts = ray.get([s.take_stats.remote() for s in scorers], timeout=self.supervisor.timeout("score"))
        merged: dict[str, Any] = {"scoring/failed": sum(p["scoring/failed"] for p in parts),
                                  "scoring/failure_reasons": [r for p in parts for r in p["scoring/failure_reasons"]]}
        for key in parts[0]:
            if key.startswith("reward/"):
                merged[key] = mean([p[key] for p in parts if p[key] is not None])
        return merged

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

