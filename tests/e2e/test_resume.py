"""A run killed with SIGKILL in the middle of an iteration resumes from its last complete checkpoint, draws the
same prompt batches an uninterrupted run would, and loses no completed iteration from summary.json; the settings
changed on resume are applied and recorded."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tao_ray.data.order import PromptOrder
from tao_ray.data.prompts import load_prompts

pytestmark = pytest.mark.e2e

OVERRIDES = ["run.iterations=3", "data.max_heldout_prompts=4", "generation.prompts_per_iteration=4",
             "generation.max_tokens=24", "generation.kv_cache_gb=0.25", "resources.learner_cpus=1",
             "logging.wandb=false", "run.keep_checkpoints=2", "data.transfer_prompts=''", "data.general_prompts=''",
             "run.checkpoint_every=1"]


def command(tmp_path, *extra):
    return [sys.executable, "-m", "tao_ray", "run", "recipes/demo-cpu.yaml", *OVERRIDES,
            f"run.output_dir={tmp_path}", *extra]


def test_sigkill_mid_iteration_then_resume(tmp_path):
    run = subprocess.Popen(command(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)  # its own process group: the kill takes local Ray down with it
    seen = []
    for line in run.stdout:
        seen.append(line)
        # Checkpoints are written in the background: iteration 1's is complete (renamed into place) while iteration
        # 2 runs, which is then killed half done.
        if "checkpoint iter-0001 complete" in line:
            break
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=60)
    run_dir = tmp_path / "demo-cpu"
    killed = json.loads((run_dir / "summary.json").read_text())
    assert [row["iteration"] for row in killed["iterations"]] == [0, 1], "".join(seen[-20:])

    # A changed learning rate and retention are applied: the lr on the restored optimizer, which the checkpoint
    # would otherwise set back to the old one.
    resumed = subprocess.run(command(tmp_path, "--resume", "training.lr=1e-5", "run.keep_checkpoints=3"),
                             capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "run.keep_checkpoints 2 -> 3" in resumed.stdout and "training.lr 2e-05 -> 1e-05" in resumed.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [row["iteration"] for row in summary["iterations"]] == [0, 1, 2, 3]
    assert summary["resumed_from"] == [1]
    assert summary["resume_changes"] == [{"iteration": 1, "applied": {"run.keep_checkpoints": [2, 3]},
                                          "optimizer": {"training.lr": [2e-5, 1e-5]}}]
    assert summary["config"]["training"]["lr"] == 1e-5
    assert summary["iterations"][:2] == killed["iterations"]  # completed iterations are kept as they were

    train = load_prompts("prompts/demo/train.jsonl")
    order = PromptOrder(len(train), seed=0)
    uninterrupted = [[train[i].id for i in order.next_batch(4)] for _ in range(3)]
    assert [row["prompt_ids"] for row in summary["iterations"][1:]] == uninterrupted
    assert summary["stopped"] == "completed"
