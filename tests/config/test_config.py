import dataclasses
import json

import pytest

from tao_ray.config import EvalSection, Recipe, load_recipe
from tao_ray.errors import TaoError

BASE = """\
data:
  train_prompts: t.jsonl
  heldout_prompts: h.jsonl
training:
  lr: 1.0e-5
"""


def recipe_file(tmp_path, text=BASE, name="my-run.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error(path, overrides=()):
    with pytest.raises(TaoError) as info:
        load_recipe(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_overrides_and_run_name(tmp_path):
    recipe = load_recipe(recipe_file(tmp_path), ["training.lr=5e-6", "run.iterations=2", "resources.generators=2"])
    assert recipe.training.lr == 5e-6  # YAML 1.1 reads 5e-6 as a string; the loader coerces it for a float key
    assert recipe.run.iterations == 2 and recipe.resources.generators == 2
    assert recipe.run.name == "my-run" and str(recipe.run_dir) == "runs/my-run"


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    path = recipe_file(tmp_path, BASE + "  lrr: 3\n")
    message = error(path)
    assert f"{path}: line 6" in message and "'training.lrr'" in message and "did you mean 'training.lr'" in message


def test_unknown_section_from_command_line(tmp_path):
    message = error(recipe_file(tmp_path), ["no_such.key=1"])
    assert "command line" in message and "'no_such'" in message


@pytest.mark.parametrize("override, expected", [
    ("run.iterations=two", "key 'run.iterations' must be a int"),
    ("resources.generators=-1", "key 'resources.generators' is -1; it must be at least 1"),
    ("training.lr=-1", "key 'training.lr' is -1.0; it must not be negative"),
    ("training.algorithm=ppo", "use one of: grpo"),
    ("generation.samples_per_prompt=1", "must be at least 2 for grpo"),
    ("resources.learner_gpus=1", "key 'resources.learner_gpus' asks for GPUs but resources.device is cpu"),
    ("generation.top_p=0", "must be in (0, 1]"),
    ("logging.wandb=maybe", "must be a bool"),
    ("training.lr", "must look like section.key=value"),
])
def test_bad_values_are_one_line_with_fix(tmp_path, override, expected):
    message = error(recipe_file(tmp_path), [override])
    assert expected in message and "command line" in message


def test_missing_required_and_bad_yaml(tmp_path):
    assert "key 'data.train_prompts' is required" in error(recipe_file(tmp_path, "run:\n  iterations: 1\n"))
    assert "line 2: invalid YAML" in error(recipe_file(tmp_path, "data:\n  a: b: c\n"))
    assert "recipe file not found" in error(tmp_path / "nope.yaml")


def test_recipe_is_frozen(tmp_path):
    recipe = load_recipe(recipe_file(tmp_path))
    with pytest.raises(AttributeError):
        recipe.training.lr = 1.0  # type: ignore[misc]


def test_nested_lora_section_and_its_errors(tmp_path):
    recipe = load_recipe(recipe_file(tmp_path), ["training.lora.r=8", "training.lora.target_modules=q_proj,v_proj"])
    assert recipe.training.lora.r == 8 and recipe.training.lora.target_modules == "q_proj,v_proj"
    assert load_recipe(recipe_file(tmp_path)).training.lora.r == 0
    assert "unknown key 'training.lora.rank'" in error(recipe_file(tmp_path), ["training.lora.rank=8"])
    assert "key 'training.lora.r' is -1" in error(recipe_file(tmp_path), ["training.lora.r=-1"])


CUDA = ["resources.device=cuda", "resources.learner_gpus=1", "resources.generator_gpus=1",
        "generation.kv_cache_gb=null"]


def test_a_cuda_reward_model_or_judge_without_a_gpu_is_refused(tmp_path):
    path = recipe_file(tmp_path)
    message = error(path, [*CUDA, "scoring.reward=reward_model"])
    assert "'resources.scorer_gpus'" in message and "reward_model" in message
    message = error(path, [*CUDA, "eval.reward=0.5*constraints + 0.5*judge"])
    assert "'scoring.judge.judge_gpus'" in message and "tensor_parallel_size (1)" in message
    recipe = load_recipe(path, [*CUDA, "scoring.reward=judge", "scoring.judge.judge_gpus=4",
                                "scoring.judge.tensor_parallel_size=4", "scoring.judge.dtype=bfloat16",
                                "scoring.judge.kv_cache_gb=null"])
    assert recipe.scoring.judge.tensor_parallel_size == 4 and recipe.scoring.judge.dtype == "bfloat16"
    assert load_recipe(path, [*CUDA, "scoring.reward=reward_model", "resources.scorer_gpus=0.5"])


def test_the_general_sets_reward_gets_a_gpu_on_cuda_too(tmp_path):
    """A reward model scoring only the general prompts runs in the general set's scorers: on cuda they need a GPU."""
    message = error(recipe_file(tmp_path), [*CUDA, "eval.general_reward=reward_model"])
    assert "'resources.scorer_gpus'" in message and "reward_model" in message


def test_a_fraction_of_a_gpu_per_learner_rank_is_refused_on_cuda(tmp_path):
    message = error(recipe_file(tmp_path), [*CUDA, "resources.learner_gpus=0.5"])
    assert "'resources.learner_gpus' is 0.5" in message and "NCCL refuses two ranks on one GPU" in message


def test_cpu_defaults_are_not_used_silently_on_cuda(tmp_path):
    path = recipe_file(tmp_path)
    on_cuda = [c for c in CUDA if not c.startswith("generation.kv_cache_gb")]
    assert "'generation.kv_cache_gb' is 0.5 GiB on cuda; set it to null" in error(path, on_cuda)
    judge = [*CUDA, "scoring.reward=judge", "scoring.judge.judge_gpus=1"]
    assert "'scoring.judge.kv_cache_gb' is 0.25 GiB on cuda" in error(path, judge)
    assert "'scoring.judge.dtype' is float32 on cuda" in error(path, [*judge, "scoring.judge.kv_cache_gb=null"])
    assert load_recipe(path, [*judge, "scoring.judge.kv_cache_gb=null", "scoring.judge.dtype=bfloat16"])


def test_gpus_on_cpu_and_bad_placement_are_refused(tmp_path):
    path = recipe_file(tmp_path)
    assert "'resources.scorer_gpus'" in error(path, ["resources.scorer_gpus=1"])
    assert "'scoring.judge.tensor_parallel_size'" in error(path, ["scoring.judge.tensor_parallel_size=2"])
    assert "pack, spread" in error(path, ["resources.placement=strict"])
    assert "'resources.startup_timeout_s'" in error(path, ["resources.startup_timeout_s=0"])


def test_a_saved_recipe_comes_back_typed_with_defaults_for_what_it_lacks():
    """Commands that read a run (compare, promote --run) rebuild its Recipe from summary.json: keys an older run
    lacks take today's defaults, keys this version dropped are ignored, lists become tuples again."""
    recipe = load_recipe("recipes/demo-cpu.yaml", ["training.lr=5e-6"])
    saved = json.loads(json.dumps(dataclasses.asdict(recipe)))  # as summary.json holds it
    del saved["eval"]["max_general_drop"]
    saved["training"]["a_key_from_another_version"] = 1
    restored = Recipe.from_summary(saved)
    assert restored.eval.max_general_drop == EvalSection().max_general_drop
    assert restored.training.lr == 5e-6 and restored.overrides == ("training.lr=5e-6",)
    assert restored == dataclasses.replace(recipe, eval=dataclasses.replace(recipe.eval, max_general_drop=0.05))
