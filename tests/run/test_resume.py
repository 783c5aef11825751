"""What --resume may change: refused, applied, or set on the restored optimizer (tao_ray/run/resume.py)."""

import dataclasses
import json

import pytest

from tao_ray.config import Recipe, load_recipe
from tao_ray.data.inputs import resolve_output_dir
from tao_ray.errors import TaoError
from tao_ray.run import checkpoints, resume

DEMO = "recipes/demo-cpu.yaml"


def demo(tmp_path, *overrides):
    return resolve_output_dir(load_recipe(DEMO, [f"run.output_dir={tmp_path}", *overrides]))


def stored(tmp_path, *overrides):
    """The config a summary.json holds: JSON round-trip and all."""
    return json.loads(json.dumps(dataclasses.asdict(demo(tmp_path, *overrides))))


def test_every_recipe_key_is_classified_on_purpose():
    """A new recipe key must be placed in one list (refused, optimizer, applied or not compared), with a reason."""
    lists = (resume.REFUSED, resume.OPTIMIZER, resume.APPLIED, resume.NOT_COMPARED)
    for key in resume.flatten(dataclasses.asdict(Recipe())):
        homes = [kind for kind in lists if resume._matches(key, kind)]
        assert len(homes) == 1, f"{key} is in {len(homes)} lists"


def test_same_recipe_changes_nothing(tmp_path):
    assert resume.compare(stored(tmp_path), demo(tmp_path)) == resume.Changes()


def test_refused_optimizer_and_applied_keys(tmp_path):
    new = demo(tmp_path, "resources.learners=2", "training.zero_stage=3", "generation.prompts_per_iteration=8",
               "training.lr=1e-5", "training.max_grad_norm=0.5", "run.iterations=9", "eval.every=2",
               "logging.wandb=false", "training.micro_batch_size=2", "scoring.reward=0.5*constraints")
    changes = resume.compare(stored(tmp_path), new)
    assert {c.key: (c.old, c.new) for c in changes.refused} == {
        "resources.learners": (1, 2), "training.zero_stage": (2, 3), "generation.prompts_per_iteration": (16, 8)}
    assert {c.key: (c.old, c.new) for c in changes.optimizer} == {
        "training.lr": (2e-5, 1e-5), "training.max_grad_norm": (1.0, 0.5)}
    assert {c.key for c in changes.applied} == {"run.iterations", "eval.every", "logging.wandb",
                                                "training.micro_batch_size", "scoring.reward"}
    assert changes.record()["optimizer"] == {"training.lr": [2e-5, 1e-5], "training.max_grad_norm": [1.0, 0.5]}


@pytest.mark.parametrize("override", ["model.path=/elsewhere", "model.dtype=bfloat16", "training.lora.r=8",
                                      "training.lora.alpha=32", "training.lora.target_modules=q_proj",
                                      "training.algorithm=rloo", "data.train_prompts=prompts/demo/heldout.jsonl",
                                      "data.max_heldout_prompts=10", "generation.samples_per_prompt=8",
                                      "run.seed=1", "training.seed=3"])
def test_what_the_checkpoint_cannot_honour_is_refused(tmp_path, override):
    changes = resume.compare(stored(tmp_path), demo(tmp_path, override))
    assert [c.key for c in changes.refused] == [override.split("=")[0]]


def test_run_location_and_source_are_not_compared(tmp_path):
    """A moved run dir (another output_dir) or recipe file still resumes."""
    old = stored(tmp_path / "before")
    old["source"], old["overrides"] = "/old/place/demo-cpu.yaml", ["run.iterations=3"]
    assert resume.compare(old, demo(tmp_path / "after")) == resume.Changes()


def test_keys_missing_from_an_older_summary_compare_with_defaults(tmp_path):
    old = stored(tmp_path)
    del old["training"]["loss_aggregation"], old["resources"]["placement"]  # keys a later tao-ray added
    old["training"]["retired_key"] = 1  # a key tao-ray no longer has
    assert resume.compare(old, demo(tmp_path)) == resume.Changes()
    changes = resume.compare(old, demo(tmp_path, "training.loss_aggregation=sequence"))
    assert [(c.key, c.old, c.new) for c in changes.applied] == [("training.loss_aggregation", "token", "sequence")]


def test_refusal_is_one_line_naming_every_key_with_both_values(tmp_path):
    changes = resume.compare(stored(tmp_path), demo(tmp_path, "resources.learners=2", "model.path=/m"))
    message = resume.refusal(changes, tmp_path / "demo-cpu")
    assert "\n" not in message
    assert 'model.path "demo" -> "/m"' in message and "resources.learners 1 -> 2" in message
    assert resume.refusal(resume.Changes(), tmp_path) is None


def test_applied_line_lists_applied_and_optimizer_changes(tmp_path):
    changes = resume.compare(stored(tmp_path), demo(tmp_path, "run.iterations=8", "training.weight_decay=0.1"))
    line = resume.applied_line(changes)
    assert "run.iterations 6 -> 8" in line and "training.weight_decay 0.0 -> 0.1" in line and "\n" not in line
    assert resume.applied_line(resume.Changes()) is None


def test_check_reads_the_run_dir_and_refuses_only_with_a_checkpoint(tmp_path):
    recipe = demo(tmp_path, "resources.learners=2")
    run_dir = recipe.run_dir
    run_dir.mkdir(parents=True)
    assert resume.check(recipe) == resume.Changes()  # no summary: nothing to compare
    (run_dir / "summary.json").write_text(json.dumps({"config": stored(tmp_path), "iterations": []}))
    assert resume.check(recipe) == resume.Changes()  # no checkpoint yet: the run starts again from iteration 0
    staging = checkpoints.staging_dir(run_dir, 1)
    (staging / "learner").mkdir()
    checkpoints.commit(staging, checkpoints.checkpoint_dir(run_dir, 1), str(tmp_path), {"iteration": 1})
    with pytest.raises(TaoError, match="resources.learners 1 -> 2"):
        resume.check(recipe)
    (run_dir / "summary.json").write_text('{"config": ')
    with pytest.raises(TaoError, match="unreadable"):
        resume.check(recipe)
