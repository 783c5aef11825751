"""Keeping the actors of a run alive: every call with a deadline, dead or hung actors restarted and their work
redone, and a generator never sampling from weights older than the current policy version.

In: the actor lists the driver owns, a function making each actor's call, and the stage. Out: every call's result
(or, for learners, a LearnerFailure the driver answers by restarting the learner group from a checkpoint). Each
recovery is recorded in summary.json's `restarts` (role, rank, iteration, cause, and the seconds it took to
detect, restart and refit).

A node that leaves the cluster (preempted, rebooted, its raylet killed) takes every actor on it at once. Ray moves
the run's placement-group bundles of that node to any node with room, a node joining later included, and restarts
the actors there; each is then handled as any death, recorded with cause `node_lost` and the node's id. Where
nothing can host them within resources.startup_timeout_s, the run stops with one line naming the node, what it
took and the command that resumes the run on a healthy cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ray

from tao_ray.config import Recipe
from tao_ray.errors import TaoError
from tao_ray.runtime import faults


class Supervisor:
    def __init__(self, recipe: Recipe, tracker, restarts: dict[str, list]):
        self.resources, self.tracker, self.restarts = recipe.resources, tracker, restarts
        self.iteration = 0
        self.engine_processes: dict[int, tuple[str, list]] = {}
        self.health = None  # the run's HealthWatch (health.py), told of every death handled through a call
        # Where each (role, rank) runs ({"node_id", "node_ip", ...}), and how to look again after a re-placement:
        # set by runtime/run_actors.py from the run's placement group.
        self.homes: dict[tuple[str, int], dict[str, Any]] = {}
        self.locate: Callable[[], list[dict[str, Any]]] = list
        self.moved_off: dict[str, set[str]] = {}  # node id -> the actors that ran there and were re-placed
        self.resume_hint = ""
        """How to continue the run when it must stop ("every completed iteration is in ...; continue with: ..."),
        set by the driver."""

    def timeout(self, stage: str) -> float:
        return faults.stage_timeout(self.resources, stage)

    def record(self, role: str, rank: int, cause: str, detect_s: float, restart_s: float, refit_s: float) -> None:
        entry = {"rank": rank, "iteration": self.iteration, "cause": cause, "detect_s": round(detect_s, 3),
                 "restart_s": round(restart_s, 3), "refit_s": round(refit_s, 3)}
        lost = self.lost_node(role, rank)
        if lost is not None:
            entry.update(cause="node_lost", node_id=lost["node_id"], node_ip=lost.get("node_ip"), failure=cause)
            cause = f"lost with node {lost['node_id'][:12]} ({lost.get('node_ip')})"
            self.moved_off.setdefault(lost["node_id"], set()).add(f"{role} {rank}")
            self._look_again(role, rank)
        self.restarts.setdefault(role, []).append(entry)
        where = self.homes.get((role, rank), {}).get("node_ip")
        self.tracker.stage(f"{role} {rank} {cause}: restarted in {restart_s:.1f}s{f' on {where}' if lost else ''}, "
                           f"refitted in {refit_s:.1f}s (detected after {detect_s:.1f}s); its work is done again")

    # ---- nodes ------------------------------------------------------------------------------------------------

    def lost_node(self, role: str, rank: int) -> dict[str, Any] | None:
        """Where (role, rank) ran, when that node has left the cluster; else None."""
        home = self.homes.get((role, rank))
        if home is None:
            return None
        try:
            alive = {node["NodeID"] for node in ray.nodes() if node.get("Alive")}
        except Exception:  # noqa: BLE001 - the node table cannot be read now: no node is known lost
            return None
        return None if home["node_id"] in alive else home

    def _look_again(self, role: str, rank: int) -> None:
        """Where (role, rank) runs now that its bundle was moved to another node."""
        for where in self.locate():
            if (where["role"], where["rank"]) == (role, rank):
                self.homes[(role, rank)] = where

    def node_lost_message(self, lost: dict[str, Any], role: str, rank: int) -> str:
        still = {f"{r} {k}" for (r, k), home in self.homes.items() if home["node_id"] == lost["node_id"]}
        taken = ", ".join(sorted(still | self.moved_off.get(lost["node_id"], set())))
        return (f"node {lost['node_id']} ({lost.get('node_ip')}) left the cluster in iteration {self.iteration}, "
                f"taking {taken}; no node had room for {role} {rank} within resources.startup_timeout_s "
                f"({self.resources.startup_timeout_s:g}s); {self.resume_hint or 'continue with --resume'}")

    # ---- generators -----------------------------------------------------------------------------------------

    def note_engines(self, generators: list) -> None:
        """Remember each engine's processes, to kill them should their actor die without taking them along."""
        found = ray.get([g.engine_processes.remote() for g in generators], timeout=self.timeout("control"))
        self.engine_processes.update(enumerate(found))

    def make_current(self, generators: list, sync, version: int) -> None:
        """Refit every generator that serves an older policy version (one Ray restarted between two calls)."""
        versions, failures = faults.gather({k: g.version.remote() for k, g in enumerate(generators)},
                                           self.timeout("control"))
        for k, failure in failures.items():
            self.restart_generator(k, generators, sync, version, failure)
        for k, held in versions.items():
            if held != version:
                started = time.perf_counter()
                refit_s = self._refit(generators[k], sync, version)
                self.record("generator", k, f"served policy version {held}, not {version} (restarted)",
                            0.0, time.perf_counter() - started - refit_s, refit_s)
                if self.health is not None:  # the restart behind it is handled: the watch must not report it again
                    self.health.acknowledge(generators[k])

    def revive(self, generators: list, sync) -> None:
        """Restart the generators found dead, without a refit: the caller's next sync brings them current."""
        _, failures = faults.gather({k: g.version.remote() for k, g in enumerate(generators)}, self.timeout("control"))
        for k, failure in failures.items():
            self.restart_generator(k, generators, sync, 0, failure)

    def _refit(self, generator, sync, version: int) -> float:
        started = time.perf_counter()
        if version > 0:  # a (re)started engine already serves the base model's weights, version 0
            sync.refit([generator], version, self.timeout("sync"))
        return time.perf_counter() - started

    def bring_back(self, role: str, k: int, actor, failure: faults.Failure) -> float:
        """Wait until Ray has restarted a dead actor (a hung one is killed first: handled like a dead one); returns
        the seconds it took. One that cannot come back stops the run with one line naming it."""
        started = time.perf_counter()
        if failure.timed_out:
            ray.kill(actor, no_restart=False)
        dead = faults.wait_until_back(actor.ready.remote, self.timeout("startup"))
        lost = self.lost_node(role, k) if dead is not None else None
        if lost is not None:
            raise TaoError(self.node_lost_message(lost, role, k))
        if dead is not None:
            raise TaoError(f"{role} {k} kept dying: it {failure.cause} in iteration {self.iteration} and could not be "
                           f"restarted ({dead.cause}): resources.max_actor_restarts "
                           f"({self.resources.max_actor_restarts}) is used up or its node is gone")
        if self.health is not None:
            self.health.acknowledge(actor)
        return time.perf_counter() - started

    def restart_generator(self, k: int, generators: list, sync, version: int, failure: faults.Failure) -> None:
        restart_s = self._bring_back_generator(k, generators[k], failure)
        self.record("generator", k, failure.cause, failure.detect_s, restart_s,
                    self._refit(generators[k], sync, version))

    def _bring_back_generator(self, k: int, generator, failure: faults.Failure) -> float:
        """Kill what its engine left, wait until Ray has brought the actor back, note its new engine's processes;
        returns the seconds the restart took."""
        node, processes = self.engine_processes.pop(k, (None, []))
        if node is not None and self.lost_node("generator", k) is None:
            # An engine outlives its SIGKILLed actor; on a GPU it holds the replacement's memory. (On a node that
            # left the cluster, it left too.)
            faults.kill_orphans(node, processes)
        restart_s = self.bring_back("generator", k, generator, failure)
        self.engine_processes[k] = ray.get(generator.engine_processes.remote(), timeout=self.timeout("control"))
        return restart_s

    def restart_all_generators(self, generators: list, sync, version: int, cause: str, detect_s: float) -> None:
        """A collective weight sync failed (NCCL: the group is unusable and some engines may be stuck in its
        receive): every generator is killed and brought back by Ray on the base weights, then all are refitted to
        `version` through one new group. None is left half-received."""
        for generator in generators:  # all at once: none may take part in the broken group any more
            ray.kill(generator, no_restart=False)
        failure = faults.Failure(cause, False, detect_s)
        restart_s = {k: self._bring_back_generator(k, generator, failure) for k, generator in enumerate(generators)}
        started = time.perf_counter()
        if version > 0:
            sync.refit(generators, version, self.timeout("sync"))
        refit_s = time.perf_counter() - started
        for k in range(len(generators)):
            self.record("generator", k, cause, detect_s, restart_s[k], refit_s)

    def _every_shard(self, actors: list, shards: list, call: Callable[[int, Any, Any], Any], stage: str,
                     recover: Callable[[int, faults.Failure], None],
                     before: Callable[[], None] | None = None) -> dict[int, Any]:
        """call(k, actor k, shard k) for every non-empty shard, recovering failed actors and sending their shards
        again until every shard has a result."""
        todo = {k: shard for k, shard in enumerate(shards) if shard}
        results: dict[int, Any] = {}
        while todo:
            if before is not None:
                before()
            done, failures = faults.gather({k: call(k, actors[k], shard) for k, shard in todo.items()},
                                           self.timeout(stage))
            results.update(done)
            for k, failure in failures.items():
                recover(k, failure)
            todo = {k: todo[k] for k in failures}
        return results

    def on_generators(self, generators: list, shards: list, call: Callable[[int, Any, Any], Any], stage: str, sync,
                      version: int) -> dict[int, Any]:
        """Every shard's result; a generator that dies or hangs is restarted, refitted to `version` and sent its
        shard again, and none samples before it serves `version`."""
        return self._every_shard(
            generators, shards, call, stage,
            recover=lambda k, failure: self.restart_generator(k, generators, sync, version, failure),
            before=lambda: self.make_current(generators, sync, version))

    # ---- scorers --------------------------------------------------------------------------------------------

    def on_scorers(self, scorers: list, shards: list, call: Callable[[int, Any, Any], Any], role: str
                   ) -> dict[int, Any]:
        """Every shard's result; a scorer that dies or hangs is restarted (by Ray, up to
        resources.max_actor_restarts) and its batch sent again; one that keeps dying stops the run."""

        def recover(k: int, failure: faults.Failure) -> None:
            self.record(role, k, failure.cause, failure.detect_s, self.bring_back(role, k, scorers[k], failure), 0.0)

        return self._every_shard(scorers, shards, call, "score", recover)

    # ---- learners -------------------------------------------------------------------------------------------

    def on_learners(self, learners: list, call: Callable[[Any, int], Any], stage: str) -> list:
        """call(learner, rank) on every rank. A rank that dies or hangs breaks the collective for all: raised as a
        LearnerFailure for the driver to restart the group from the newest checkpoint."""
        done, failures = faults.gather({rank: call(learner, rank) for rank, learner in enumerate(learners)},
                                       self.timeout(stage), collective=True)
        if failures:
            # The rank that died, else one that hung (an NCCL survivor often waits in the collective until the
            # deadline), rather than one that only raised because of them.
            rank = min(failures, key=lambda r: (failures[r].cause == faults.LOST_A_PEER, failures[r].timed_out, r))
            raise faults.LearnerFailure(rank, failures[rank])
        return [done[rank] for rank in range(len(learners))]

    def check_learners(self, learners: list) -> None:
        """Raise a LearnerFailure if a rank is dead (after a call that involved learners and generators failed)."""
        self.on_learners(learners, lambda learner, rank: learner.ping.remote(), "control")

    # ---- the end --------------------------------------------------------------------------------------------

    def stop_generators(self, generators: list) -> None:
        """Stop the engines, then make sure none of their processes outlives the run."""
        faults.gather({k: g.shutdown.remote() for k, g in enumerate(generators)}, 30.0)
        for generator in generators:
            ray.kill(generator)
        for node, processes in self.engine_processes.values():
            faults.kill_orphans(node, processes)
