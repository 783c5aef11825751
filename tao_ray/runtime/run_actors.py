"""Every actor of one run, started together in one placement group, as one pool per role (pools.py), and the weight
sync between them. The driver's setup starts them, its learner recovery restarts the learner ranks, its cleanup
stops everything; the loop itself only calls the pools.

The training scorers also serve an evaluated set whose reward is the same: a separate pool (eval_scorer,
general_scorer) starts only for a different reward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from tao_ray.config import Recipe
from tao_ray.data.inputs import RunInputs, general_reward
from tao_ray.errors import TaoError
from tao_ray.rewards import registry
from tao_ray.runtime import faults, launch, placement, session, storage
from tao_ray.runtime.health import HealthWatch
from tao_ray.runtime.pools import ActorPool, GeneratorPool, LearnerPool, ScorerPool
from tao_ray.runtime.supervision import Supervisor
from tao_ray.sync import driver as weight_sync


@dataclass
class Startup:
    """What starting the actors found, for summary.json."""

    started_ray: bool
    actors: list[dict[str, Any]]
    learner: dict[str, Any]
    engine_dtype: str
    actors_s: float
    engine_s: float
    nodes: int


@dataclass
class RunActors:
    recipe: Recipe
    inputs: RunInputs
    supervisor: Supervisor
    log_dir: Path | None
    generators: GeneratorPool
    scorers: ScorerPool
    eval_scorers: ScorerPool
    """The held-out and transfer sets' scorers: `scorers` itself unless eval.reward differs."""
    general_scorers: ScorerPool
    """The general set's: eval_scorers or scorers when its reward is one of theirs."""
    judges: ActorPool
    learners: LearnerPool
    reservation: Any = None
    started_ray: bool = False
    startup: Startup | None = field(default=None)
    health: HealthWatch = field(default_factory=HealthWatch)
    """Every actor watched from a background thread: deaths between calls are seen within seconds."""

    def pools(self) -> dict[str, ActorPool]:
        """Each role's pool, once (an evaluated set may share the training scorers' pool)."""
        found: dict[str, ActorPool] = {}
        for pool in (self.generators, self.scorers, self.eval_scorers, self.general_scorers, self.judges,
                     self.learners):
            if all(pool is not other for other in found.values()):
                found[pool.role] = pool
        return found

    def watch(self) -> None:
        """Start watching every actor Ray restarts (health.py). Judges are not restarted: a dead one fails the
        scoring that goes through it, which is counted there."""
        for role, pool in self.pools().items():
            if role != "judge":
                self.health.watch(role, pool.actors)
        self.supervisor.health = self.health
        self.health.start()

    @classmethod
    def start(cls, recipe: Recipe, inputs: RunInputs, supervisor: Supervisor, log_dir: Path | None,
              actor_logs: bool, stage) -> RunActors:
        """Join or start Ray, reserve every role's resources at once, start every actor and wait for the engines.
        `stage(line)` prints a progress line."""
        res = recipe.resources
        eval_reward = recipe.eval.reward or recipe.scoring.reward
        general = general_reward(recipe) if inputs.general else eval_reward
        judges = recipe.scoring.judge.judges if registry.needs_judge(recipe.scoring.reward, eval_reward, general) else 0
        # Evaluation answers are scored raw, so the training scorers serve each evaluated set unless its reward
        # differs.
        own_eval_scorers = eval_reward != recipe.scoring.reward
        own_general_scorers = general not in (eval_reward, recipe.scoring.reward)
        counts = (judges, res.scorers if own_eval_scorers else 0, res.scorers if own_general_scorers else 0)
        started = time.perf_counter()
        started_ray = session.connect(launch.local_cpu_demand(placement.requests(recipe, *counts)), actor_logs)
        reservation, pools = None, []
        try:
            reservation = placement.reserve(recipe, *counts)
            locations = reservation.locations()
            supervisor.homes = {(where["role"], where["rank"]): where for where in locations}
            supervisor.locate = reservation.locations
            nodes = {where["node_id"] for where in locations}
            stage(f"ray up ({'local' if started_ray else 'cluster'}); resources reserved on {len(nodes)} node(s) "
                  f"(placement {res.placement}) in {time.perf_counter() - started:.1f}s; starting {res.generators} "
                  f"generator(s), {res.scorers} scorer(s), {res.learners} learner rank(s)")
            storage.check_shared(recipe.run_dir.resolve(), reservation.nodes(("learner", "generator")))
            started = time.perf_counter()
            generators = GeneratorPool(launch.start_generators(recipe, inputs.model_dir, reservation, log_dir),
                                       supervisor)
            pools.append(generators)
            judge_pool = ActorPool("judge", launch.start_judges(recipe, inputs.judge_model_dir, reservation, log_dir)
                                   if judges else [], supervisor)
            pools.append(judge_pool)

            def scorer_pool(role: str, reward: str, normalize: bool = False) -> ScorerPool:
                pool = ScorerPool(role, launch.start_scorers(recipe, reward, normalize, judge_pool.actors,
                                                             inputs.scoring_paths, reservation, role, log_dir),
                                  supervisor)
                pools.append(pool)
                return pool

            scorers = scorer_pool("scorer", recipe.scoring.reward, recipe.scoring.normalize == "group")
            eval_scorers = scorer_pool("eval_scorer", eval_reward) if own_eval_scorers else scorers
            general_scorers = (scorer_pool("general_scorer", general) if own_general_scorers
                               else eval_scorers if general == eval_reward else scorers)
            learners = LearnerPool(launch.start_learners(recipe, inputs.model_dir, reservation, log_dir), supervisor)
            pools.append(learners)
            learner = learners.call_all("describe")[0]
            engine = ray.get(generators.handle(0).describe.remote(), timeout=supervisor.timeout("startup"))
            try:
                engine_s = ray.get([g.ready.remote() for g in generators.actors + judge_pool.actors],
                                   timeout=supervisor.timeout("startup"))
            except ray.exceptions.GetTimeoutError:
                raise TaoError(f"the vLLM engines did not start within resources.startup_timeout_s "
                               f"({res.startup_timeout_s:g}s); raise it for large models or slow storage") from None
            generators.note_engines()
        except BaseException:  # a run that cannot start leaves no actor, reservation or Ray of its own behind
            for pool in pools:
                if isinstance(pool, GeneratorPool):
                    pool.stop()
                else:
                    pool.kill()
            if reservation is not None:
                reservation.release()
            if started_ray:
                ray.shutdown()
            raise
        actors = cls(recipe, inputs, supervisor, log_dir, generators, scorers, eval_scorers, general_scorers,
                     judge_pool, learners, reservation, started_ray)
        actors.startup = Startup(started_ray, locations, learner, engine["dtype"], time.perf_counter() - started,
                                 max(engine_s), len(nodes))
        actors.watch()
        return actors

    def make_sync(self):
        """The weight-sync channel between the current learners and generators (metadata checked, group set up).
        A generator found dead on the way is restarted first (its refit comes with the next sync)."""
        res, lora = self.recipe.resources, self.recipe.training.lora
        sync = weight_sync.make_sync(res.device, self.learners.actors, self.generators.actors,
                                     res.tensor_parallel_size, lora_adapter=lora.r > 0 and lora.sync == "adapter")
        timeout_s = self.supervisor.timeout("sync")
        started = time.perf_counter()
        try:
            sync.init(timeout_s)
        except (ray.exceptions.RayError, TimeoutError) as error:
            self.learners.check()
            if sync.restart_all_on_failure:  # engines may be stuck in an old group's receive: all start afresh
                self.generators.restart_all(sync, 0, f"weight-sync group failed to form "
                                            f"({faults.describe(error)})", time.perf_counter() - started)
            else:
                self.generators.revive(sync)
            sync.init(timeout_s)
        return sync

    def restart_learners(self) -> None:
        """Kill every rank (the survivors are blocked in the broken collective) and start them again: where a rank's
        node left the cluster, on the node its bundle moved to, or a stop naming the node when none has room."""
        self.health.forget(self.learners.actors)
        self.learners.kill()
        deadline = time.perf_counter() + self.supervisor.timeout("startup")
        while True:
            try:
                actors = launch.start_learners(self.recipe, self.inputs.model_dir, self.reservation, self.log_dir)
                break
            except (TaoError, ray.exceptions.RayActorError) as error:
                if isinstance(error, ray.exceptions.RayActorError) and time.perf_counter() < deadline:
                    # Started on a node that died under it before Ray knew: its bundle moves, try again.
                    time.sleep(2.0)
                    continue
                lost_rank, lost = next(((rank, home) for rank in range(len(self.learners))
                                        if (home := self.supervisor.lost_node("learner", rank))), (0, None))
                if lost is not None:
                    raise TaoError(self.supervisor.node_lost_message(lost, "learner", lost_rank)) from None
                if isinstance(error, TaoError):
                    raise
                raise TaoError(f"the learner ranks could not be started again: {faults.describe(error)}") from None
        self.learners = LearnerPool(actors, self.supervisor)
        self.health.watch("learner", self.learners.actors)

    def stop(self) -> None:
        """Stop the engines (none of their processes outlives the run), kill every other actor once, release the
        reservation and, when this run started Ray, Ray."""
        self.health.stop()  # what is stopped from here on is no death
        self.generators.stop()
        seen: set[int] = set()
        for pool in (self.scorers, self.eval_scorers, self.general_scorers, self.judges, self.learners):
            if id(pool) not in seen:  # the evaluated sets may share the training scorers' pool
                seen.add(id(pool))
                pool.kill()
        if self.reservation is not None:
            self.reservation.release()
        if self.started_ray:
            ray.shutdown()
