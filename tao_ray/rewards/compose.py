"""Weighted reward composition: parse `0.7*sql + 0.3*reward_model`, normalize per group, combine.

In: a reward expression; per-component scores for a batch of groups. Out: (name, weight) terms; one combined score
per sample, None where any component failed on it (the sample is excluded rather than scored on partial evidence).
Pure: no scorer is built here (see registry.py).
"""

from __future__ import annotations

import math
import re

SCORERS = ("constraints", "sql", "math", "reward_model", "judge", "function", "http")
_TERM = re.compile(r"^\s*(?:(?P<weight>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?(?P<name>[A-Za-z_]\w*)\s*$")


def parse_expression(expression: str) -> list[tuple[str, float]]:
    """`sql` -> [("sql", 1.0)]; `0.7*sql + 0.3*reward_model` -> [("sql", 0.7), ("reward_model", 0.3)].
    Raises ValueError with a one-line reason."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("must name a scorer, e.g. constraints, or a weighted sum such as 0.7*sql + 0.3*judge")
    terms: list[tuple[str, float]] = []
    for raw in expression.split("+"):
        match = _TERM.match(raw)
        if not match:
            raise ValueError(f"has an unreadable term {raw.strip()!r}; write weight*name terms joined by +, "
                             "e.g. 0.7*sql + 0.3*judge")
        name, weight = match["name"], float(match["weight"] or 1.0)
        if name not in SCORERS:
            raise ValueError(f"names an unknown scorer {name!r}; known: {', '.join(SCORERS)}")
        if any(name == seen for seen, _ in terms):
            raise ValueError(f"names {name!r} twice; give it one weight")
        if weight <= 0:
            raise ValueError(f"gives {name!r} weight {weight:g}; weights must be positive")
        terms.append((name, weight))
    return terms


def z_normalize(groups: list[list[float | None]]) -> list[list[float | None]]:
    """Per group: (x - mean) / std over the scored samples; a group with one score or no spread becomes zeros."""
    out = []
    for group in groups:
        values = [x for x in group if x is not None]
        mean = sum(values) / len(values) if values else 0.0
        std = math.sqrt(sum((x - mean) ** 2 for x in values) / len(values)) if values else 0.0
        out.append([None if x is None else (0.0 if std < 1e-12 else (x - mean) / std) for x in group])
    return out


def combine(components: dict[str, list[list[float | None]]], weights: dict[str, float]) -> list[list[float | None]]:
    """Sum of weight x score per sample, grouped like the inputs; None if any component has None there."""
    names = list(weights)
    shape = components[names[0]]
    combined = []
    for g, group in enumerate(shape):
        row = []
        for i in range(len(group)):
            parts = [components[name][g][i] for name in names]
            row.append(None if any(p is None for p in parts) else sum(weights[n] * p for n, p in zip(names, parts)))
        combined.append(row)
    return combined
