"""The loss-settings benchmark's settings are valid overrides of the demo recipe and differ only where they say."""

import pytest

from benchmarks.tao_effect import RECIPE, SETTINGS
from tao_ray.config import load_recipe


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_setting_loads_against_the_demo_recipe(name):
    training = load_recipe(RECIPE, SETTINGS[name]).training
    one_epoch = name != "clip-higher"
    assert (training.epochs, training.clip_eps_high) == ((1, None) if one_epoch else (2, 0.28))
    assert training.loss_aggregation == {"sequence": "sequence", "constant": "constant"}.get(name, "token")
    assert training.normalize_std is (name != "constant")
