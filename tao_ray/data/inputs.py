"""Everything a run reads from disk, resolved and checked before Ray starts: the model and both prompt files.

In: a Recipe. Out: `RunInputs` (model directory, prompt records), or a TaoError naming the file, line and key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from tao_ray.config import Recipe, locate
from tao_ray.data import mix
from tao_ray.data.demo_model import DEMO_ALIAS, materialize
from tao_ray.data.prompts import PromptRecord, load_prompts
from tao_ray.data.store_layout import is_store, newest_version, prompts_file
from tao_ray.errors import TaoError
from tao_ray.rewards import registry

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class RunInputs:
    model_dir: str
    train: list[PromptRecord]
    heldout: list[PromptRecord]
    judge_model_dir: str | None = None
    scoring_paths: dict[str, str] | None = None
    """Scorer files resolved to absolute paths (actors may run in another directory), by dotted key under scoring."""
    train_weights: list[float] | None = None
    """Sampling weight per training prompt (data.mix=upweight_recent), None for a uniform shuffle."""
    transfer: list[PromptRecord] = field(default_factory=list)
    """data.transfer_prompts: the skill asked for in other words (reported, never used for selection)."""
    unseen: list[PromptRecord] = field(default_factory=list)
    """data.unseen_prompts: kinds of constraint never trained on (reported, never used for selection)."""
    general: list[PromptRecord] = field(default_factory=list)
    """data.general_prompts: outside the task's domain, scored by eval.general_reward (the trade-off guard)."""


def resolve_path(raw: str, recipe: Recipe) -> Path:
    """Relative paths: the current directory first (as under `ray job submit`), then the recipe's directory."""
    path = Path(raw).expanduser()
    if path.is_absolute() or path.exists() or not recipe.source:
        return path
    beside_recipe = Path(recipe.source).parent / path
    return beside_recipe if beside_recipe.exists() else path


def in_ray_job_working_dir() -> bool:
    """True when this process is a Ray job's entrypoint running in Ray's temporary copy of the working dir
    (`ray job submit --working-dir .`), which Ray deletes with the job's session."""
    config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    return bool((config.get("runtime_env") or {}).get("working_dir")) or \
        "runtime_resources/working_dir_files" in Path.cwd().as_posix()


def resolve_output_dir(recipe: Recipe) -> Recipe:
    """The recipe with run.output_dir absolute, so the driver and every actor name one directory. A relative one
    is refused inside a Ray job's working-dir copy: the run would land there and vanish with the job."""
    raw = recipe.run.output_dir
    if not Path(raw).expanduser().is_absolute() and in_ray_job_working_dir():
        raise TaoError(f"{locate(recipe, 'run.output_dir')}: key 'run.output_dir' is {raw!r}, relative to Ray's "
                       "temporary copy of the job's working dir, which is deleted with the job; set it to an "
                       "absolute path on storage every node mounts, e.g. run.output_dir=/shared/tao-ray/runs")
    absolute = str(Path(raw).expanduser().resolve())
    return dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, output_dir=absolute))


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
    if raw == DEMO_ALIAS:
        return str(materialize())
    path = path or Path(raw).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TaoError(f"{where}: {path} has no config.json; point it at a Hugging Face model directory")
        return str(path.resolve())  # actors may run in another directory, or on another node
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


def pin_store_version(recipe: Recipe) -> Recipe:
    """data.train_prompts naming a prompt store becomes its newest version's directory, so that the run reads one
    fixed set, and --resume refuses (rather than silently shuffles) a store that got a new version meanwhile."""
    raw = recipe.data.train_prompts
    path = resolve_path(raw, recipe)
    if not raw or not is_store(path):
        return recipe
    newest = newest_version(path)
    pinned = str(Path(raw) / "versions" / newest.name)
    return dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, train_prompts=pinned))


def prepare_inputs(recipe: Recipe, check_lengths: bool = True) -> RunInputs:
    data = recipe.data
    train_file = prompts_file(resolve_path(data.train_prompts, recipe))  # a file, a store or one of its versions
    heldout_file = resolve_path(data.heldout_prompts, recipe)
    train = load_prompts(train_file, data.max_train_prompts, key="data.train_prompts")
    try:
        train, train_weights = mix.select(train, data.mix, data.recent_versions, data.half_life_versions)
    except ValueError as exc:
        raise TaoError(f"{locate(recipe, 'data.mix')}: key 'data.mix' is {data.mix!r}: {exc}; data.train_prompts "
                       f"names {data.train_prompts}") from None
    heldout = load_prompts(heldout_file, data.max_heldout_prompts, key="data.heldout_prompts")
    optional = {}  # the evaluated sets besides the held-out one, where the recipe names them
    for key, raw in (("transfer", data.transfer_prompts), ("unseen", data.unseen_prompts),
                     ("general", data.general_prompts)):
        if raw:
            file = resolve_path(raw, recipe)
            optional[key] = (file, load_prompts(file, data.max_heldout_prompts, key=f"data.{key}_prompts"))
    model_dir = resolve_model(recipe)
    if check_lengths:
        for file, records in [(train_file, train), (heldout_file, heldout), *optional.values()]:
            check_prompt_lengths(records, model_dir, data.max_prompt_tokens, file)
    judge_model_dir = check_scoring(recipe, [(train_file, train), (heldout_file, heldout),
                                             *(optional[key] for key in ("transfer", "unseen") if key in optional)],
                                    [optional["general"]] if "general" in optional else [])
    scoring_paths = {key: str(resolve_path(raw, recipe).resolve()) for key, raw in (
        ("sql.database", recipe.scoring.sql.database), ("reward_model.path", recipe.scoring.reward_model.path)) if raw}
    return RunInputs(model_dir=model_dir, train=train, heldout=heldout, judge_model_dir=judge_model_dir,
                     scoring_paths=scoring_paths, train_weights=train_weights,
                     transfer=optional.get("transfer", (None, []))[1], unseen=optional.get("unseen", (None, []))[1],
                     general=optional.get("general", (None, []))[1])


def general_reward(recipe: Recipe) -> str:
    return recipe.eval.general_reward or recipe.eval.reward or recipe.scoring.reward


def check_scoring(recipe: Recipe, prompt_files: list[tuple[Path, list[PromptRecord]]],
                  general_files: list[tuple[Path, list[PromptRecord]]] = ()) -> str | None:
    """What the named scorers need (each ScorerSpec's precheck and record field), checked before any actor starts:
    the database, the module, the reward model, the judge's model, and the prompts' reference answers. Returns the
    judge's model directory, if a judge runs. `general_files` are scored by eval.general_reward only, the others by
    scoring.reward and eval.reward."""
    task_names = registry.names(recipe.scoring.reward, recipe.eval.reward)
    general_names = registry.names(general_reward(recipe)) if general_files else set()
    names = task_names | general_names

    def fail(key: str, problem: str) -> TaoError:
        return TaoError(f"{locate(recipe, key)}: key '{key}' {problem}")

    for name in sorted(names, key=list(registry.SCORERS).index):
        precheck = registry.SCORERS[name].precheck
        if precheck is not None:
            precheck(recipe.scoring, lambda raw: resolve_path(raw, recipe), fail)
    files = [(file, records, task_names, "scoring.reward") for file, records in prompt_files] + \
        [(file, records, general_names, "eval.general_reward") for file, records in general_files]
    for file, records, file_names, key in files:
        for name in sorted(file_names, key=list(registry.SCORERS).index):
            spec = registry.SCORERS[name]
            if spec.record_field is None:
                continue
            missing = next((r for r in records if getattr(r, spec.record_field) in (None, [], ())), None)
            if missing is not None:
                raise TaoError(f"{file}: prompt id {missing.id!r} has no {spec.record_field_label}, which the {name} "
                               f"scorer ({locate(recipe, key)}) needs")
    if any(registry.SCORERS[name].needs_judge for name in names):
        return resolve_model_path(recipe.scoring.judge.model, f"{locate(recipe, 'scoring.judge.model')}: key "
                                  "'scoring.judge.model'", resolve_path(recipe.scoring.judge.model, recipe))
    return None
