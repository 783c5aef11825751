"""What `tao-ray compare` and `tao-ray promote` read, resolved and checked before Ray starts: the models, the prompt
files, the rewards, and the defaults a run directory (`--run`) supplies from its summary.json.

In: the command's parsed arguments. Out: model directories, prompt records, reward expressions and settings, or a
TaoError naming the flag, file or key.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tao_ray.commands.export import best_model_dir
from tao_ray.config import Recipe
from tao_ray.data.inputs import resolve_model_path
from tao_ray.data.prompts import PromptRecord, load_prompts
from tao_ray.errors import TaoError
from tao_ray.rewards import registry


def run_recipe(run_dir: str) -> Recipe:
    """The recipe a run recorded in its summary.json, every key it lacks at its default."""
    summary_path = Path(run_dir) / "summary.json"
    if not summary_path.is_file():
        raise TaoError(f"{run_dir}: no summary.json; --run takes a tao-ray run directory (runs/<name>)")
    return Recipe.from_summary(json.loads(summary_path.read_text())["config"])


def resolve_model(raw: str, where: str) -> str:
    """A model directory, a hub id, 'demo', or a run directory (its best checkpoint, as `tao-ray export` writes)."""
    path = Path(raw).expanduser()
    if (path / "summary.json").is_file() and not (path / "config.json").is_file():
        return resolve_model_path(str(best_model_dir(path)), where)
    return resolve_model_path(raw, where)


def check_reward(expression: str, command: str, flag: str) -> str:
    try:
        needs_judge = registry.needs_judge(expression)
    except ValueError as exc:
        raise TaoError(f"{command}: {flag} {exc}") from None
    if needs_judge:
        raise TaoError(f"{command}: the judge scorer needs its own engine and is not available in {command}; pass "
                       f"{flag} with a verifier, reward_model, function or http scorer")
    return expression


@dataclass(frozen=True)
class Engine:
    """How each model's engine is started and how long its answers may be."""

    max_tokens: int = 128
    max_model_len: int = 1024
    kv_cache_gb: float | None = 0.5
    """Set on CPU (vLLM would otherwise reserve a fraction of all RAM); None on GPU."""
    gpus: float = 0.0


@dataclass(frozen=True)
class HeldOut:
    """The held-out side of an A/B command: the prompts, how they are scored, how long the answers may be."""

    prompts: list[PromptRecord]
    reward: str
    max_tokens: int
    scoring: dict[str, Any] | None
    """The run's scoring section (its scorers' options), or None for the built-in defaults."""


def heldout(args: argparse.Namespace, recipe: Recipe | None, command: str) -> HeldOut:
    """--prompts, --reward and --max-tokens, each defaulting to the run's (`recipe`) when --run is given."""
    prompts_file, limit = args.prompts, None
    reward, max_tokens, scoring = args.reward, args.max_tokens, None
    if recipe is not None:
        reward = reward or recipe.eval.reward or recipe.scoring.reward
        max_tokens = max_tokens or recipe.generation.max_tokens
        if not prompts_file:
            prompts_file, limit = recipe.data.heldout_prompts, recipe.data.max_heldout_prompts
        scoring = dataclasses.asdict(recipe.scoring)
    if not prompts_file:
        raise TaoError(f"{command}: give --prompts FILE or --run RUN_DIR (which supplies its held-out prompts)")
    max_tokens = max_tokens or 128
    if max_tokens < 1:
        raise TaoError(f"{command}: --max-tokens is {max_tokens}; it must be at least 1")
    reward = check_reward(reward or "constraints", command, "--reward")
    return HeldOut(load_prompts(prompts_file, limit, key="--prompts"), reward, max_tokens, scoring)


def engine(args: argparse.Namespace, max_tokens: int) -> Engine:
    on_gpu = args.device == "cuda"
    return Engine(max_tokens=max_tokens, kv_cache_gb=None if on_gpu else 0.5, gpus=1.0 if on_gpu else 0.0)
