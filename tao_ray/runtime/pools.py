"""The actors of one role and every call the loop makes to them, each with a deadline (faults.py) and the role's
recovery (supervision.py): a generator is restarted, refitted and sent its shard again; a scorer is restarted and
sent its batch again; a learner rank's failure is a LearnerFailure for the driver to answer.

The loop names a method and its arguments and never calls `.remote` itself, so tests/loop drives the whole loop
with stand-in pools that call plain objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

from tao_ray.core.selection import mean
from tao_ray.runtime import faults
from tao_ray.runtime.supervision import Supervisor


class ActorPool:
    """One role's actor handles (role: generator, scorer, eval_scorer, general_scorer, judge, learner)."""

    def __init__(self, role: str, actors: list, supervisor: Supervisor):
        self.role, self.actors, self.supervisor = role, list(actors), supervisor

    def __len__(self) -> int:
        return len(self.actors)

    def handle(self, k: int):
        """Actor k's handle, to pass to another actor (an adaptive generator scores through a scorer)."""
        return self.actors[k]

    def call_all(self, method: str, *args, stage: str = "control") -> list:
        """The same call on every actor, its results in rank order; no recovery (a failure raises)."""
        return ray.get([getattr(actor, method).remote(*args) for actor in self.actors],
                       timeout=self.supervisor.timeout(stage))

    def kill(self) -> None:
        for actor in self.actors:
            ray.kill(actor)

    def replace_dead(self, k: int, failure: faults.Failure, sync, version: int) -> None:
        """Actor k died between calls (health.py): wait until Ray has brought it back and record it."""
        self.supervisor.record(self.role, k, failure.cause, failure.detect_s,
                               self.supervisor.bring_back(self.role, k, self.actors[k], failure), 0.0)


class GeneratorPool(ActorPool):
    def __init__(self, actors: list, supervisor: Supervisor):
        super().__init__("generator", actors, supervisor)

    def each_shard(self, method: str, shard_args: list[tuple | None], stage: str, sync, version: int
                   ) -> dict[int, Any]:
        """generator k's `method(*shard_args[k])` for every shard that has arguments; one that dies or hangs is
        restarted, refitted to policy `version` and sent its shard again, and none samples on older weights."""
        return self.supervisor.on_generators(self.actors, shard_args,
                                             lambda k, actor, args: getattr(actor, method).remote(*args), stage,
                                             sync, version)

    def note_engines(self) -> None:
        self.supervisor.note_engines(self.actors)

    def make_current(self, sync, version: int) -> None:
        self.supervisor.make_current(self.actors, sync, version)

    def revive(self, sync) -> None:
        self.supervisor.revive(self.actors, sync)

    def replace_dead(self, k: int, failure: faults.Failure, sync, version: int) -> None:
        """Generator k died between calls: wait for it, kill what its engine left, refit it to `version` (before
        it samples again) and record it."""
        self.supervisor.restart_generator(k, self.actors, sync, version, failure)

    def restart_all(self, sync, version: int, cause: str, detect_s: float) -> None:
        self.supervisor.restart_all_generators(self.actors, sync, version, cause, detect_s)

    def parameter_sums(self, name: str) -> list[float | None]:
        """Each engine's sum of parameter `name` (None where it names or shards it otherwise, or did not answer)."""
        calls = {k: g.parameter_sum.remote(name) for k, g in enumerate(self.actors)}
        try:
            sums, _ = faults.gather(calls, self.supervisor.timeout("control"))
        except ray.exceptions.RayTaskError:  # the engine names or shards its embedding otherwise
            sums = {}
        return [sums.get(k) for k in range(len(self.actors))]

    def stop(self) -> None:
        self.supervisor.stop_generators(self.actors)


class ScorerPool(ActorPool):
    def each_shard(self, method: str, shard_args: list[tuple | None]) -> dict[int, Any]:
        """scorer k's `method(*shard_args[k])` for every shard that has arguments; one that dies or hangs is
        restarted and sent its shard again."""
        return self.supervisor.on_scorers(self.actors, shard_args,
                                          lambda k, actor, args: getattr(actor, method).remote(*args), self.role)

    def stats(self) -> dict[str, Any]:
        """Each component's mean raw score (reward/<name>) and failures since the last call, merged over the
        scorers."""
        return merge_stats(self.call_all("take_stats", stage="score"))


class LearnerPool(ActorPool):
    def __init__(self, actors: list, supervisor: Supervisor):
        super().__init__("learner", actors, supervisor)

    def every_rank(self, method: str, args_of: Callable[[int], tuple] = lambda rank: (), stage: str = "control"
                   ) -> list:
        """rank r's `method(*args_of(r))` on every rank, results in rank order. A rank that dies or hangs breaks
        the collective for all: raised as a LearnerFailure."""
        return self.supervisor.on_learners(self.actors, lambda learner, rank: getattr(learner, method).remote(
            *args_of(rank)), stage)

    def every(self, method: str, *args, stage: str = "control") -> list:
        return self.every_rank(method, lambda rank: args, stage)

    def check(self) -> None:
        """Raise a LearnerFailure if a rank is dead (after a call that involved learners and generators failed)."""
        self.supervisor.check_learners(self.actors)

    def replace_dead(self, k: int, failure: faults.Failure, sync, version: int) -> None:
        """A rank that died breaks the group whatever it was doing: the driver restarts every rank."""
        raise faults.LearnerFailure(k, failure)


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Scorers' take_stats merged: failures added up, each reward/<name> the mean of the scorers that have one."""
    merged: dict[str, Any] = {"scoring/failed": sum(p["scoring/failed"] for p in parts),
                              "scoring/failure_reasons": [r for p in parts for r in p["scoring/failure_reasons"]]}
    for key in parts[0]:
        if key.startswith("reward/"):
            merged[key] = mean([p[key] for p in parts])
    return merged
