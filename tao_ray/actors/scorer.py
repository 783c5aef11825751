"""ScorerActor: rates (prompt, response) pairs with the recipe's reward, one scorer or a weighted sum of several.

In: prompt records (plain dicts) and one list of response texts per record (a group). Out: `Scores` (see
core/composition.py): raw and learning scores per record, and each component's raw scores. A sample is None
(excluded from learning, counted as failed) where any component failed on it: raised, hung past the per-sample
timeout, crashed its process, or its service was down. Each component's raw mean and the failure reasons are kept
for logging until the driver takes them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tao_ray.actors import logs
from tao_ray.config import ScoringSection
from tao_ray.core.composition import Composition, Scores
from tao_ray.rewards import registry

MAX_REASONS = 5


class ScorerActor:
    def __init__(self, reward: str, scoring: dict[str, Any] | None = None, normalize: bool = False,
                 device: str = "cpu", judges: list | None = None):
        logs.redirect_output()  # before the engine prints anything
        if scoring is None:
            scoring = dataclasses.asdict(ScoringSection())
        self.weights = dict(registry.parse(reward))
        self.components = {name: registry.build(name, scoring, device, judges) for name in self.weights}
        self.composition = Composition(self.weights, normalize)
        self._reset_stats()

    def _reset_stats(self) -> None:
        # Every key exists from the start, so each scorer reports the same keys for the driver to merge.
        self.sums = {name: [0.0, 0] for name in self.weights}
        self.sums.update({f"{name}/{metric}": [0.0, 0] for name, component in self.components.items()
                          for metric in getattr(component, "metric_names", ())})
        self.failed, self.reasons = 0, []

    def _add(self, key: str, flat: list[float | None]) -> None:
        values = [x for x in flat if x is not None]
        self.sums[key][0] += sum(values)
        self.sums[key][1] += len(values)

    def score(self, records: list[dict], responses: list[list[str]]) -> Scores:
        """Raw and learning scores per record; `responses` should be whole groups when normalizing (the adaptive
        sampler scores parts of groups: it takes `components` and composes them once each group is complete)."""
        flat_records = [record for record, texts in zip(records, responses, strict=True) for _ in texts]
        flat_texts = [text for texts in responses for text in texts]
        per_component = {}
        for name, component in self.components.items():
            flat = component.score(flat_records, flat_texts)
            self.reasons.extend(f"{name}: {reason}" for reason in getattr(component, "last_failures", []))
            self._add(name, flat)
            for metric in getattr(component, "metric_names", ()):
                self._add(f"{name}/{metric}", component.last_metrics[metric])
            per_component[name] = _regroup(flat, [len(texts) for texts in responses])
        scores = self.composition.apply(per_component)
        self.failed += scores.failed
        self.reasons = self.reasons[-MAX_REASONS:]
        return scores

    def by_type(self, records: list[dict], responses: list[str]) -> list[dict[str, float]]:
        """Per (record, response): whether each constraint or instruction type the prompt asks for is met (1.0 or
        0.0), by every component whose scorer has types (rewards/registry.ScorerSpec.by_type); a check that raises
        leaves that sample's types out."""
        found: list[dict[str, float]] = [{} for _ in records]
        for name in self.components:
            by_type = registry.SCORERS[name].by_type
            if by_type is None:
                continue
            for k, (record, response) in enumerate(zip(records, responses, strict=True)):
                try:
                    found[k].update(by_type(record, response))
                except Exception:  # noqa: BLE001 - a diagnostic must never stop the evaluation
                    continue
        return found

    def get_composition(self) -> Composition:
        """The weights and normalization, for a caller that composes component scores itself."""
        return self.composition

    def ready(self) -> bool:
        """A barrier: the scorer is up (after a restart, its components are built again)."""
        return True

    def take_stats(self) -> dict[str, Any]:
        """Raw mean per component (reward/<name>) and of its extra metrics (reward/<name>/<metric>), failures and
        their last reasons since the previous call."""
        stats = {f"reward/{name}": (total / count if count else None) for name, (total, count) in self.sums.items()}
        stats.update({"scoring/failed": self.failed, "scoring/failure_reasons": list(self.reasons)})
        self._reset_stats()
        return stats

    def __del__(self):
        for component in getattr(self, "components", {}).values():
            component.close()


def _regroup(flat: list, sizes: list[int]) -> list[list]:
    groups, start = [], 0
    for size in sizes:
        groups.append(flat[start:start + size])
        start += size
    return groups
