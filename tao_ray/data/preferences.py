"""Preference pairs for reward-model training: JSONL, one {"prompt", "chosen", "rejected"} object per line.

"prompt" is a string (one user message) or an OpenAI-style list of messages ending with a user message.
In: a path. Out: `PreferencePair`s, or a TaoError naming the file, line and key. `split` makes a deterministic
held-out split for the pairwise accuracy report.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from tao_ray.data.jsonl import read_objects
from tao_ray.errors import TaoError

KEYS = {"prompt", "chosen", "rejected", "id"}


@dataclass(frozen=True)
class PreferencePair:
    messages: list[dict[str, str]]
    chosen: str
    rejected: str


def _pair(obj, where: str) -> PreferencePair:
    if not isinstance(obj, dict):
        raise TaoError(f"{where}: each line must be a JSON object with \"prompt\", \"chosen\" and \"rejected\"")
    unknown = sorted(set(obj) - KEYS)
    if unknown:
        raise TaoError(f"{where}: unknown key '{unknown[0]}'; allowed keys: {', '.join(sorted(KEYS))}")
    for key in ("prompt", "chosen", "rejected"):
        if key not in obj:
            raise TaoError(f"{where}: key '{key}' is missing")
    for key in ("chosen", "rejected"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise TaoError(f"{where}: key '{key}' must be a non-empty string")
    prompt = obj["prompt"]
    if isinstance(prompt, str) and prompt.strip():
        messages = [{"role": "user", "content": prompt}]
    elif (isinstance(prompt, list) and prompt and all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                      and m.get("role") in ("system", "user", "assistant")
                                                      for m in prompt) and prompt[-1]["role"] == "user"):
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    else:
        raise TaoError(f"{where}: key 'prompt' must be a non-empty string or a list of messages ending with a user "
                       "message")
    return PreferencePair(messages, obj["chosen"], obj["rejected"])


def load_pairs(path: str | Path) -> list[PreferencePair]:
    path = Path(path)
    if not path.is_file():
        raise TaoError(f"{path}: preference file not found")
    pairs = []
    for where, obj in read_objects(path):
        pairs.append(_pair(obj, where))
    if len(pairs) < 2:
        raise TaoError(f"{path}: needs at least 2 preference pairs (one to train on, one to check), found "
                       f"{len(pairs)}")
    return pairs


def split(pairs: list[PreferencePair], heldout_fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out), shuffled with `seed`; at least one pair on each side."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    heldout = min(max(1, round(len(pairs) * heldout_fraction)), len(pairs) - 1)
    return [pairs[i] for i in order[heldout:]], [pairs[i] for i in order[:heldout]]
