"""Ray plumbing: start each role's actors with the resources the recipe gives them.

Resources are applied here with `ray.remote(num_cpus=..., num_gpus=...)(Cls)`, not in decorators, so tests and
recipes build the same classes for CPU or GPU.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import ray

from tao_ray.actors.generator import GeneratorActor, GeneratorSpec
from tao_ray.actors.judge import JudgeActor
from tao_ray.actors.learner import LearnerActor
from tao_ray.actors.logs import LOG_FILE_ENV
from tao_ray.actors.scorer import ScorerActor
from tao_ray.config import Recipe
from tao_ray.engine.learner import LearnerSpec
from tao_ray.errors import TaoError
from tao_ray.runtime import faults
from tao_ray.runtime.placement import Request, Reservation

log = logging.getLogger(__name__)


def local_cpu_demand(wanted: list[Request]) -> float:
    return sum(request.count * request.resources.get("CPU", 0.0) for request in wanted)


def _placed(cls, placement: Reservation | None, role: str, rank: int, log_dir: Path | None = None):
    """The actor class bound to its bundle of the run's placement group (unplaced when there is none), writing its
    output to <log_dir>/<role>-<rank>.log when a log dir is given (see actors/logs.py)."""
    options: dict = {}
    strategy = placement.strategy(role, rank) if placement is not None else None
    if strategy is not None:
        options["scheduling_strategy"] = strategy
    if log_dir is not None:
        # Merged into the job's runtime env: these env vars are added, the job's own are kept.
        options["runtime_env"] = {"env_vars": {LOG_FILE_ENV: str(log_dir / f"{role}-{rank}.log")}}
    return cls.options(**options) if options else cls


def start_generators(recipe: Recipe, model_dir: str, placement: Reservation | None = None,
                     log_dir: Path | None = None) -> list:
    res = recipe.resources
    # Ray restarts a dead generator (a fresh engine on the base weights, policy version 0); the driver refits it
    # and sends its work again, so Ray itself retries nothing.
    cls = ray.remote(num_cpus=res.generator_cpus, num_gpus=res.generator_gpus, max_restarts=res.max_actor_restarts,
                     max_task_retries=0)(GeneratorActor)
    return [_placed(cls, placement, "generator", i, log_dir).remote(GeneratorSpec.from_recipe(recipe, model_dir, i))
            for i in range(res.generators)]


def start_generator(spec: GeneratorSpec, gpus: float = 0.0):
    """One generator outside a run (compare, promote, expand): one CPU, `gpus` GPUs, no restarts."""
    return ray.remote(num_cpus=1, num_gpus=gpus)(GeneratorActor).remote(spec)


def start_judges(recipe: Recipe, judge_model_dir: str, placement: Reservation | None = None,
                 log_dir: Path | None = None) -> list:
    """vLLM judge engines, shared by every scorer whose reward includes `judge`. A judge has its own dtype and
    tensor-parallel size: it may be a larger model than the policy."""
    judge, res = recipe.scoring.judge, recipe.resources
    cls = ray.remote(num_cpus=judge.judge_cpus, num_gpus=judge.judge_gpus)(JudgeActor)
    eager = recipe.generation.enforce_eager if recipe.generation.enforce_eager is not None else res.device == "cpu"
    return [_placed(cls, placement, "judge", i, log_dir).remote(
        judge_model_dir, judge.dtype, judge.max_model_len, judge.kv_cache_gb,
        recipe.generation.gpu_memory_utilization, recipe.generation.seed + i, judge.tensor_parallel_size, eager,
        judge.mode, judge.rubric or None, judge.max_tokens, 128, judge.reason_first)
        for i in range(judge.judges)]


def start_scorers(recipe: Recipe, reward: str, normalize: bool = False, judges: list | None = None,
                  paths: dict[str, str] | None = None, placement: Reservation | None = None,
                  role: str = "scorer", log_dir: Path | None = None) -> list:
    """`paths`: scorer files already resolved to absolute paths (RunInputs.scoring_paths). `role`: scorer, or
    eval_scorer for the held-out evaluation's own scorers, general_scorer for the general prompts' own."""
    res = recipe.resources
    # A scorer that dies (e.g. a reward function crashing its process) is restarted by Ray up to the recipe's bound;
    # the driver sends its batch again (and counts it), so Ray itself retries nothing.
    cls = ray.remote(num_cpus=res.scorer_cpus, num_gpus=res.scorer_gpus, max_restarts=res.max_actor_restarts,
                     max_task_retries=0)(ScorerActor)
    scoring = dataclasses.asdict(recipe.scoring)
    for dotted, path in (paths or {}).items():
        section, key = dotted.split(".")
        scoring[section][key] = path
    return [_placed(cls, placement, role, i, log_dir).remote(reward, scoring, normalize, res.device, judges)
            for i in range(res.scorers)]


RENDEZVOUS_ATTEMPTS = 3


def join_ranks(make_ranks: Callable[[], list], timeout_s: float | None = None) -> tuple[list, list]:
    """Actors that form one torch.distributed group: `make_ranks()` creates them (rank 0 first), rank 0 names the
    rendezvous and every rank's `setup(address, port)` joins it. Returns (the actors, what each setup returned).

    Rank 0 names a port that is free when it looks, and another process (any outgoing connection draws its local
    port from the same range) can take it before the group listens on it: the ranks are then killed and new ones
    started on a new port, RENDEZVOUS_ATTEMPTS in all. Past `timeout_s`, ray's GetTimeoutError propagates.

    Whatever ends an attempt (a rank that died, a timeout), its ranks are killed before the error goes on: a
    survivor would keep its placement bundle, and the caller's next attempt would wait for that bundle forever."""
    attempt = 1
    while True:
        ranks = make_ranks()
        address = port = None
        try:
            address, port = ray.get(ranks[0].rendezvous_address.remote(), timeout=timeout_s)
            return ranks, ray.get([rank.setup.remote(address, port) for rank in ranks], timeout=timeout_s)
        except BaseException as error:
            kill_ranks(ranks)
            taken = isinstance(error, ray.exceptions.RayTaskError) and faults.port_was_taken(error)
            if attempt == RENDEZVOUS_ATTEMPTS or not taken:
                raise
            log.warning("rendezvous port %s:%s was taken before the ranks joined; starting them again on another "
                        "(attempt %d of %d)", address, port, attempt + 1, RENDEZVOUS_ATTEMPTS)
            attempt += 1


def kill_ranks(ranks: list) -> None:
    for rank in ranks:
        try:
            ray.kill(rank)
        except Exception:  # noqa: BLE001 - one already gone (its node left) needs no kill
            pass


def start_learners(recipe: Recipe, model_dir: str, placement: Reservation | None = None,
                   log_dir: Path | None = None) -> list:
    """Every learner rank, joined in one process group (join_ranks)."""
    res = recipe.resources
    cls = ray.remote(num_cpus=res.learner_cpus, num_gpus=res.learner_gpus)(LearnerActor)
    timeout_s = faults.stage_timeout(res, "startup")

    def make_ranks() -> list:
        return [_placed(cls, placement, "learner", rank, log_dir).remote(
            LearnerSpec.from_recipe(recipe, model_dir, rank)) for rank in range(res.learners)]

    try:
        return join_ranks(make_ranks, timeout_s)[0]
    except ray.exceptions.GetTimeoutError:
        raise TaoError(f"the learner ranks did not start within resources.startup_timeout_s ({timeout_s:g}s); "
                       "raise it for large models or slow storage") from None
