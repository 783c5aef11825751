"""Stand-ins for the run's actors, for the loop's fast tests: plain objects with the actors' methods, in pools with
the pools' interface (runtime/pools.py), so the driver's real loop (loop/driver.py) runs without Ray, vLLM or
DeepSpeed.

A stand-in generator answers with token ids derived from the prompt and the sample's index; the scorer rewards each
response by its index in the group (so every group carries signal); a learner records what it was given and writes
a checkpoint's directories as a real one lays them out. A learner can be told to die in a given call of `train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tao_ray.core.batch import Generation
from tao_ray.core.composition import Scores
from tao_ray.runtime import faults
from tao_ray.runtime.health import Death
from tao_ray.runtime.pools import merge_stats
from tao_ray.runtime.run_actors import Startup


class Generator:
    def __init__(self):
        self.policy_version = 0

    def generate_and_answer(self, sample, n, temperature, top_p, max_tokens, plan, scorer, records, greedy_prompts):
        def group(index: int, messages, count: int) -> Generation:
            text = messages[-1]["content"]
            responses = [f"{text[:12]} answer {j}" for j in range(count)]
            return Generation(index, [len(text) % 50 + 1, 2, 3], responses, [[4 + j, 5, 6] for j in range(count)],
                              samples_drawn=count, tokens_drawn=3 * count, policy_version=self.policy_version)

        return [group(i, m, n) for i, m in sample], [group(i, m, 1) for i, m in greedy_prompts]

    def version(self) -> int:
        return self.policy_version


class Scorer:
    def score(self, records: list[dict], groups: list[list[str]]) -> Scores:
        raw = [[(j % 4) / 3 for j in range(len(group))] for group in groups]
        return Scores(raw, raw)

    def by_type(self, records: list[dict], responses: list[str]) -> list[dict[str, float]]:
        return [{"max_words": 1.0, "no_commas": float(len(text) % 2)} for text in responses]

    def take_stats(self) -> dict[str, Any]:
        return {"reward/constraints": 0.5, "scoring/failed": 0, "scoring/failure_reasons": []}


class Learner:
    def __init__(self, rank: int, dies_in_train_call: int | None = None):
        self.rank, self.dies_in_train_call = rank, dies_in_train_call
        self.train_calls: list[int] = []  # the policy version each step started from
        self.loaded: list[str] = []

    def train(self, shard, micro_batches, denominators, version) -> dict[str, float]:
        self.train_calls.append(version)
        if self.dies_in_train_call == len(self.train_calls):
            raise faults.LearnerFailure(self.rank, faults.Failure("died (stand-in)", False, 0.5))
        return {"loss": 0.1, "samples": float(len(shard)), "tokens": float(len(shard) * 3), "seconds": 0.01,
                "grad_norm": 1.0}

    def save_checkpoint(self, directory: str, full: bool) -> float:
        (Path(directory) / "model").mkdir(parents=True, exist_ok=True)
        if full:
            (Path(directory) / "learner").mkdir(exist_ok=True)
        return 0.0

    def writes_done(self) -> bool:
        return True

    def wait_for_writes(self) -> float:
        return 0.0

    def load_state(self, directory: str) -> None:
        self.loaded.append(directory)

    def apply_optimizer_settings(self, lr, weight_decay, max_grad_norm) -> dict[str, list[float]]:
        return {"lr": [lr, lr], "weight_decay": [weight_decay, weight_decay],
                "max_grad_norm": [max_grad_norm, max_grad_norm]}


class Pool:
    """A pool over plain objects: each call is a method call, in order; a LearnerFailure raised by one propagates
    as the real learner pool raises it."""

    def __init__(self, role: str, actors: list):
        self.role, self.actors = role, actors

    def __len__(self) -> int:
        return len(self.actors)

    def handle(self, k: int):
        return self.actors[k]

    def call_all(self, method: str, *args, stage: str = "control") -> list:
        return [getattr(actor, method)(*args) for actor in self.actors]

    def each_shard(self, method: str, shard_args: list, stage: str | None = None, sync=None, version=None) -> dict:
        return {k: getattr(self.actors[k], method)(*args) for k, args in enumerate(shard_args) if args is not None}

    def stats(self) -> dict[str, Any]:
        return merge_stats(self.call_all("take_stats"))

    def every_rank(self, method: str, args_of=lambda rank: (), stage: str = "control") -> list:
        return [getattr(actor, method)(*args_of(rank)) for rank, actor in enumerate(self.actors)]

    def every(self, method: str, *args, stage: str = "control") -> list:
        return self.every_rank(method, lambda rank: args, stage)

    def check(self) -> None:
        pass

    def make_current(self, sync, version: int) -> None:
        sync.update(version)

    def replace_dead(self, k: int, failure: faults.Failure, sync, version: int) -> None:
        """As the pools do: a generator comes back on the base weights and is refitted; a learner rank's death
        breaks its group."""
        if self.role == "learner":
            raise faults.LearnerFailure(k, failure)
        self.replaced = getattr(self, "replaced", []) + [(k, failure.cause)]
        if self.role == "generator":
            self.actors[k] = Generator()
            if version > 0:
                sync.refit([self.actors[k]], version)

    def restart_all(self, sync, version: int, cause: str, detect_s: float) -> None:
        """As the supervisor does: every generator starts again on the base weights, then one refit for all."""
        self.restarts = getattr(self, "restarts", []) + [cause]
        for k in range(len(self.actors)):
            self.actors[k] = Generator()
        if version > 0:
            sync.refit(self.actors, version)

    def parameter_sums(self, name: str) -> list[float | None]:
        return [float(g.policy_version) for g in self.actors]

    def kill(self) -> None:
        self.killed = True

    stop = kill


class Health:
    """The health watch's interface, with deaths scripted per call of `take` (the driver calls it at each stage
    boundary): {call number: [(role, rank)]}."""

    interval_s = 1.0

    def __init__(self, script: dict[int, list[tuple[str, int]]] | None = None):
        self.script, self.calls = script or {}, 0

    def take(self) -> list:
        self.calls += 1
        return [Death(role, rank, 0.0, "RESTARTING", 1) for role, rank in self.script.get(self.calls, [])]

    def seen_dead(self, role: str) -> list[int]:
        return []  # deaths here are scripted at stage boundaries, never seen mid-call


class Sync:
    """`fails_at`: the update versions that fail as a collective sync does when a receiver dies (TimeoutError)."""

    name = "stand-in"

    def __init__(self, generators: Pool, restart_all_on_failure: bool = False, fails_at: tuple[int, ...] = ()):
        self.generators, self.restart_all_on_failure, self.fails_at = generators, restart_all_on_failure, fails_at
        self.updates: list[int] = []
        self.refits: list[int] = []
        self.closed = 0

    def update(self, version: int, generators=None, timeout_s: float | None = None, abort=None) -> float:
        if version in self.fails_at and version not in self.updates:
            self.updates.append(version)
            self.generators.actors[0].policy_version = -1  # torn mid-receive
            raise TimeoutError("a receiver gave no answer within the sync deadline")
        self.updates.append(version)
        for generator in self.generators.actors:
            generator.policy_version = version
        return 0.0

    def refit(self, generators, version: int, timeout_s: float | None = None) -> float:
        self.refits.append(version)
        return self.update(version)

    def close(self, timeout_s: float | None = None) -> None:
        self.closed += 1


class Actors:
    """The run's actors (runtime/run_actors.RunActors' interface). `learner_deaths`: for each start of the learner
    ranks, the train call (1-based) in which rank 0 dies, or None."""

    def __init__(self, generators: int = 2, scorers: int = 2, learners: int = 2,
                 learner_deaths: list[int | None] = (), sync_failures: tuple[int, ...] = (),
                 deaths_between_calls: dict[int, list[tuple[str, int]]] | None = None):
        self.generators = Pool("generator", [Generator() for _ in range(generators)])
        self.scorers = self.eval_scorers = self.general_scorers = Pool("scorer", [Scorer() for _ in range(scorers)])
        self.judges = Pool("judge", [])
        self.learner_count, self.learner_deaths, self.learner_starts = learners, list(learner_deaths), 0
        self.learners = self.start_learners()
        self.syncs: list[Sync] = []
        self.sync_failures = sync_failures
        self.health = Health(deaths_between_calls)
        self.startup = Startup(True, [], {"parameters": 1000, "device": "cpu", "weights_dtype": "float32",
                                          "compute_dtype": "float32"}, "float32", 0.1, 0.1, 1)
        self.stopped = False

    def start_learners(self) -> Pool:
        dies = self.learner_deaths[self.learner_starts] if self.learner_starts < len(self.learner_deaths) else None
        self.learner_starts += 1
        return Pool("learner", [Learner(rank, dies if rank == 0 else None) for rank in range(self.learner_count)])

    def pools(self) -> dict[str, Pool]:
        return {"generator": self.generators, "scorer": self.scorers, "judge": self.judges,
                "learner": self.learners}

    def make_sync(self) -> Sync:
        self.syncs.append(Sync(self.generators, restart_all_on_failure=bool(self.sync_failures),
                               fails_at=self.sync_failures))
        return self.syncs[-1]

    def restart_learners(self) -> None:
        self.learners = self.start_learners()

    def stop(self) -> None:
        self.stopped = True
