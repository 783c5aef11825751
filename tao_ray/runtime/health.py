"""Every actor of a run watched from a background thread, so that a death is seen within seconds whenever it
happens: during a call (which also fails, and is handled there) or between calls, when nothing calls the actor and
Ray restarts it without a word (a generator killed after a checkpoint came back on the base weights and served the
next batch with nobody the wiser).

The watch reads Ray's actor table (the GCS's record of each actor: state and restart count) every `interval_s`; a
restart count that grew, or an actor RESTARTING or DEAD, is a death. The driver takes the deaths at each stage
boundary and handles them (loop/driver.py check_health); a death the supervisor already handled through a failed
call is acknowledged there and not reported twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Death:
    role: str
    rank: int
    seen_at: float
    """time.perf_counter() when the watch saw it."""
    state: str
    """The actor's state then: RESTARTING (Ray brings it back), ALIVE (already back) or DEAD (for good)."""
    restarts: int
    """Ray's restart count of the actor when it was seen."""


def gcs_actor(actor_id: str) -> dict[str, Any] | None:
    """The actor's row of Ray's actor table ({"State", "NumRestarts", ...}), or None when it cannot be read. Ray's
    public State API needs the dashboard, which a local run does not start; the GCS table needs nothing."""
    from ray._private import state

    try:
        return state.actors(actor_id)
    except Exception:  # noqa: BLE001 - an unreadable table is no death: the next poll tries again
        return None


class HealthWatch:
    def __init__(self, interval_s: float = 1.0, table: Callable[[str], dict[str, Any] | None] = gcs_actor):
        self.interval_s, self.table = interval_s, table
        self._lock = threading.Lock()
        self._watched: dict[str, tuple[str, int]] = {}  # actor id -> (role, rank)
        self._seen: dict[str, int] = {}  # actor id -> restart count already seen (reported or acknowledged)
        self._dead: set[str] = set()
        self._deaths: list[Death] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def key(handle) -> str:
        return handle._actor_id.hex()

    def watch(self, role: str, actors: list) -> None:
        """Watch these actors of `role` (rank = position), from their current restart count on."""
        for rank, handle in enumerate(actors):
            key = self.key(handle)
            row = self.table(key)
            with self._lock:
                self._watched[key] = (role, rank)
                self._seen[key] = row["NumRestarts"] if row else 0
                self._dead.discard(key)

    def forget(self, actors: list) -> None:
        """Stop watching actors the run replaces or kills itself (a learner group started again)."""
        with self._lock:
            for handle in actors:
                watched = self._watched.pop(self.key(handle), None)
                self._deaths = [d for d in self._deaths if (d.role, d.rank) != watched]

    def acknowledge(self, handle) -> None:
        """The supervisor handled this actor's death through a failed call: its restarts so far are known."""
        key = self.key(handle)
        row = self.table(key)
        with self._lock:
            if row is not None:
                self._seen[key] = max(self._seen.get(key, 0), row["NumRestarts"])
            watched = self._watched.get(key)
            self._deaths = [d for d in self._deaths if (d.role, d.rank) != watched or d.restarts > self._seen[key]]

    def poll(self) -> None:
        """One look at every watched actor."""
        with self._lock:
            watched = dict(self._watched)
        for key, (role, rank) in watched.items():
            row = self.table(key)
            if row is None:
                continue
            restarts, state = row["NumRestarts"], row["State"]
            with self._lock:
                if key not in self._watched:
                    continue
                # Ray counts a restart as soon as the actor is RESTARTING; one with no restarts left goes DEAD.
                died = restarts > self._seen.get(key, 0)
                if state == "DEAD" and key not in self._dead:
                    self._dead.add(key)
                    died = True
                if died:
                    self._seen[key] = max(restarts, self._seen.get(key, 0))
                    self._deaths.append(Death(role, rank, time.perf_counter(), state, restarts))

    def take(self) -> list[Death]:
        """The deaths seen since the last call, oldest first."""
        with self._lock:
            deaths, self._deaths = self._deaths, []
        return deaths

    def seen_dead(self, role: str) -> list[int]:
        """The ranks of `role` whose death is seen and not yet taken: a look that leaves them for take()."""
        with self._lock:
            return sorted({death.rank for death in self._deaths if death.role == role})

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tao-ray-health-watch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
