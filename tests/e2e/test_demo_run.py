"""The demo recipe end to end through the real command: local Ray, 2 vLLM generators, 2 scorers, a DeepSpeed
learner, weight sync, held-out eval, checkpoints, summary.json and offline W&B. Sampling is adaptive, so the
generators call the scorers while they sample; and one step off-policy, so iteration 2's batch is drawn on the base
weights while the learner takes step 1."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.run.chromium import check_report

pytestmark = pytest.mark.e2e


def test_demo_recipe_two_iterations_with_two_generators(tmp_path):
    overrides = ["run.iterations=2", "data.max_heldout_prompts=8", "generation.prompts_per_iteration=4",
                 "generation.max_tokens=32", "generation.kv_cache_gb=0.25", "resources.generators=2",
                 "resources.scorers=2", "resources.learner_cpus=1", "generation.strategy=adaptive",
                 "run.max_staleness=1", f"run.output_dir={tmp_path}"]
    result = subprocess.run([sys.executable, "-m", "tao_ray", "run", "recipes/demo-cpu.yaml", *overrides],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "demo-cpu"
    summary = json.loads((run_dir / "summary.json").read_text())

    assert summary["recipe"] == "recipes/demo-cpu.yaml" and Path(summary["model"]).is_dir()
    assert summary["stopped"] == "completed"
    assert summary["wall_s"] > summary["startup_s"]["actors"] > 0
    assert [row["iteration"] for row in summary["iterations"]] == [0, 1, 2]
    base, *trained = summary["iterations"]
    # The transfer and general sets (8 prompts each here) are answered and scored with the held-out set.
    assert len(base["transfer_scores"]) == 8 and len(base["general_scores"]) == 8
    assert base["length_ratio"] == 1.0 and base["general_delta"] == 0.0 and base["vetoed"] == []
    for row in summary["iterations"]:
        assert 0.0 <= row["general_reward_mean"] <= 1.0 and 0.0 <= row["transfer_reward_mean"] <= 1.0
        assert row["response_tokens_mean"] > 0 and len(row["heldout_response_tokens"]) == 8
    assert trained[-1]["general_vs_base"]["win_rate"] is not None and trained[-1]["length_ratio"] > 0
    assert base["train_reward_mean"] is None and 0.0 <= base["heldout_reward_mean"] <= 1.0
    for row in trained:
        assert 0.0 <= row["train_reward_mean"] <= 1.0 and 0.0 <= row["heldout_reward_mean"] <= 1.0
        assert row["samples_generated"] == 4 * 4  # adaptive moves draws between prompts, never adds any
        assert row["diversity"]["strategy"] == "adaptive" and row["diversity"]["samples_drawn"] == 16
        assert row["scoring"]["reward/constraints"] is not None and row["scoring"]["scoring/failed"] == 0
        assert row["tokens_generated"] > 0 and row["weight_sync_s"] > 0
        assert set(row["timing_s"]) >= {"generate", "score", "train", "sync", "eval"}
        assert all(seconds > 0 for stage, seconds in row["timing_s"].items() if stage != "score")
    # Iteration 1 samples on the base weights; so does iteration 2, drawn while step 1 ran: its rows are one
    # version stale, and the learner reweighted their tokens.
    assert [row["policy_version"]["samples"] for row in trained] == [[0], [0]]
    assert "stale_tokens" not in trained[0]["train"] and trained[1]["train"]["stale_tokens"] > 0
    assert 0 < trained[1]["train"]["importance_weight"] <= 2.0 and trained[1]["sampled_ahead_s"] > 0
    assert set(summary["dtypes"]) == {"weights", "learner_compute", "engine"}
    assert summary["weight_sync"]["path"] == "cpu-inplace-reload"
    assert summary["best_iteration"] in (0, 1, 2)
    best = Path(summary["checkpoint_dir"])
    assert (best / "config.json").is_file() and (best / "tokenizer.json").is_file()
    assert list((run_dir / "wandb").glob("offline-run-*"))
    header = next(line for line in result.stdout.splitlines() if "heldout" in line and "train_s" in line)
    assert header.split()[:6] == ["iter", "heldout", "transfer", "unseen", "len_x", "train"]  # the console table
    # The run ends with its report; the base's and the best's sample answers are saved for its side-by-side table.
    assert (run_dir / "samples" / "iter-0000.jsonl").is_file() and (run_dir / "report.html").is_file()
    check_report(run_dir)  # last: without chromium this skips, after every other check has passed


def test_instructions_run_exports_a_model_that_loads_in_transformers_and_vllm(tmp_path):
    """Train on prompts in IFEval's format (instruction_id_list/kwargs) with the instructions scorer, export the
    checkpoint, load it with transformers, then `tao-ray compare` serves it with vLLM."""
    overrides = ["run.iterations=1", "data.max_heldout_prompts=6", "generation.prompts_per_iteration=4",
                 "generation.max_tokens=24", "generation.kv_cache_gb=0.25", "resources.learner_cpus=1",
                 "logging.wandb=false", "training.lr=1e-4", f"run.output_dir={tmp_path}", "run.name=exp"]
    result = subprocess.run([sys.executable, "-m", "tao_ray", "run", "recipes/instructions-cpu.yaml", *overrides],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trained = json.loads((tmp_path / "exp" / "summary.json").read_text())["iterations"][1]
    assert trained["samples_kept"] > 0 and trained["train"]["loss"] is not None
    assert 0.0 <= trained["scoring"]["reward/instructions"] <= 1.0 and trained["scoring"]["scoring/failed"] == 0
    assert trained["scoring"]["reward/instructions/loose"] >= trained["scoring"]["reward/instructions"]
    out = tmp_path / "exported"
    exported = subprocess.run([sys.executable, "-m", "tao_ray", "export", str(tmp_path / "exp"), "--out", str(out),
                               "--iteration", "1"], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 30 and AutoTokenizer.from_pretrained(out).chat_template

    compared = subprocess.run([sys.executable, "-m", "tao_ray", "compare", str(out), "demo", "--run",
                               str(tmp_path / "exp")], capture_output=True, text=True, timeout=900)
    assert compared.returncode == 0, compared.stdout[-3000:] + compared.stderr[-3000:]
    report = json.loads(next(line for line in reversed(compared.stdout.splitlines())
                             if line.startswith('{"model_a"')))
    assert report["prompts"] == 6 and report["scored_pairs"] == 6
    low, high = report["ci95"]
    assert 0.0 <= low <= report["win_rate_a_over_b"] <= high <= 1.0
