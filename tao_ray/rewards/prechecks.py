"""What a scorer needs, checked before any actor starts (the `precheck` and `cuda_check` of its ScorerSpec): the
database it queries, the module it imports, the reward model it loads, the service it calls, and GPUs on cuda.

Each check gets the recipe's ScoringSection (or the Recipe, for the GPU checks), a function that resolves a path the
way the run will (against the current directory, then the recipe's), and `fail(key, problem)`, which returns the
one-line TaoError to raise for that key.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tao_ray.rewards.function import load_function

Fail = Callable[[str, str], Exception]


def sql_database(scoring: Any, resolve: Callable[[str], Path], fail: Fail) -> None:
    raw = scoring.sql.database
    if not raw:
        raise fail("scoring.sql.database", "is required by the sql scorer; name a SQLite file")
    path = resolve(raw)
    if not path.is_file():
        raise fail("scoring.sql.database", f"names {raw}, which does not exist")
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise fail("scoring.sql.database", f"names {raw}, which is not a readable SQLite database ({exc})") from None


def reward_model(scoring: Any, resolve: Callable[[str], Path], fail: Fail) -> None:
    raw = scoring.reward_model.path
    path = resolve(raw) if raw else None
    if path is None or not (path / "config.json").is_file():
        raise fail("scoring.reward_model.path", f"is {raw!r}; the reward_model scorer needs a model directory "
                   "with config.json (e.g. from tao-ray train-rm)")
    config = json.loads((path / "config.json").read_text())
    labels = len(config.get("id2label") or {}) or config.get("num_labels", 2)  # transformers' default is 2
    if labels != 1:
        raise fail("scoring.reward_model.path", f"names a model with {labels} outputs; a reward model has exactly 1")


def function_target(scoring: Any, resolve: Callable[[str], Path], fail: Fail) -> None:
    if not scoring.function.target:
        raise fail("scoring.function.target", "is required by the function scorer; name package.module:function")
    try:
        load_function(scoring.function.target)
    except ValueError as exc:
        raise fail("scoring.function.target", str(exc)) from None


def http_url(scoring: Any, resolve: Callable[[str], Path], fail: Fail) -> None:
    if not scoring.http.url.startswith(("http://", "https://")):
        raise fail("scoring.http.url", f"is {scoring.http.url!r}; the http scorer needs an http(s):// URL")


def reward_model_gpu(recipe: Any, fail: Fail) -> None:
    if recipe.resources.scorer_gpus <= 0:
        raise fail("resources.scorer_gpus", "is 0, but the reward_model scorer runs its model inside the scorer "
                   "actors on cuda; give each scorer a GPU or a share of one, e.g. resources.scorer_gpus=0.5")


def judge_gpus(recipe: Any, fail: Fail) -> None:
    judge = recipe.scoring.judge
    if judge.judge_gpus != judge.tensor_parallel_size:
        raise fail("scoring.judge.judge_gpus", f"is {judge.judge_gpus:g}; on cuda each judge engine needs "
                   f"scoring.judge.tensor_parallel_size ({judge.tensor_parallel_size}) GPUs")
