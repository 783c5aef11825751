"""Everything a run reads from disk, resolved and checked before Ray starts: the model and both prompt files.

In: a Recipe. Out: `RunInputs` (model directory, prompt records), or a TaoError naming the file, line and key.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from tao_ray.config import Recipe
from tao_ray.data.prompts import PromptRecord, load_prompts
from tao_ray.errors import TaoError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class RunInputs:
    model_dir: str
    train: list[PromptRecord]
    heldout: list[PromptRecord]


def resolve_path(raw: str, recipe: Recipe) -> Path:
    """Relative paths: the current directory first (as under `ray job submit`), then the recipe's directory."""
    path = Path(raw).expanduser()
    if path.is_absolute() or path.exists() or not recipe.source:
        return path
    beside_recipe = Path(recipe.source).parent / path
    return beside_recipe if beside_recipe.exists() else path


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def resolve_model(recipe: Recipe) -> str:
    return resolve_model_path(recipe.model.path, f"{recipe.source}: key 'model.path'", resolve_path(
        recipe.model.path, recipe))


def resolve_model_path(raw: str, where: str, path: Path | None = None) -> str:
    """'demo', a local HF directory, or a hub id (cached, or downloaded when the hub is reachable)."""
    from tao_ray.demo_model import DEMO_ALIAS

    if raw == DEMO_ALIAS:
        from tao_ray.demo_model import materialize

        return str(materialize())
    path = path or Path(raw).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TaoError(f"{where}: {path} has no config.json; point it at a Hugging Face model directory")
        return str(path)
    if not _HUB_ID.match(raw) or raw.startswith((".", "/", "~")):
        raise TaoError(f"{where}: model directory {raw} does not exist; fix the path, or use 'demo'")
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(raw, local_files_only=True)
    except Exception:
        pass
    if not _hub_reachable():
        raise TaoError(f"{where}: {raw!r} is not a local directory and the Hugging Face hub is unreachable from "
                       "this machine; download the model elsewhere and set model.path to its directory")
    return snapshot_download(raw)


def check_prompt_lengths(records: list[PromptRecord], model_dir: str, limit: int, file: Path) -> None:
    """An overlong prompt is reported with its id, so the user can find it; nothing starts before this passes."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for record in records:
        ids = tokenizer.apply_chat_template(list(record.messages), add_generation_prompt=True, tokenize=True,
                                            return_dict=True)["input_ids"]
        if len(ids) > limit:
            raise TaoError(f"{file}: prompt id {record.id!r} has {len(ids)} tokens, over data.max_prompt_tokens "
                           f"({limit}); shorten it or raise the limit")


def prepare_inputs(recipe: Recipe, check_lengths: bool = True) -> RunInputs:
    data = recipe.data
    train_file = resolve_path(data.train_prompts, recipe)
    heldout_file = resolve_path(data.heldout_prompts, recipe)
    train = load_prompts(train_file, data.max_train_prompts, key="data.train_prompts")
    heldout = load_prompts(heldout_file, data.max_heldout_prompts, key="data.heldout_prompts")
    model_dir = resolve_model(recipe)
    if check_lengths:
        check_prompt_lengths(train, model_dir, data.max_prompt_tokens, train_file)
        check_prompt_lengths(heldout, model_dir, data.max_prompt_tokens, heldout_file)
    return RunInputs(model_dir=model_dir, train=train, heldout=heldout)
