"""The compute-budget benchmark's arithmetic (benchmarks/compute_budget.py), by hand: no Ray, no vLLM."""

import pytest

from benchmarks.compute_budget import curve, markdown_table, pareto_front, plot, run_overrides


def row(iteration, tokens, heldout, transfer=None, general=None, **timing):
    return {"iteration": iteration, "tokens_generated": tokens, "heldout_reward_mean": heldout,
            "transfer_reward_mean": transfer, "general_reward_mean": general,
            "timing_s": {"generate": 0.0, "train": 0.0, "eval": 0.0, **timing}}


def summary():
    # Rows out of order on purpose: the curve follows the iteration numbers.
    return {"iterations": [row(2, 1500, 0.40, 0.31, 0.5, generate=10.0, train=30.0, eval=5.0),
                           row(0, 0, 0.25, 0.20, 0.5, eval=6.0),
                           row(1, 1000, 0.30, 0.25, 0.45, generate=12.0, train=40.0, eval=5.5)]}


def test_curve_accumulates_tokens_and_loop_seconds_per_iteration():
    points = curve(summary(), samples_per_prompt=4)
    assert [p["iteration"] for p in points] == [0, 1, 2]
    assert [p["tokens"] for p in points] == [0, 1000, 2500]
    assert [p["tokens_iteration"] for p in points] == [0, 1000, 1500]
    assert [p["wall_s"] for p in points] == pytest.approx([6.0, 63.5, 108.5])
    assert [p["heldout_reward"] for p in points] == [0.25, 0.30, 0.40]
    assert [p["transfer_reward"] for p in points] == [0.20, 0.25, 0.31]
    assert [p["general_reward"] for p in points] == [0.5, 0.45, 0.5]
    assert {p["samples_per_prompt"] for p in points} == {4}


def test_curve_of_a_recipe_without_transfer_or_general_sets_and_an_unmeasured_iteration():
    rows = [{"iteration": 0, "tokens_generated": 0, "heldout_reward_mean": 0.2, "timing_s": {"eval": 3.0}},
            {"iteration": 1, "tokens_generated": 800, "heldout_reward_mean": None, "timing_s": {"train": 20.0}},
            {"iteration": 2, "tokens_generated": 700, "timing_s": None}]  # an older row: no reward key, no timing
    points = curve({"iterations": rows}, 2)
    assert [p["tokens"] for p in points] == [0, 800, 1500]
    assert [p["heldout_reward"] for p in points] == [0.2, None, None]
    assert points[0]["transfer_reward"] is None and points[0]["general_reward"] is None
    assert [p["wall_s"] for p in points] == [3.0, 23.0, 23.0]
    assert curve({}, 2) == []


def point(spp, iteration, tokens, reward):
    return {"samples_per_prompt": spp, "iteration": iteration, "tokens": tokens, "heldout_reward": reward}


def test_pareto_front_keeps_only_undominated_points_by_increasing_tokens():
    points = [point(2, 0, 0, 0.25), point(4, 0, 0, 0.27),  # two base evaluations: the better one stays
              point(2, 1, 500, 0.26),  # fewer tokens than 4/1 but beaten by the free base point's 0.27
              point(2, 2, 1000, 0.33), point(4, 1, 1000, 0.30),  # same tokens: the higher reward
              point(8, 1, 2000, 0.33),  # no better than 2/2 at twice the tokens: dominated
              point(4, 2, 2000, 0.38), point(8, 2, 4000, None),  # unmeasured: never on the front
              point(8, 3, 6000, 0.41)]
    front = pareto_front(points)
    assert [(p["samples_per_prompt"], p["iteration"]) for p in front] == [(4, 0), (2, 2), (4, 2), (8, 3)]
    assert pareto_front([]) == []
    # Identical points: the first is kept, once.
    assert pareto_front([point(2, 1, 10, 0.5), point(4, 1, 10, 0.5)]) == [point(2, 1, 10, 0.5)]


def test_every_grid_point_runs_with_its_samples_a_name_and_eval_every_iteration(tmp_path):
    overrides = run_overrides(8, 4, tmp_path, ["data.max_heldout_prompts=4"])
    assert "generation.samples_per_prompt=8" in overrides and "run.iterations=4" in overrides
    assert "eval.every=1" in overrides and "logging.wandb=false" in overrides
    assert f"run.output_dir={tmp_path}" in overrides and "run.name=budget-spp8" in overrides
    # The extra overrides come after the defaults, so they win.
    assert overrides.index("data.max_heldout_prompts=4") > overrides.index("data.max_heldout_prompts=30")


def test_table_has_a_row_per_point_and_marks_the_front():
    points = curve(summary(), 4)
    front = pareto_front(points)
    lines = markdown_table(points, front).splitlines()
    assert len(lines) == 5
    assert lines[2] == "| 4 | 0 | 0 | 0.250 | 0.200 | 0.500 | 6 | * |"
    assert lines[4] == "| 4 | 2 | 2500 | 0.400 | 0.310 | 0.500 | 108 | * |"


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    points = curve(summary(), 4)
    path = tmp_path / "budget.png"
    assert plot(path, {4: points, 8: []}, pareto_front(points))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
