"""A reward model trained by `tao-ray train-rm` scores a real run: train on separable preference pairs (on-topic vs
off-topic answers), check held-out pairwise accuracy, then drive a 1-iteration run with it, sampled with the
conditioned strategy, and audited by the constraint verifier."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_train_rm_then_run_with_the_reward_model_and_conditioned_sampling(tmp_path):
    rm_dir = tmp_path / "topic-rm"
    trained = subprocess.run([sys.executable, "-m", "tao_ray", "train-rm", "prompts/preferences/topic-pairs.jsonl",
                              "--out", str(rm_dir), "--epochs", "1", "--lr", "2e-5", "--max-length", "128"],
                             capture_output=True, text=True, timeout=1200)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    report = json.loads(next(line for line in reversed(trained.stdout.splitlines()) if line.startswith("{")))
    assert report["heldout_pairs"] == 24 and report["heldout_accuracy"] >= 0.8
    assert (rm_dir / "config.json").is_file() and (rm_dir / "train_rm_report.json").is_file()

    from tao_ray.rewards.reward_model import RewardModel

    model = RewardModel(str(rm_dir))
    record = {"messages": [{"role": "user", "content": "Tell me about owls."}]}
    on_topic, off_topic = model.score([record, record], ["Owls are nocturnal birds of prey with silent wings.",
                                                         "Pizza is a flat bread baked with cheese."])
    assert on_topic > off_topic

    overrides = ["run.iterations=1", "data.max_heldout_prompts=6", "generation.prompts_per_iteration=4",
                 "data.transfer_prompts=''", "data.general_prompts=''",
                 "generation.samples_per_prompt=3", "generation.max_tokens=32", "generation.kv_cache_gb=0.25",
                 "generation.strategy=conditioned", "scoring.reward=reward_model",
                 f"scoring.reward_model.path={rm_dir}", "scoring.normalize=group", "eval.reward=constraints",
                 "resources.learner_cpus=1", "logging.wandb=false", f"run.output_dir={tmp_path}", "run.name=rm"]
    result = subprocess.run([sys.executable, "-m", "tao_ray", "run", "recipes/demo-cpu.yaml", *overrides],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    assert summary["stopped"] == "completed" and len(summary["iterations"]) == 2
    for row in summary["iterations"][1:]:
        diversity = row["diversity"]
        assert diversity["strategy"] == "conditioned"
        assert diversity["samples_kept"] <= diversity["samples_drawn"] <= 4 * 3 * 2
        assert 0.0 <= diversity["signal_fraction"] <= 1.0 and diversity["mean_pairwise_distance"] > 0
        assert {"distinct_1", "distinct_2", "unique_score_fraction", "tokens_per_signal_group"} <= set(diversity)
        assert row["scoring"]["reward/reward_model"] is not None and row["scoring"]["scoring/failed"] == 0
        assert 0.0 <= row["heldout_reward_mean"] <= 1.0  # the audit: constraint verifier, raw scores
        assert set(row["heldout_scoring"]) >= {"reward/constraints", "scoring/failed"}
