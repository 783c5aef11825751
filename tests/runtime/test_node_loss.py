"""What the supervisor makes of a node that left the cluster (runtime/supervision.py), with Ray's node table stood
in: the record of each actor it took, where that actor runs now, and the line that stops a run nothing can host."""

import pytest

from tao_ray.config import load_recipe
from tao_ray.runtime import supervision


class Lines:
    def __init__(self):
        self.lines = []

    def stage(self, message):
        self.lines.append(message)


def home(role, rank, node, ip):
    return {"role": role, "rank": rank, "node_id": node, "node_ip": ip}


@pytest.fixture
def supervisor(monkeypatch):
    # Node "a" left; "b" and "c" are alive, and the generator's bundle moved from "a" to "c".
    monkeypatch.setattr(supervision.ray, "nodes", lambda: [{"NodeID": "a", "Alive": False},
                                                           {"NodeID": "b", "Alive": True},
                                                           {"NodeID": "c", "Alive": True}])
    watched = supervision.Supervisor(load_recipe("recipes/demo-cpu.yaml"), Lines(), {})
    watched.homes = {("generator", 0): home("generator", 0, "a", "10.0.0.1"),
                     ("scorer", 0): home("scorer", 0, "a", "10.0.0.1"),
                     ("learner", 0): home("learner", 0, "b", "10.0.0.2")}
    watched.locate = lambda: [home("generator", 0, "c", "10.0.0.3"), home("scorer", 0, "a", "10.0.0.1"),
                              home("learner", 0, "b", "10.0.0.2")]
    watched.iteration = 4
    watched.resume_hint = "continue with: tao-ray run r.yaml --resume"
    return watched


def test_an_actor_lost_with_its_node_is_recorded_as_node_lost_and_found_where_it_runs_now(supervisor):
    supervisor.record("generator", 0, "died (ActorUnavailableError)", 2.0, 30.0, 1.5)
    [entry] = supervisor.restarts["generator"]
    assert entry == {"rank": 0, "iteration": 4, "cause": "node_lost", "detect_s": 2.0, "restart_s": 30.0,
                     "refit_s": 1.5, "node_id": "a", "node_ip": "10.0.0.1", "failure": "died (ActorUnavailableError)"}
    assert supervisor.homes[("generator", 0)]["node_id"] == "c" and supervisor.lost_node("generator", 0) is None
    assert "generator 0 lost with node a (10.0.0.1): restarted in 30.0s on 10.0.0.3" in supervisor.tracker.lines[0]


def test_a_death_on_a_live_node_keeps_its_own_cause(supervisor):
    supervisor.record("learner", 0, "died (ActorDiedError)", 1.0, 20.0, 0.0)
    assert supervisor.restarts["learner"][0]["cause"] == "died (ActorDiedError)"
    assert "node_id" not in supervisor.restarts["learner"][0]


def test_the_stop_line_names_the_node_everything_it_took_and_the_resume_command(supervisor):
    supervisor.record("generator", 0, "died", 2.0, 30.0, 1.5)  # re-placed; the scorer is not
    line = supervisor.node_lost_message(supervisor.lost_node("scorer", 0), "scorer", 0)
    assert line == ("node a (10.0.0.1) left the cluster in iteration 4, taking generator 0, scorer 0; no node had "
                    "room for scorer 0 within resources.startup_timeout_s (600s); continue with: tao-ray run "
                    "r.yaml --resume")
