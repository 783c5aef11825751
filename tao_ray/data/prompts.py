"""Prompt files: JSONL, one prompt per line, validated line by line.

A line is either {"messages": [{"role": "user", "content": "..."}, ...]} (OpenAI chat format) or {"prompt": "..."},
plus optional "id", "constraints" (checked by the constraint verifier), "answer" (the reference final answer, for
the math scorer), "reference_sql" (a query whose result the sql scorer compares against), "reference_response" (the
judge's pairwise reference), "instruction_id_list" with "kwargs" (verifiable instructions in IFEval's format, checked
by the instructions scorer; see rewards/instructions.py) and "metadata" (kept, passed to function and http scorers,
not interpreted).
In: a path (a prompt file, or a prompt store's version directory). Out: a list of `PromptRecord`, or a TaoError
naming the file, line and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tao_ray.data.jsonl import read_objects
from tao_ray.data.store_layout import is_version_dir, version_objects
from tao_ray.errors import TaoError
from tao_ray.rewards.constraints import validate_constraint

REFERENCE_KEYS = ("answer", "reference_sql", "reference_response")
INSTRUCTION_KEYS = ("instruction_id_list", "kwargs")
KNOWN_KEYS = {"id", "messages", "prompt", "constraints", "metadata", *REFERENCE_KEYS, *INSTRUCTION_KEYS}
ROLES = {"system", "user", "assistant"}


@dataclass(frozen=True)
class PromptRecord:
    id: str
    messages: tuple[dict[str, str], ...]
    """The chat to continue; a plain {"prompt": ...} becomes one user message."""
    constraints: tuple[dict[str, Any], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None
    reference_sql: str | None = None
    reference_response: str | None = None
    instruction_id_list: tuple[str, ...] = ()
    instruction_kwargs: tuple[dict[str, Any], ...] = ()
    """One dict per instruction id: the "kwargs" key of the prompt file."""

    def as_dict(self) -> dict[str, Any]:
        """The plain form that reward functions receive."""
        return {"id": self.id, "messages": list(self.messages), "constraints": list(self.constraints),
                "metadata": self.metadata, "answer": self.answer, "reference_sql": self.reference_sql,
                "reference_response": self.reference_response, "instruction_id_list": list(self.instruction_id_list),
                "kwargs": [dict(k) for k in self.instruction_kwargs]}


def _record(obj: Any, where: str, index: int) -> PromptRecord:
    if not isinstance(obj, dict):
        raise TaoError(f"{where}: each line must be a JSON object with \"messages\" or \"prompt\"")
    unknown = sorted(set(obj) - KNOWN_KEYS)
    if unknown:
        raise TaoError(f"{where}: unknown key '{unknown[0]}'; allowed keys: {', '.join(sorted(KNOWN_KEYS))}")
    if ("messages" in obj) == ("prompt" in obj):
        raise TaoError(f"{where}: give exactly one of \"messages\" or \"prompt\"")
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise TaoError(f"{where}: key 'prompt' must be a non-empty string")
        messages = ({"role": "user", "content": obj["prompt"]},)
    else:
        raw = obj["messages"]
        if not isinstance(raw, list) or not raw:
            raise TaoError(f"{where}: key 'messages' must be a non-empty list of {{\"role\", \"content\"}} objects")
        for message in raw:
            if (not isinstance(message, dict) or message.get("role") not in ROLES
                    or not isinstance(message.get("content"), str)):
                raise TaoError(f"{where}: key 'messages' holds an entry that is not "
                               f"{{\"role\": system|user|assistant, \"content\": string}}")
        if raw[-1]["role"] != "user":
            raise TaoError(f"{where}: key 'messages' must end with a user message (the one to answer)")
        if not any(m["content"].strip() for m in raw):
            raise TaoError(f"{where}: key 'messages' has only empty content")
        messages = tuple({"role": m["role"], "content": m["content"]} for m in raw)
    constraints = obj.get("constraints", [])
    if not isinstance(constraints, list):
        raise TaoError(f"{where}: key 'constraints' must be a list")
    for constraint in constraints:
        problem = validate_constraint(constraint)
        if problem:
            raise TaoError(f"{where}: key 'constraints': {problem}")
    instruction_ids, instruction_kwargs = obj.get("instruction_id_list"), obj.get("kwargs")
    if instruction_ids is not None or instruction_kwargs is not None:
        if instruction_ids is None:
            raise TaoError(f"{where}: key 'kwargs' needs 'instruction_id_list' beside it")
        # Imported only for files that use instructions: the checks library is heavy to load.
        from tao_ray.rewards.instructions import validate_instructions

        problem = validate_instructions(instruction_ids, [] if instruction_kwargs is None else instruction_kwargs)
        if problem:
            raise TaoError(f"{where}: {problem}")
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise TaoError(f"{where}: key 'metadata' must be an object")
    references = {}
    for key in REFERENCE_KEYS:
        value = obj.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key == "answer":
            value = str(value)  # {"answer": 42} is as good as {"answer": "42"}
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise TaoError(f"{where}: key '{key}' must be a non-empty string")
        references[key] = value
    return PromptRecord(id=str(obj.get("id", index)), messages=messages, constraints=tuple(constraints),
                        metadata=metadata, instruction_id_list=tuple(instruction_ids or ()),
                        instruction_kwargs=tuple(instruction_kwargs or ()), **references)


def load_prompts(path: str | Path, limit: int | None = None, key: str = "prompt file") -> list[PromptRecord]:
    """Read and validate every line (blank lines are skipped) of a prompt file, or every prompt of one version of a
    prompt store (a directory `tao-ray ingest` wrote). `key` names the recipe key in errors."""
    path = Path(path)
    if is_version_dir(path):
        objects = version_objects(path)
    elif path.is_file():
        objects = read_objects(path)
    else:
        raise TaoError(f"{path}: {key} not found; check the path (relative paths start at the current directory)")
    records: list[PromptRecord] = []
    for where, obj in objects:
        records.append(_record(obj, where, len(records)))
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise TaoError(f"{path}: {key} has no prompts; add one JSON object per line")
    return records
