"""`tao-ray report` on a hand-built run directory whose summary.json has the rows the driver writes: the page and
every plot are written, null values and missing sample files are shown as such, and the page renders in headless
Chromium (skipped where there is none)."""

import json
import subprocess
import sys

import pytest

from tao_ray.data.prompts import PromptRecord
from tao_ray.run import report, report_plots
from tests.run.chromium import check_report

PLOTS = ["heldout.png", "behaviours.png", "length_ratio.png", "train_reward.png", "diversity.png",
         "response_length.png", "time_breakdown.png", "throughput.png", "weight_sync.png"]


def row(iteration: int, heldout: float | None) -> dict:
    """One summary row as TaoDriver.log_iteration writes it (iteration 0: the base model, nothing trained)."""
    base = {"iteration": iteration, "heldout_reward_mean": heldout, "train_reward_mean": None,
            "timing_s": {"generate": 0.0, "score": 0.0, "train": 0.0, "sync": 0.0, "eval": 0.0, "checkpoint": 0.0},
            "tokens_generated": 0, "weight_sync_s": 0.0, "served_weights": [12.5, 12.5],
            "heldout_scores": [heldout, 0.5, None], "heldout_scoring": {"scoring/failed": 1},
            "length_ratio": 1.0 - 0.1 * iteration,
            "by_type": {"heldout": {"max_words": {"rate": 0.5 + 0.1 * iteration, "n": 10},
                                    "min_words": {"rate": 0.6 - 0.1 * iteration, "n": 8}}}}
    if iteration == 0:
        return base
    return {**base, "timing_s": {"generate": 20.0 + iteration, "score": 1.5, "train": 30.0, "sync": 4.0 + iteration,
                                 "eval": 12.0, "checkpoint": 3.0},
            "train_reward_mean": 0.3 + 0.05 * iteration, "samples_generated": 16, "samples_kept": 12,
            "scoring_failed": 0, "tokens_generated": 900 + 40 * iteration, "tokens_per_s": 45.0 - iteration,
            "weight_sync_s": 4.0 + iteration, "weight_receive_s": [1.2, 1.3],
            "train": {"loss": 0.12, "grad_norm": 0.8, "kl": 0.01}, "scoring": {"reward/constraints": 0.4},
            "prompt_ids": ["t1", "t2", "t3", "t4"], "prompt_order": {"epoch": 0, "position": 4 * iteration},
            "diversity": {"strategy": "adaptive", "distinct_1": 0.6, "distinct_2": 0.8 - 0.05 * iteration,
                          "mean_pairwise_distance": 0.4, "mean_pairwise_jaccard": 0.5,
                          "signal_fraction": 0.75 - 0.25 * (iteration == 2), "unique_score_fraction": 0.5,
                          "samples_drawn": 16, "samples_kept": 16, "tokens_spent": 900,
                          "tokens_per_signal_group": 300.0},
            "heldout_vs_base": None if heldout is None else {"win_rate": 0.5 + 0.1 * iteration,
                                                             "ci95_low": 0.3, "ci95_high": 0.9, "mean_diff": 0.05}}


def make_run(run_dir, heldout=(0.27, 0.31, None, 0.35), samples=True):
    rows = [row(i, h) for i, h in enumerate(heldout)]
    summary = {"recipe": "recipes/demo-cpu.yaml", "run_name": "demo-cpu", "model": "/models/SmolLM2-135M-Instruct",
               "config": {"training": {"algorithm": "grpo"}, "scoring": {"reward": "constraints"}},
               "hardware": {"platform": "Linux-6.1-x86_64", "python": "3.12.3", "cpus": 2, "torch": "2.13.0+cpu",
                            "cuda_devices": 0},
               "iterations": rows, "best_iteration": 3, "best_heldout_reward": 0.35,
               "checkpoint_dir": str(run_dir / "checkpoints/iter-0003/model"), "stopped": "completed",
               "actors": [{"role": "generator", "rank": 0, "node_id": "a" * 56, "node_ip": "10.0.0.1"},
                          {"role": "learner", "rank": 0, "node_id": "b" * 56, "node_ip": "10.0.0.2"}],
               "startup_s": {"actors": 30.0, "engine": 20.0}, "weight_sync": {"path": "cpu-inplace-reload"}}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    if samples:
        prompts = [PromptRecord(id=f"h{k}", messages=({"role": "user", "content": f"Write <{k}> in lowercase."},))
                   for k in range(7)]
        for iteration in (0, 3):
            report.save_samples(run_dir, iteration, prompts, [f"answer {k} at {iteration} & more" for k in range(7)],
                                [0.5] * 7)
    return run_dir


def test_save_samples_keeps_the_first_prompts_with_their_scores(tmp_path):
    prompts = [PromptRecord(id=f"p{k}", messages=({"role": "system", "content": "be brief"},
                                                   {"role": "user", "content": f"q{k}"})) for k in range(8)]
    path = report.save_samples(tmp_path, 2, prompts, [f"a{k}" for k in range(8)], [0.1 * k for k in range(8)])
    assert path == tmp_path / "samples" / "iter-0002.jsonl"
    saved = report.load_samples(tmp_path, 2)
    assert len(saved) == report.SAMPLE_PROMPTS
    assert saved[1] == {"prompt_id": "p1", "prompt": "q1", "answer": "a1", "score": 0.1}
    assert report.load_samples(tmp_path, 0) is None  # never saved: None, not an error


def test_report_writes_the_page_and_every_plot(tmp_path):
    run_dir = make_run(tmp_path / "demo-cpu")
    page = report.write_report(run_dir)
    assert page == run_dir / "report.html"
    for name in PLOTS:
        assert (run_dir / "report" / name).stat().st_size > 1000
    text = page.read_text()
    assert "<title>tao-ray report: demo-cpu</title>" in text and "recipes/demo-cpu.yaml" in text
    assert all(f'src="report/{name}"' in text for name in PLOTS)  # relative: the folder can move as a whole
    assert "best (iteration 3)" in text and "answer 2 at 3 &amp; more" in text  # side by side, escaped
    assert "answer 6 at" not in text  # only the first SAMPLE_PROMPTS were saved
    assert "0.80 [0.30, 0.90]" in text and "0.70 [" not in text  # iteration 2 was not measured
    assert "10.0.0.2" in text and "cpu-inplace-reload" in text


def test_report_of_an_older_run_without_samples_or_measurements(tmp_path):
    """Samples missing, no held-out evaluation ever measured, only the base row plus one iteration."""
    run_dir = make_run(tmp_path / "old", heldout=(None, None), samples=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(best_iteration=None, best_heldout_reward=None, stopped="running")
    for key in ("actors", "config", "startup_s"):
        del summary[key]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    text = report.write_report(run_dir).read_text()
    assert "No sample answers were saved" in text and "none measured" in text
    assert all((run_dir / "report" / name).is_file() for name in PLOTS)


def test_cli_report_names_the_missing_file(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tao_ray", "report", str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"tao-ray: error: {tmp_path}: no summary.json; report takes a tao-ray run "
                                     "directory (runs/<name>)")
    (tmp_path / "summary.json").write_text('{"iterations": [')
    result = subprocess.run([sys.executable, "-m", "tao_ray", "report", str(tmp_path)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and f"{tmp_path / 'summary.json'}: not valid JSON" in result.stderr


def test_cli_report_prints_the_page(tmp_path):
    run_dir = make_run(tmp_path / "demo-cpu")
    result = subprocess.run([sys.executable, "-m", "tao_ray", "report", str(run_dir)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(run_dir / "report.html")


@pytest.mark.parametrize("samples", [True, False])
def test_report_renders_in_headless_chromium(tmp_path, samples):
    run_dir = make_run(tmp_path / "demo-cpu", samples=samples)
    report.write_report(run_dir)
    check_report(run_dir)


def test_behaviour_changes_are_against_the_base_model_and_skip_unmeasured_iterations():
    rows = [row(i, h) for i, h in enumerate((0.27, 0.31, 0.33))]
    del rows[1]["by_type"]  # an iteration without an evaluation
    labels, iterations, changes = report_plots.behaviour_changes(rows)
    assert labels == ["heldout: max_words", "heldout: min_words"]
    assert iterations == [0, 2]
    assert changes == [[0.0, pytest.approx(0.2)], [0.0, pytest.approx(-0.2)]]
