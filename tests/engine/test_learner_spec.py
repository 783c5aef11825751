"""What a learner rank is built with, from the recipe (no model is loaded)."""

from tao_ray.config import load_recipe
from tao_ray.engine.learner import LearnerSpec


def test_a_rank_gets_the_recipes_dtype_training_and_sampling_temperature():
    recipe = load_recipe("recipes/demo-cpu.yaml", ["resources.learners=2", "generation.temperature=0.8"])
    spec = LearnerSpec.from_recipe(recipe, "/models/m", 1)
    assert (spec.model_path, spec.rank, spec.world_size, spec.temperature) == ("/models/m", 1, 2, 0.8)
    assert spec.dtype == recipe.model.dtype and spec.training.lr == recipe.training.lr


def test_dr_grpos_fixed_length_defaults_to_the_longest_answer_the_engines_give():
    recipe = load_recipe("recipes/demo-cpu.yaml", ["training.loss_aggregation=constant", "generation.max_tokens=96"])
    assert LearnerSpec.from_recipe(recipe, "m", 0).training.loss_norm_tokens == 96
    recipe = load_recipe("recipes/demo-cpu.yaml",
                         ["training.loss_aggregation=constant", "training.loss_norm_tokens=64"])
    assert LearnerSpec.from_recipe(recipe, "m", 0).training.loss_norm_tokens == 64
