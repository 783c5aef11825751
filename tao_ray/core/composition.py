"""Weighted reward composition: parse `0.7*sql + 0.3*reward_model`, normalize per group, combine.

In: a reward expression; per-component raw scores for a batch of groups. Out: (name, weight) terms; `Scores`, two
combined scores per sample: `raw` (the weighted sum of each component's raw score) and `learning` (what advantages
use: raw, or with group normalization the weighted sum of z-normalized components). Either is None where any
component failed on the sample (it is excluded rather than scored on partial evidence).
Pure: no scorer is built or named here (see rewards/registry.py).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_TERM = re.compile(r"^\s*(?:(?P<weight>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?(?P<name>[A-Za-z_]\w*)\s*$")


def parse_expression(expression: str) -> list[tuple[str, float]]:
    """`sql` -> [("sql", 1.0)]; `0.7*sql + 0.3*reward_model` -> [("sql", 0.7), ("reward_model", 0.3)].
    Raises ValueError with a one-line reason. Only the form is checked here; whether each name is a scorer is the
    registry's (rewards/registry.parse)."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("must name a scorer, e.g. constraints, or a weighted sum such as 0.7*sql + 0.3*judge")
    terms: list[tuple[str, float]] = []
    for raw in expression.split("+"):
        match = _TERM.match(raw)
        if not match:
            raise ValueError(f"has an unreadable term {raw.strip()!r}; write weight*name terms joined by +, "
                             "e.g. 0.7*sql + 0.3*judge")
        name, weight = match["name"], float(match["weight"] or 1.0)
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


Grouped = list[list[float | None]]
"""One list per prompt (a group), one entry per sample."""


@dataclass(frozen=True)
class Scores:
    """A scoring call's result, grouped like its input."""

    raw: Grouped
    """Weighted sum of the components' raw scores: what thresholds, pairing margins and reported means compare,
    so they keep their meaning whatever the normalization."""
    learning: Grouped
    """What advantages are computed from: `raw`, or with scoring.normalize=group the weighted sum of components
    z-normalized within each group."""
    components: dict[str, Grouped] = field(default_factory=dict)
    """Each component's raw scores: a caller that scored a group in parts composes them again once it is whole."""

    @property
    def failed(self) -> int:
        """Samples some component failed on (None in every combined score)."""
        return sum(x is None for group in self.raw for x in group)


@dataclass(frozen=True)
class Composition:
    """How component scores become one score: the weights and whether components are normalized per group."""

    weights: dict[str, float]
    normalize: bool = False

    def apply(self, components: dict[str, Grouped]) -> Scores:
        """`components` must hold whole groups: normalizing a part of a group would use the wrong statistics."""
        raw = combine(components, self.weights)
        learning = (combine({name: z_normalize(groups) for name, groups in components.items()}, self.weights)
                    if self.normalize else raw)
        return Scores(raw, learning, components)
