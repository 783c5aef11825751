"""`tao-ray promote`: answer the held-out prompts (and a general set, if given) with the candidate and the current
model, then let the pure gate (tao_ray/core/promotion.py) decide.

In: both model directories, the prompt sets with their rewards, the engine settings and the thresholds.
Out: the decision's dict (its evidence, plus which models, prompts and rewards it was made on) and its one-line
verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tao_ray.compare import Engine, PromptSet, answer_and_score
from tao_ray.core.promotion import decide


@dataclass(frozen=True)
class Gate:
    max_length_ratio: float | None = 2.0
    """Veto when the candidate's mean response length exceeds this multiple of the current model's (None: off)."""
    max_general_drop: float | None = 0.05
    """Veto when the candidate's mean score on the general set falls more than this below the current model's
    (None: report only)."""


def promote(candidate: str, current: str, heldout: PromptSet, general: PromptSet | None, engine: Engine,
            gate: Gate, scoring: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    sets = [heldout] + ([general] if general else [])
    answers_candidate, answers_current = answer_and_score([candidate, current], sets, engine, scoring)
    decision = decide(answers_candidate[0].scores, answers_current[0].scores, answers_candidate[0].lengths,
                      answers_current[0].lengths,
                      general_candidate=answers_candidate[1].scores if general else None,
                      general_current=answers_current[1].scores if general else None,
                      max_length_ratio=gate.max_length_ratio, max_general_drop=gate.max_general_drop)
    evidence = decision.as_dict()
    evidence["heldout"]["reward"] = heldout.reward
    if general:
        evidence["general"]["reward"] = general.reward
    return {"candidate": candidate, "current": current, **evidence, "max_tokens": engine.max_tokens}, \
        decision.verdict()
