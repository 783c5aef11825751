"""User mistakes end in one line on stderr and exit status 2, before Ray or any actor starts."""

import subprocess
import sys

import pytest


def tao_ray(*args, env_extra=None):
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "tao_ray", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_override_key():
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "no_such.key=1"), "no_such")


def test_malformed_prompt_line_names_file_and_line(tmp_path):
    prompts = tmp_path / "train.jsonl"
    prompts.write_text('{"prompt": "one"}\n{"prompt": "two"}\n{"prompt": "three"\n')
    result = tao_ray("run", "recipes/demo-cpu.yaml", f"data.train_prompts={prompts}")
    assert_one_line_error(result, str(prompts), "line 3", "malformed JSON")


@pytest.mark.parametrize("content, fragment", [(b"", "has no prompts"), (b'{"prompt": "\xff"}\n', "not UTF-8")])
def test_empty_or_binary_prompt_file(tmp_path, content, fragment):
    prompts = tmp_path / "heldout.jsonl"
    prompts.write_bytes(content)
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", f"data.heldout_prompts={prompts}"), fragment)


def test_missing_prompt_file_and_model_dir(tmp_path):
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "data.train_prompts=nope.jsonl"),
                          "nope.jsonl", "not found")
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", f"model.path={tmp_path}/no-model"),
                          "model.path", "does not exist")


def test_hub_id_without_hub_is_a_clear_error():
    result = tao_ray("run", "recipes/demo-cpu.yaml", "model.path=some-org/some-model-that-is-not-cached",
                     env_extra={"HF_HUB_OFFLINE": "1"})
    assert_one_line_error(result, "model.path", "hub is unreachable")


def test_check_accepts_the_demo_recipe():
    result = tao_ray("run", "recipes/demo-cpu.yaml", "--check")
    assert result.returncode == 0, result.stderr
    assert "240 train / 60 held-out prompts" in result.stdout


def test_flags_may_stand_among_the_overrides(capsys):
    from tao_ray.cli import build_parser, main

    args = build_parser().parse_args(["run", "recipes/demo-cpu.yaml", "run.name=x", "--overwrite", "training.lr=1e-5",
                                      "--check", "run.iterations=2"])
    assert args.overrides == ["run.name=x", "training.lr=1e-5", "run.iterations=2"] and args.overwrite and args.check
    assert build_parser().parse_args(["show", "recipes/demo-cpu.yaml"]).overrides == []
    # in-process, no Ray: an override after a flag is applied (a bad one is reported), a good one passes --check
    assert main(["run", "recipes/demo-cpu.yaml", "--check", "data.max_heldout_prompts=7"]) == 0
    assert "/ 7 held-out prompts" in capsys.readouterr().out
    assert main(["run", "recipes/demo-cpu.yaml", "--check", "no_such.key=1"]) == 2
    assert "no_such" in capsys.readouterr().err
    assert main(["show", "recipes/demo-cpu.yaml", "run.name=shown"]) == 0
    assert '"name": "shown"' in capsys.readouterr().out


def test_resume_and_overwrite_exclude_each_other():
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "--resume", "--overwrite"), "--overwrite")


def test_scoring_mistakes_fail_before_any_actor_starts(tmp_path):
    recipe = tmp_path / "sql.yaml"
    recipe.write_text("data:\n  train_prompts: prompts/demo/train.jsonl\n"
                      "  heldout_prompts: prompts/demo/heldout.jsonl\n"
                      "scoring:\n  reward: sql\n  sql:\n    database: no-such.db\n")
    assert_one_line_error(tao_ray("run", str(recipe), "--check"), f"{recipe}: line 7", "scoring.sql.database",
                          "does not exist")
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "scoring.reward=0.5*constraints+rouge"),
                          "scoring.reward", "unknown scorer 'rouge'")
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "scoring.reward=function",
                                  "scoring.function.target=no_such_module:score"),
                          "command line (scoring.function.target=no_such_module:score)", "cannot import module")
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "eval.reward=math"),
                          "has no \"answer\", which the math scorer")
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "scoring.reward=reward_model",
                                  f"scoring.reward_model.path={tmp_path}"), "scoring.reward_model.path",
                          "config.json")


def test_diversity_settings_are_checked():
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "generation.min_distance=2.5"),
                          "generation.min_distance", "[0, 2]")
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "generation.strategy=dedup",
                                  "generation.samples_per_prompt=1"), "generation.samples_per_prompt",
                          "at least 2")
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "generation.condition_template=Be different."),
                          "generation.condition_template", "{previous}")


def test_train_rm_bad_pairs_file(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    assert_one_line_error(tao_ray("train-rm", str(pairs), "--out", str(tmp_path / "rm")), "line 2",
                          "'rejected' is missing")


def test_resume_refuses_what_the_checkpoint_cannot_honour(tmp_path):
    """A summary.json and a (fake) complete checkpoint are all the refusal needs: it comes before any prompt file,
    model, Ray or actor, and leaves the run dir as it was."""
    import dataclasses
    import json

    from tao_ray.config import load_recipe
    from tao_ray.data.inputs import resolve_output_dir
    from tao_ray.run import checkpoints

    recipe = resolve_output_dir(load_recipe("recipes/demo-cpu.yaml", [f"run.output_dir={tmp_path}"]))
    run_dir = recipe.run_dir
    run_dir.mkdir()
    summary = json.dumps({"config": dataclasses.asdict(recipe), "iterations": []})
    (run_dir / "summary.json").write_text(summary)
    staging = checkpoints.staging_dir(run_dir, 1)
    (staging / "learner").mkdir()
    checkpoints.commit(staging, checkpoints.checkpoint_dir(run_dir, 1), str(tmp_path), {"iteration": 1})
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))

    result = tao_ray("run", "recipes/demo-cpu.yaml", "resources.learners=2", "run.iterations=9",
                     f"run.output_dir={tmp_path}", "--resume")
    assert_one_line_error(result, str(run_dir), "resources.learners 1 -> 2")
    assert "run.iterations" not in result.stderr  # an applied change is not part of the refusal
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    assert (run_dir / "summary.json").read_text() == summary
    assert_one_line_error(tao_ray("run", "recipes/demo-cpu.yaml", "training.zero_stage=3",
                                  f"run.output_dir={tmp_path}", "--resume", "--check"), "training.zero_stage 2 -> 3")
    # An applied or optimizer change passes --check with a line saying what will change.
    result = tao_ray("run", "recipes/demo-cpu.yaml", "run.iterations=9", "training.lr=1e-5",
                     f"run.output_dir={tmp_path}", "--resume", "--check")
    assert result.returncode == 0, result.stderr
    assert "run.iterations 6 -> 9" in result.stdout and "training.lr 2e-05 -> 1e-05" in result.stdout
