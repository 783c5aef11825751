"""What W&B and the console get from a summary row, by hand."""

import pytest

from tao_ray.run.tracking import estimate_eta, format_duration, wandb_metrics

ROW = {"iteration": 2, "heldout_reward_mean": 0.4, "train_reward_mean": 0.3, "samples_kept": 48,
       "samples_generated": 64, "tokens_generated": 3000, "tokens_per_s": 150.0, "weight_sync_s": 2.5,
       "weight_receive_s": 2.0, "heldout_vs_base": {"win_rate": 0.6, "ci95_low": 0.5, "ci95_high": 0.7,
                                                     "mean_diff": 0.1},
       "heldout_scoring": {"scoring/failed": 0, "scoring/failure_reasons": []},
       "scoring": {"reward/constraints": 0.3, "scoring/failed": 1, "scoring/failure_reasons": ["x"]},
       "train": {"loss": 0.1, "kl": 0.01, "grad_norm": None, "tokens": 2000.0, "seconds": 40.0},
       "diversity": {"strategy": "iid", "signal_fraction": 0.75},
       "timing_s": {"generate": 20.0, "train": 40.0}, "prompt_ids": ["a"], "served_weights": [1.0]}


def test_rows_become_namespaced_metrics_without_text_or_nulls():
    metrics = wandb_metrics(ROW)
    assert metrics == {
        "eval/heldout_reward": 0.4, "eval/win_rate_vs_base": 0.6, "eval/win_rate_ci95_low": 0.5,
        "eval/win_rate_ci95_high": 0.7, "eval/mean_diff_vs_base": 0.1, "eval/scoring_failed": 0,
        "reward/mean": 0.3, "reward/constraints": 0.3, "reward/failed": 1,
        "train/loss": 0.1, "train/kl": 0.01, "train/tokens": 2000.0, "train/seconds": 40.0,
        "train/samples_kept": 48, "train/samples_generated": 64, "diversity/signal_fraction": 0.75,
        "timing_s/generate": 20.0, "timing_s/train": 40.0, "perf/tokens_generated": 3000,
        "perf/generate_tokens_per_s": 150.0, "perf/learner_tokens_per_s": 50.0, "sync/seconds": 2.5,
        "sync/receive_seconds": 2.0}


def test_an_unmeasured_evaluation_is_left_out_not_zero():
    assert "eval/heldout_reward" not in wandb_metrics({"iteration": 1, "heldout_reward_mean": None})


def test_eta_is_what_is_left_of_this_iteration_plus_the_rest():
    assert estimate_eta([], 1, 6, 5.0) is None
    # 2 iterations of 60 s done; 20 s into iteration 3 of 6: 40 s of this one + 3 more.
    assert estimate_eta([50.0, 70.0], 3, 6, 20.0) == pytest.approx(40.0 + 180.0)
    assert estimate_eta([60.0], 6, 6, 90.0) == 0.0
    assert format_duration(220) == "3m40s" and format_duration(3 * 3600 + 125) == "3h02m"
