"""The README's cluster path on a real 2-node Ray cluster (two raylets on this machine, token authentication):
`cluster/submit.sh` -> `ray job submit --working-dir .` -> `python -m tao_ray run` with the actors spread over the
nodes and the outputs in an absolute run.output_dir; and `ray job submit -- tao-ray ingest` embedding on both nodes."""

import json
from pathlib import Path

import pytest

from .cluster import LocalCluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_nodes():
    cluster = LocalCluster(nodes=2, cpus_per_node=2)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


TINY = ["run.iterations=1", "data.max_heldout_prompts=4", "generation.prompts_per_iteration=4",
        "generation.max_tokens=16", "generation.kv_cache_gb=0.25", "logging.wandb=false"]


def test_a_run_the_cluster_cannot_place_stops_with_one_line(two_nodes, tmp_path):
    result = two_nodes.submit("recipes/demo-cpu.yaml", *TINY, "resources.learner_cpus=3",
                              "resources.startup_timeout_s=5", f"run.output_dir={tmp_path}")
    assert result.returncode != 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("tao-ray: error:"))
    assert "learner x1 asks 3 CPU each" in line and "generator x1 asks 1 CPU each" in line
    assert "the cluster has 4 CPU free, on 2 node(s) of: 2 CPU; 2 CPU" in line
    assert "Traceback" not in result.stdout


def test_a_relative_output_dir_in_a_ray_job_is_refused_before_any_actor_starts(two_nodes):
    result = two_nodes.submit("recipes/demo-cpu.yaml", *TINY, "run.output_dir=runs")
    line = next(line for line in result.stdout.splitlines() if line.startswith("tao-ray: error:"))
    assert "run.output_dir" in line and "absolute path" in line
    assert "starting" not in result.stdout and "Traceback" not in result.stdout


def test_ray_job_submit_spreads_the_run_over_two_nodes(two_nodes, tmp_path):
    # 2 CPUs per node: the learner (2 CPUs) fills one node, so the generator and scorer must go to the other. This
    # is the layout that used to hang with the learner pending forever.
    out = tmp_path / "shared"
    result = two_nodes.submit(
        "recipes/demo-cpu.yaml", *TINY, "resources.placement=spread", "resources.startup_timeout_s=120",
        f"run.output_dir={out}", "training.lr=1e-4", "run.name=two-nodes")
    log = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0 and "succeeded" in result.stdout, log

    run_dir = out / "two-nodes"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped"] == "completed" and [r["iteration"] for r in summary["iterations"]] == [0, 1]
    assert list(run_dir.glob("checkpoints/iter-*/model/config.json")), "no checkpoint model in the output dir"
    assert not list(two_nodes.root.rglob("summary.json")), "a summary landed under Ray's temporary directory"

    where = {(a["role"], a["rank"]): a["node_id"] for a in summary["actors"]}
    assert len(set(where.values())) == 2
    assert where[("generator", 0)] != where[("learner", 0)]

    base, trained = (row["served_weights"] for row in summary["iterations"])
    assert None not in base + trained and trained != base, "the generator serves the same weights after the sync"
    assert Path(summary["model"]).is_absolute()


def test_ingest_as_a_ray_job_embeds_on_both_nodes(two_nodes, tmp_path):
    subjects = ["a lighthouse", "sourdough bread", "a chess opening", "tide pools", "a bicycle gear", "owls",
                "glaciers", "a jazz trio", "paper money", "honeybees", "a suspension bridge", "volcanoes"]
    asks = ["Explain to a child how {} works.", "Write a limerick about {}.", "List three surprising facts about {}.",
            "Describe {} to someone who has never seen one.", "What is the history of {}?"]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"prompt": f"{ask.format(s)} Keep it under {n} words."}) + "\n"
                           for n in (40, 90) for ask in asks for s in subjects))  # 120 prompts
    store = tmp_path / "store"
    result = two_nodes.job("tao-ray", "ingest", str(log), "--store", str(store), "--embed-batch", "10")
    assert result.returncode == 0 and "succeeded" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
    manifest = json.loads((store / "versions" / "v0001" / "manifest.json").read_text())
    assert len(manifest["embedded_on"]) == 2, manifest["embedded_on"]  # the two raylets' node ids
    assert sum(manifest["embedded_on"].values()) == 120 and "embedded on 2 nodes" in result.stdout
