"""`tao-ray promote`: answer the held-out prompts (and a general set, if given) with the candidate and the current
model, then let the pure gate (tao_ray/core/promotion.py) decide.

In: both model directories, the prompt sets with their rewards, the engine settings and the thresholds.
Out: the decision's dict (its evidence, plus which models, prompts and rewards it was made on) and its one-line
verdict.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tao_ray.commands import ab_inputs
from tao_ray.commands.ab_inputs import Engine
from tao_ray.commands.compare import PromptSet, answer_and_score
from tao_ray.config import DataSection, EvalSection
from tao_ray.core.promotion import decide
from tao_ray.data.prompts import load_prompts
from tao_ray.errors import TaoError
from tao_ray.run.tracking import write_json_atomic


@dataclass(frozen=True)
class Gate:
    max_length_ratio: float | None = EvalSection.max_length_ratio
    """Veto when the candidate's mean response length exceeds this multiple of the current model's (None: off)."""
    max_general_drop: float | None = EvalSection.max_general_drop
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


def from_args(args: argparse.Namespace) -> int:
    """Exit 0: promote the candidate; 1: keep the current model (a verdict, not a failure)."""
    recipe = ab_inputs.run_recipe(args.run) if args.run else None
    # Without --run, the gate's defaults are a recipe's (EvalSection), as they are for an older run lacking them.
    run_eval, run_data = (recipe.eval, recipe.data) if recipe is not None else (EvalSection(), DataSection())
    held_out = ab_inputs.heldout(args, recipe, "promote")
    # A run's null max_length_ratio turns the length guard off.
    max_ratio = args.max_length_ratio if args.max_length_ratio is not None else run_eval.max_length_ratio
    # A run's null max_general_drop turns the trade-off guard off (the set is still answered and reported).
    max_drop = args.max_general_drop if args.max_general_drop is not None else run_eval.max_general_drop
    if max_ratio is not None and max_ratio <= 0:
        raise TaoError(f"promote: --max-length-ratio is {max_ratio}; it must be above 0")
    if max_drop is not None and max_drop < 0:
        raise TaoError(f"promote: --max-general-drop is {max_drop}; it must be at least 0")
    general_file = args.general_prompts or run_data.general_prompts
    if args.general_reward and not general_file:
        raise TaoError("promote: --general-reward scores the general set; give --general-prompts FILE too")
    general = None
    if general_file:
        general_reward = ab_inputs.check_reward(args.general_reward or run_eval.general_reward
                                                or held_out.reward, "promote", "--general-reward")
        general = PromptSet(load_prompts(general_file, key="--general-prompts"), general_reward)
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise TaoError(f"promote: --out {out}: directory {out.parent} does not exist")
    candidate = ab_inputs.resolve_model(args.candidate, "promote: CANDIDATE")
    current = ab_inputs.resolve_model(args.current, "promote: --over")
    result, verdict = promote(candidate, current, PromptSet(held_out.prompts, held_out.reward), general,
                              ab_inputs.engine(args, held_out.max_tokens), Gate(max_ratio, max_drop),
                              held_out.scoring)
    if out is not None:
        write_json_atomic(out, result)
    print(json.dumps(result), flush=True)  # one line, as compare prints
    print(f"promote: {verdict}", file=sys.stderr, flush=True)
    return 0 if result["promote"] else 1
