"""The TRL benchmark's arithmetic (benchmarks/peer_trl.py), by hand: no Ray, no TRL."""

import json

import pytest

from benchmarks.peer_reward import reward, trl_reward
from benchmarks.peer_trl import after_warmup, markdown_table, ratio, tao_overrides, tao_summary


def row(iteration, generate, score, train, sync, eval_s=0.0, checkpoint=5.0):
    return {"iteration": iteration, "samples_kept": 64, "tokens_generated": 3000, "train_reward_mean": 0.3,
            "timing_s": {"generate": generate, "score": score, "train": train, "sync": sync, "eval": eval_s,
                         "checkpoint": checkpoint}}


def test_the_warmup_is_dropped_and_the_rest_medianed():
    assert after_warmup([100.0, 10.0, 30.0, 20.0], warmup=1) == {
        "s_per_step": 20.0, "steps_s": [100.0, 10.0, 30.0, 20.0], "warmup_steps": 1, "measured_steps": 3}
    assert after_warmup([100.0], warmup=1)["s_per_step"] is None


def test_tao_iteration_is_the_stages_trl_also_does_eval_and_checkpoint_apart():
    rows = [{"iteration": 0, "timing_s": {}},  # the base model's evaluation: not an iteration
            row(1, 50.0, 0.1, 90.0, 3.0, eval_s=1.0),
            row(2, 20.0, 0.1, 60.0, 2.0),
            row(3, 22.0, 0.3, 70.0, 4.0, eval_s=2.0)]
    summary = tao_summary(rows, warmup=1)
    assert summary["steps_s"] == pytest.approx([143.1, 82.1, 96.3])
    assert summary["s_per_step"] == pytest.approx((82.1 + 96.3) / 2)
    assert summary["stages_s"] == pytest.approx({"generate": 21.0, "score": 0.2, "train": 65.0, "sync": 3.0})
    assert summary["excluded_steps_s"] == {"eval": [1.0, 0.0, 2.0], "checkpoint": [5.0, 5.0, 5.0]}


def test_ratio_is_trl_over_tao_and_absent_when_a_side_is():
    assert ratio({"s_per_step": 120.0}, {"s_per_step": 60.0}) == 2.0
    assert ratio({"error": ["boom"]}, {"s_per_step": 60.0}) is None
    assert ratio(None, {"s_per_step": 60.0}) is None


def test_table_has_one_row_per_config_and_marks_a_failed_side():
    results = {"fp32-kl0": {"kl_coef": 0.0, "ratio": 2.0,
                            "trl": {"dtype": "float32", "s_per_step": 120.0},
                            "tao_ray": {"dtype": "float32", "s_per_step": 60.0,
                                        "stages_s": {"generate": 20.0, "score": 0.05, "train": 38.0, "sync": 2.0}}},
               "bf16-kl0.02": {"kl_coef": 0.02, "ratio": None, "trl": {"dtype": "bfloat16", "error": ["x"]},
                               "tao_ray": {"dtype": "bfloat16", "s_per_step": 50.0, "stages_s": {}}}}
    lines = markdown_table(results).splitlines()
    assert len(lines) == 4
    assert lines[2] == "| fp32-kl0 | float32 / float32 | 0 | 120.0 | 60.0 | 20.0 | 0.05 | 38.0 | 2.0 | 2.00 |"
    assert lines[3].startswith("| bf16-kl0.02 | bfloat16 / bfloat16 | 0.02 | failed | 50.0 |")


def test_dtype_keys_are_passed_only_when_asked():
    with_knobs = tao_overrides("bfloat16", 0.02, 4, knobs=True)
    assert "training.compute_dtype=bfloat16" in with_knobs and "generation.dtype=bfloat16" in with_knobs
    without = tao_overrides("bfloat16", 0.02, 4, knobs=False)
    assert not any("compute_dtype" in o or o.startswith("generation.dtype") for o in without)
    assert "training.kl_coef=0.02" in without and "run.iterations=4" in without and "eval.every=5" in without


def test_both_sides_score_with_the_same_function():
    constraints = [{"type": "lowercase"}, {"type": "no_commas"}]
    text = "all lowercase, with a comma"
    expected = reward({"constraints": constraints}, text)
    assert expected == 0.5
    assert trl_reward([None, None], [text, [{"role": "assistant", "content": text}]],
                      constraints=[json.dumps(constraints)] * 2) == [expected, expected]
