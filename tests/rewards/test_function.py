import sys
import uuid

import pytest

from tao_ray.rewards.function import load_function
from tests.rewards import sample_rewards


def test_loads_a_reward_and_calls_it():
    reward = load_function("tests.rewards.sample_rewards:length_reward")
    assert reward is sample_rewards.length_reward
    assert reward({"id": "a", "messages": []}, "x" * 50) == 0.5


def test_attribute_path_inside_the_module():
    reward = load_function("tests.rewards.sample_rewards:Scorers.exact")
    assert reward({"answer": "7"}, " 7 ") == 1.0


def test_a_reward_that_raises_is_loaded_and_raises_when_called():
    reward = load_function("tests.rewards.sample_rewards:raises_reward")
    with pytest.raises(RuntimeError, match="cannot score prompt 'p9'"):
        reward({"id": "p9"}, "text")


@pytest.mark.parametrize(
    "target",
    ["tests.rewards.sample_rewards", "tests.rewards.sample_rewards:length_reward:x", ":length_reward", "mod:", ""],
)
def test_malformed_target(target):
    with pytest.raises(ValueError, match="must look like package.module:function"):
        load_function(target)


@pytest.mark.parametrize("module", ["no_such_module_xyz", "tests.rewards.no_such_module", "no_such_pkg_xyz.sub"])
def test_missing_module(module):
    with pytest.raises(ValueError, match=f"cannot import module '{module}'.*current directory.*PYTHONPATH"):
        load_function(f"{module}:fn")


def test_missing_attribute():
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        load_function("tests.rewards.sample_rewards:nope")


def test_not_callable():
    with pytest.raises(ValueError, match="'NOT_CALLABLE' is a int, not a function"):
        load_function("tests.rewards.sample_rewards:NOT_CALLABLE")


def test_wrong_signature():
    with pytest.raises(ValueError, match=r"no_args_reward\(\) must accept \(record, response\)"):
        load_function("tests.rewards.sample_rewards:no_args_reward")


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    """A user's project directory as the current directory, with sys.path and sys.modules restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    return tmp_path


def _module_name():
    return f"user_rewards_{uuid.uuid4().hex[:8]}"


def test_module_in_the_current_directory_is_importable(project_dir):
    name = _module_name()
    (project_dir / f"{name}.py").write_text("def score(record, response):\n    return 0.25\n")
    reward = load_function(f"{name}:score")
    assert reward({}, "") == 0.25
    assert str(project_dir) in sys.path


def test_module_that_raises_on_import(project_dir):
    name = _module_name()
    (project_dir / f"{name}.py").write_text("raise RuntimeError('bad config\\nsecond line')\n")
    with pytest.raises(ValueError, match=f"importing {name} raised RuntimeError: bad config$"):
        load_function(f"{name}:score")


def test_module_whose_own_import_is_missing(project_dir):
    # The module exists: the missing dependency must not be reported as "cannot import module <name>".
    name = _module_name()
    (project_dir / f"{name}.py").write_text("import not_installed_dep_xyz\n")
    with pytest.raises(ValueError, match=f"importing {name} raised ModuleNotFoundError: .*not_installed_dep_xyz"):
        load_function(f"{name}:score")
