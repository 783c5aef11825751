"""The health watch, against a scripted actor table (pure: no Ray): deaths between calls are seen once, deaths the
supervisor handled through a failed call are not reported again, replaced actors are forgotten."""

from tao_ray.runtime.health import HealthWatch


class Handle:
    def __init__(self, key: str):
        self._actor_id = bytes.fromhex(key)


class Table:
    def __init__(self):
        self.rows: dict[str, dict] = {}

    def __call__(self, key: str):
        return self.rows.get(key)

    def set(self, key: str, state: str, restarts: int) -> None:
        self.rows[key] = {"State": state, "NumRestarts": restarts}


def watch_two() -> tuple[HealthWatch, Table, list[Handle]]:
    table = Table()
    handles = [Handle("aa" * 16), Handle("bb" * 16)]
    for handle in handles:
        table.set(handle._actor_id.hex(), "ALIVE", 0)
    watch = HealthWatch(table=table)
    watch.watch("generator", handles)
    return watch, table, handles


def test_a_restart_between_calls_is_seen_once_with_its_role_and_rank():
    watch, table, handles = watch_two()
    watch.poll()
    assert watch.take() == []
    table.set(handles[1]._actor_id.hex(), "RESTARTING", 1)
    watch.poll()
    table.set(handles[1]._actor_id.hex(), "ALIVE", 1)
    watch.poll()
    (death,) = watch.take()
    assert (death.role, death.rank, death.state, death.restarts) == ("generator", 1, "RESTARTING", 1)
    watch.poll()
    assert watch.take() == []


def test_an_actor_with_no_restarts_left_is_reported_dead_once():
    watch, table, handles = watch_two()
    table.set(handles[0]._actor_id.hex(), "DEAD", 0)
    watch.poll()
    watch.poll()
    (death,) = watch.take()
    assert (death.rank, death.state) == (0, "DEAD")


def test_a_death_the_supervisor_handled_is_not_reported_again():
    watch, table, handles = watch_two()
    table.set(handles[0]._actor_id.hex(), "ALIVE", 1)
    watch.poll()  # seen by the watch while the failed call was being handled
    watch.acknowledge(handles[0])
    assert watch.take() == []
    table.set(handles[0]._actor_id.hex(), "ALIVE", 2)  # a second death, this time between calls
    watch.poll()
    assert [d.restarts for d in watch.take()] == [2]


def test_forgotten_actors_are_not_watched_and_their_deaths_not_reported():
    watch, table, handles = watch_two()
    table.set(handles[1]._actor_id.hex(), "DEAD", 0)
    watch.poll()  # seen, then the group it belongs to is replaced before the driver takes it
    watch.forget(handles)
    table.set(handles[0]._actor_id.hex(), "DEAD", 0)
    watch.poll()
    assert watch.take() == []


def test_the_watch_thread_polls_until_stopped():
    watch, table, handles = watch_two()
    watch.interval_s = 0.01
    watch.start()
    table.set(handles[0]._actor_id.hex(), "ALIVE", 1)
    import time

    deadline = time.monotonic() + 5
    deaths = []
    while not deaths and time.monotonic() < deadline:
        deaths = watch.take()
        time.sleep(0.01)
    watch.stop()
    assert [d.rank for d in deaths] == [0]


def test_seen_dead_names_the_dead_ranks_of_a_role_and_leaves_them_for_take():
    watch, table, handles = watch_two()
    watch.poll()
    assert watch.seen_dead("generator") == []
    table.set(handles[1]._actor_id.hex(), "DEAD", 0)
    watch.poll()
    assert watch.seen_dead("generator") == [1] and watch.seen_dead("learner") == []
    assert [(d.role, d.rank, d.state) for d in watch.take()] == [("generator", 1, "DEAD")]
    assert watch.seen_dead("generator") == []  # taken: handled by the driver from here on
