"""The label-free evaluation of one iteration's weights, and the guards it feeds.

Up to four prompt sets are answered greedily in the same engine calls: the held-out prompts (they pick the best
checkpoint), the transfer prompts (the same skill asked in other words and formats: was the skill learned, or one
file's phrasing?), the unseen prompts (kinds of constraint never trained on: does it carry over?) and the general
prompts (outside the task: what did tuning trade away?). Each set is scored by its
own scorers and compared prompt by prompt with the base model's answers (iteration 0). An iteration whose answers
are much longer than the base model's, or whose general reward fell too far, is vetoed: it cannot become the best
checkpoint (core/selection.py guard_vetoes, the same rule `tao-ray promote` applies); so is one whose answers are
much shorter (eval.min_length_ratio): a reward bought by brevity. Every set is also broken down by behaviour
(constraint or instruction type, and a composite reward's components), and the held-out win rate is measured again
among the prompts whose answers are about as long as the base model's.

In: the sets, the engine's greedy Generations (in set order), their scores.
Out: Evaluation, and the fields it adds to the iteration's summary row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tao_ray.core import selection

if TYPE_CHECKING:
    from tao_ray.config import EvalSection
    from tao_ray.data.prompts import PromptRecord

SETS = ("heldout", "transfer", "unseen", "general")


@dataclass(frozen=True)
class EvalSet:
    name: str
    """One of SETS: the summary row's keys start with it."""
    prompts: list[PromptRecord]
    scorers: list
    """The scorer actors that rate this set's answers."""


@dataclass
class Evaluation:
    scores: dict[str, list[float | None]]
    """Per set, one raw score per prompt (None where the scorer failed)."""
    lengths: dict[str, list[int]]
    """Per set, the greedy answer's length in tokens per prompt."""
    versions: list[int]
    """The policy versions the engines served while answering."""
    scoring: dict[str, Any]
    """The held-out scorers' statistics (failures, timeouts)."""
    behaviours: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    """Per set, per prompt: whether each constraint or instruction type it asks for was met (1.0 or 0.0)."""
    components: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    """Per set, each reward component's raw score per prompt (a composite reward's parts)."""

    def __len__(self) -> int:
        return len(self.scores["heldout"])

    def describe(self) -> str:
        return ", ".join(f"{len(scores)} {name}" for name, scores in self.scores.items()) + " prompts"


def split_by_set(sets: list[EvalSet], answers: list) -> dict[str, list]:
    """The engine's answers to all sets' prompts, concatenated in set order, back per set."""
    parts, start = {}, 0
    for eval_set in sets:
        parts[eval_set.name] = answers[start:start + len(eval_set.prompts)]
        start += len(eval_set.prompts)
    return parts


def versus_base(scores: list[float | None], base: list[float | None]) -> dict[str, float] | None:
    """Paired win rate over the base model's answers with a bootstrap 95% CI; None when no prompt has a scored
    answer from both."""
    result = selection.paired_scores(scores, base)
    return None if not result.scored_pairs else {"win_rate": result.win_rate, "ci95_low": result.ci95[0],
                                                 "ci95_high": result.ci95[1], "mean_diff": result.mean_diff}


def row_fields(evaluation: Evaluation, base_row: dict[str, Any] | None, limits: EvalSection) -> dict[str, Any]:
    """The summary row's evaluation fields. `base_row`: iteration 0's row (None while evaluating iteration 0)."""
    row: dict[str, Any] = {"heldout_scoring": evaluation.scoring,
                           "heldout_response_tokens": evaluation.lengths["heldout"]}
    for name, scores in evaluation.scores.items():
        row[f"{name}_reward_mean"] = selection.mean(scores)
        row[f"{name}_scores"] = scores
        if base_row is not None and base_row.get(f"{name}_scores") is not None:
            row[f"{name}_vs_base"] = versus_base(scores, base_row[f"{name}_scores"])
    lengths = evaluation.lengths["heldout"]
    row["response_tokens_mean"] = sum(lengths) / len(lengths) if lengths else None
    base = base_row or row
    row["length_ratio"] = selection.length_ratio(lengths, base.get("heldout_response_tokens") or [])
    general, base_general = row.get("general_reward_mean"), base.get("general_reward_mean")
    row["general_delta"] = None if general is None or base_general is None else general - base_general
    versus_general = row.get("general_vs_base") or {}
    row["vetoed"] = selection.guard_vetoes(row["length_ratio"], limits.max_length_ratio, row["general_delta"],
                                           limits.max_general_drop, versus_general.get("ci95_high"),
                                           limits.min_length_ratio)
    if base_row is not None and base_row.get("heldout_scores") is not None:
        # A gain bought by answering shorter (or longer) shows here as a win rate near 0.5.
        row["heldout_matched_length"] = selection.matched_length_versus(
            evaluation.scores["heldout"], base_row["heldout_scores"], lengths, base_row["heldout_response_tokens"])
    row["by_type"] = by_type(evaluation)
    return row


def by_type(evaluation: Evaluation) -> dict[str, dict[str, dict[str, float]]]:
    """Per evaluated set, each behaviour's pass rate ({type: {"rate", "n"}}), and for a composite reward each
    component's mean raw score (as "reward/<name>"): which behaviours improved and which were traded away."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for name in evaluation.scores:
        rates = selection.behaviour_rates(evaluation.behaviours.get(name, []))
        components = evaluation.components.get(name, {})
        if len(components) > 1:
            for component, scores in components.items():
                measured = sum(s is not None for s in scores)
                if measured:
                    rates[f"reward/{component}"] = {"rate": selection.mean(scores), "n": measured}
        if rates:
            found[name] = rates
    return found


def eligible_reward(row: dict[str, Any]) -> float | None:
    """The held-out reward an iteration competes with for best checkpoint: None when unmeasured or vetoed."""
    return None if row.get("vetoed") else row.get("heldout_reward_mean")
