"""Verifiable instruction-following constraints (IFEval-style) and the demo reward: the fraction of constraints met.

A constraint is a dict such as {"type": "max_words", "n": 40}. `validate_constraint` checks its shape when a prompt
file is loaded, so a typo is reported with the file and line before any actor starts; `check` only runs on valid ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_WORD_RE = re.compile(r"\b[\w'-]+\b")
_BULLET_RE = re.compile(r"^\s*[-*•]\s+\S", re.MULTILINE)


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _strip_code_fence(text: str) -> str:
    match = re.fullmatch(r"\s*```(?:json)?\s*\n(.*?)\n\s*```\s*", text, flags=re.DOTALL)
    return match.group(1) if match else text


def _is_json(text: str) -> bool:
    try:
        json.loads(_strip_code_fence(text))
    except ValueError:
        return False
    return True


def _contains_word(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word.lower())}\b", text.lower()) is not None


# type -> (required parameters with their python types, check(text, params) -> bool)
CHECKS: dict[str, tuple[dict[str, type], Callable[[str, dict[str, Any]], bool]]] = {
    "lowercase": ({}, lambda t, p: t == t.lower() and any(c.isalpha() for c in t)),
    "uppercase": ({}, lambda t, p: t == t.upper() and any(c.isalpha() for c in t)),
    "no_commas": ({}, lambda t, p: "," not in t),
    "max_words": ({"n": int}, lambda t, p: 0 < len(_words(t)) <= p["n"]),
    "min_words": ({"n": int}, lambda t, p: len(_words(t)) >= p["n"]),
    "max_sentences": ({"n": int}, lambda t, p: 0 < len(_sentences(t)) <= p["n"]),
    "include_keywords": ({"keywords": list}, lambda t, p: all(_contains_word(t, k) for k in p["keywords"])),
    "forbidden_words": ({"words": list}, lambda t, p: not any(_contains_word(t, w) for w in p["words"])),
    "json": ({}, lambda t, p: _is_json(t)),
    "bullets": ({"n": int}, lambda t, p: len(_BULLET_RE.findall(t)) == p["n"]),
    "starts_with": ({"phrase": str}, lambda t, p: t.strip().lower().startswith(p["phrase"].lower())),
    "ends_with": ({"phrase": str}, lambda t, p: t.strip().lower().endswith(p["phrase"].lower())),
    "paragraphs": ({"n": int}, lambda t, p: len(_paragraphs(t)) == p["n"]),
    "quoted": ({}, lambda t, p: len(t.strip()) >= 2 and t.strip()[0] == '"' and t.strip()[-1] == '"'),
    "no_digits": ({}, lambda t, p: not any(c.isdigit() for c in t)),
    "min_sentences": ({"n": int}, lambda t, p: len(_sentences(t)) >= p["n"]),
    "keyword_count": ({"keyword": str, "n": int},
                      lambda t, p: len(re.findall(rf"\b{re.escape(p['keyword'].lower())}\b", t.lower())) >= p["n"]),
    "title": ({}, lambda t, p: re.search(r"<<[^<>\n]+>>", t) is not None),
    "postscript": ({}, lambda t, p: re.search(r"^\s*P\.\s?S\.", t, flags=re.MULTILINE) is not None),
}


def validate_constraint(constraint: Any) -> str | None:
    """Return None when the constraint is well formed, else a short reason (used in one-line load errors)."""
    if not isinstance(constraint, dict) or "type" not in constraint:
        return 'a constraint must be an object with a "type"'
    kind = constraint["type"]
    if kind not in CHECKS:
        return f"unknown constraint type {kind!r}; known: {', '.join(sorted(CHECKS))}"
    required, _ = CHECKS[kind]
    for name, expected in required.items():
        if name not in constraint:
            return f"constraint {kind!r} needs {name!r}"
        value = constraint[name]
        if not isinstance(value, expected) or isinstance(value, bool):
            return f"constraint {kind!r}: {name!r} must be {expected.__name__}"
    extra = set(constraint) - set(required) - {"type"}
    if extra:
        return f"constraint {kind!r}: unknown key {sorted(extra)[0]!r}"
    return None


def check(text: str, constraint: dict[str, Any]) -> bool:
    _, predicate = CHECKS[constraint["type"]]
    return bool(predicate(text, constraint))


def constraint_reward(record: dict[str, Any], response: str) -> float:
    """The demo reward: fraction of the prompt's constraints that the response meets (0 when it has none)."""
    constraints = record.get("constraints") or []
    if not constraints:
        return 0.0
    return sum(check(response, c) for c in constraints) / len(constraints)


def constraint_results(record: dict[str, Any], response: str) -> dict[str, float]:
    """Per constraint type of the prompt, whether the response meets it (1.0 or 0.0; a type asked twice, the mean):
    what the per-behaviour diagnostics count."""
    met: dict[str, list[bool]] = {}
    for constraint in record.get("constraints") or []:
        met.setdefault(constraint["type"], []).append(check(response, constraint))
    return {kind: sum(values) / len(values) for kind, values in met.items()}
