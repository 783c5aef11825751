"""Every recipe in recipes/ loads and validates; the GPU ones are checked here but run only on GPU clusters."""

from pathlib import Path

import pytest

from tao_ray.config import load_recipe

RECIPES = sorted(Path("recipes").glob("*.yaml"))


def test_there_is_a_cpu_demo_and_a_gpu_recipe():
    devices = {load_recipe(p).resources.device for p in RECIPES}
    assert devices == {"cpu", "cuda"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_loads(path):
    recipe = load_recipe(path)
    assert recipe.run.name == path.stem
    assert recipe.data.train_prompts and recipe.data.heldout_prompts
    header = path.read_text().splitlines()[0:8]
    assert header[0].startswith("#") and any("Launch" in line for line in header)
    assert any("Hardware" in line for line in header)
