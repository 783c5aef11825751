"""The README's cluster path on a real multi-node Ray cluster (three raylets on this machine, token authentication):
`cluster/submit.sh` -> `ray job submit --working-dir .` -> `python -m tao_ray run` with the actors spread over the
nodes and the outputs in an absolute run.output_dir, through the loss of a node and then of a second one; and
`ray job submit -- tao-ray ingest` embedding on several nodes."""

import json
import time
from pathlib import Path

import pytest

from .cluster import LocalCluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def nodes():
    cluster = LocalCluster(nodes=3, cpus_per_node=2)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


TINY = ["run.iterations=1", "data.max_heldout_prompts=4", "generation.prompts_per_iteration=4",
        "generation.max_tokens=16", "generation.kv_cache_gb=0.25", "logging.wandb=false"]


def test_a_run_the_cluster_cannot_place_stops_with_one_line(nodes, tmp_path):
    result = nodes.submit("recipes/demo-cpu.yaml", *TINY, "resources.learner_cpus=3",
                              "resources.startup_timeout_s=5", f"run.output_dir={tmp_path}")
    assert result.returncode != 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("tao-ray: error:"))
    assert "learner x1 asks 3 CPU each" in line and "generator x1 asks 1 CPU each" in line
    assert "the cluster has 6 CPU free, on 3 node(s) of: 2 CPU; 2 CPU; 2 CPU" in line
    assert "Traceback" not in result.stdout


def test_a_relative_output_dir_in_a_ray_job_is_refused_before_any_actor_starts(nodes):
    result = nodes.submit("recipes/demo-cpu.yaml", *TINY, "run.output_dir=runs")
    line = next(line for line in result.stdout.splitlines() if line.startswith("tao-ray: error:"))
    assert "run.output_dir" in line and "absolute path" in line
    assert "starting" not in result.stdout and "Traceback" not in result.stdout


def wait_for_summary(path: Path, ready, job: str, nodes: LocalCluster, timeout_s: float = 900) -> dict:
    """summary.json once ready(summary) holds (the run flushes it after every iteration)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            summary = json.loads(path.read_text())
            if ready(summary):
                return summary
        except (OSError, ValueError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{path} never got there; the job's log: {nodes.submit('--follow', job).stdout[-4000:]}")


def node_lost(summary: dict) -> list[dict]:
    return [dict(r, role=role) for role, entries in summary["restarts"].items() for r in entries
            if r["cause"] == "node_lost"]


def test_a_spread_run_survives_a_lost_node_and_resumes_after_losing_a_second(nodes, tmp_path):
    # 2 CPUs per node, spread: the learner (2 CPUs) on a node of its own, the generator, the scorer and the general
    # set's scorer over the other two as Ray places them.
    out = tmp_path / "shared"
    recipe = ("recipes/demo-cpu.yaml", *TINY, "run.iterations=4", "run.checkpoint_every=1",
              "resources.placement=spread", "resources.startup_timeout_s=60", f"run.output_dir={out}",
              "training.lr=1e-4", "run.name=lost-node")
    job = nodes.submit("--no-wait", *recipe).stdout.strip()
    summary_path = out / "lost-node" / "summary.json"
    # The base model's row is logged: iteration 1 is under way.
    summary = wait_for_summary(summary_path, lambda s: len(s["iterations"]) >= 1, job, nodes)
    where = {(a["role"], a["rank"]): a["node_id"] for a in summary["actors"]}
    assert len(set(where.values())) == 3, where
    head = nodes.head_node_id()
    # A node without the learner, the generator's where it can be: the survivors have room for what it held.
    candidates = sorted(node for node in set(where.values()) if node not in (head, where[("learner", 0)]))
    first = where[("generator", 0)] if where[("generator", 0)] in candidates else candidates[0]
    taken = sorted(role for (role, _), node in where.items() if node == first)
    killed_at = time.monotonic()
    assert nodes.kill_node(first) >= 2  # the raylet and at least the actor's worker

    # It goes on: what the node held restarts on a survivor, refitted, and iteration 1 is logged. Each loss is
    # recorded when the role is next called or seen restarting (the general set's scorer only at an evaluation).
    summary = wait_for_summary(summary_path, lambda s: len(s["iterations"]) >= 2
                               and sorted(r["role"] for r in node_lost(s)) == taken, job, nodes)
    lost = node_lost(summary)
    assert {r["node_id"] for r in lost} == {first}, lost
    assert all(r["restart_s"] > 0 and r["detect_s"] >= 0 for r in lost)
    print(f"node lost: {taken} back after {time.monotonic() - killed_at:.0f}s: {lost}")

    # A second node goes, and nothing has room for what it held: one line, naming it, with the resume command. It
    # may hold the learner, whose checkpoints are written in the background and completed an iteration later: it
    # goes once a checkpoint is complete, which the resume then starts from.
    checkpoints = out / "lost-node" / "checkpoints"
    wait_for_summary(summary_path, lambda s: any(checkpoints.glob("iter-*/model/config.json")), job, nodes)
    second = next(node for node in nodes._raylets() if node != head)
    nodes.kill_node(second)
    followed = nodes.submit("--follow", job)
    line = next((line for line in followed.stdout.splitlines() if line.startswith("tao-ray: error:")), None)
    assert followed.returncode != 0 and line is not None, followed.stdout[-5000:] + followed.stderr[-2000:]
    assert f"node {second}" in line and "left the cluster" in line and "--resume" in line, line
    assert "Traceback" not in followed.stdout.split("tao-ray: error:")[-1]
    assert list(checkpoints.glob("iter-*/model/config.json")), "no complete checkpoint left"
    assert json.loads(summary_path.read_text())["stopped"].startswith(f"error: node {second}")

    # A healthy cluster again (a node joins): --resume finishes the run.
    nodes.add_node()
    resumed = nodes.submit(*recipe, "--resume")
    assert resumed.returncode == 0 and "succeeded" in resumed.stdout, resumed.stdout[-4000:]
    summary = json.loads(summary_path.read_text())
    assert summary["stopped"] == "completed" and [r["iteration"] for r in summary["iterations"]] == [0, 1, 2, 3, 4]
    assert node_lost(summary)
    assert not list(nodes.root.rglob("summary.json")), "a summary landed under Ray's temporary directory"
    base, trained = (row["served_weights"] for row in summary["iterations"][:2])
    assert None not in base + trained and trained != base, "the generator serves the same weights after the sync"
    assert Path(summary["model"]).is_absolute()


def test_ingest_as_a_ray_job_embeds_on_several_nodes(nodes, tmp_path):
    subjects = ["a lighthouse", "sourdough bread", "a chess opening", "tide pools", "a bicycle gear", "owls",
                "glaciers", "a jazz trio", "paper money", "honeybees", "a suspension bridge", "volcanoes"]
    asks = ["Explain to a child how {} works.", "Write a limerick about {}.", "List three surprising facts about {}.",
            "Describe {} to someone who has never seen one.", "What is the history of {}?"]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"prompt": f"{ask.format(s)} Keep it under {n} words."}) + "\n"
                           for n in (40, 90) for ask in asks for s in subjects))  # 120 prompts
    store = tmp_path / "store"
    result = nodes.job("tao-ray", "ingest", str(log), "--store", str(store), "--embed-batch", "10")
    assert result.returncode == 0 and "succeeded" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
    manifest = json.loads((store / "versions" / "v0001" / "manifest.json").read_text())
    assert len(manifest["embedded_on"]) >= 2, manifest["embedded_on"]  # one actor per node: several node ids
    assert sum(manifest["embedded_on"].values()) == 120 and "embedded on" in result.stdout
