"""The A/B gate: promote a candidate over the current model only when it wins on the held-out prompts and no guard
objects.

In: both models' per-prompt scores (None where an answer could not be scored) and response lengths in tokens on
the held-out prompts, optionally their scores on a general (out-of-domain) prompt set, and the thresholds.
Out: a `Decision`: promote or not, one verdict line per check, and the evidence behind each.

The checks, every one of which must pass:
- win: the 95% bootstrap CI of the candidate's win rate lies above 0.5 (a tie or a coin flip is not a win);
- serving cost: the candidate's mean response length is at most `max_length_ratio` x the current model's (a model
  that wins by writing more costs more to serve, and judges and verifiers often favour length);
- trade-off: on the general set, the candidate's mean score is at most `max_general_drop` below the current
  model's (tuning for one task must not quietly cost the others).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tao_ray.core.selection import PairedScores, mean, paired_scores


@dataclass(frozen=True)
class LengthEvidence:
    mean_candidate: float | None
    """Mean response length in tokens over all held-out prompts (scored or not: a length is always known)."""
    mean_current: float | None
    ratio: float | None
    """mean_candidate / mean_current; None when the current model's answers are all empty and the candidate's not."""
    max_ratio: float | None
    """The veto threshold; None: the guard is off."""


@dataclass(frozen=True)
class GeneralEvidence:
    scores: PairedScores
    """Candidate (a) against current (b) on the general set."""
    drop: float | None
    """mean_current - mean_candidate (positive: the candidate got worse)."""
    max_drop: float | None
    """The veto threshold; None: the guard is off (the set is only reported)."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]
    """One line per check, starting with "pass:" or "fail:"."""
    heldout: PairedScores
    """Candidate (a) against current (b) on the held-out prompts."""
    length: LengthEvidence
    general: GeneralEvidence | None

    def verdict(self) -> str:
        """One line for a person: the outcome and why (the failed checks, or the win)."""
        if self.promote:
            return f"promote candidate ({self.reasons[0].removeprefix('pass: ')})"
        failed = [reason.removeprefix("fail: ") for reason in self.reasons if reason.startswith("fail: ")]
        return f"keep current ({'; '.join(failed)})"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data, each set's means named for the model they belong to."""
        general = None
        if self.general is not None:
            general = {**_named(self.general.scores), "drop": self.general.drop, "max_drop": self.general.max_drop}
        return {"promote": self.promote, "reasons": list(self.reasons), "heldout": _named(self.heldout),
                "length": dataclasses.asdict(self.length), "general": general}


def _named(scores: PairedScores) -> dict[str, Any]:
    return {"prompts": scores.prompts, "scored_pairs": scores.scored_pairs, "win_rate": scores.win_rate,
            "ci95": list(scores.ci95) if scores.ci95 else None, "mean_candidate": scores.mean_a,
            "mean_current": scores.mean_b, "mean_diff": scores.mean_diff}


def _ci(scores: PairedScores) -> str:
    low, high = scores.ci95
    return f"CI [{low:.2f}, {high:.2f}]"


def _win_check(heldout: PairedScores) -> tuple[bool, str]:
    if not heldout.scored_pairs:
        return False, (f"no held-out prompt could be scored for both models (0 of {heldout.prompts}); nothing "
                       "shows the candidate is better")
    summary = f"win rate {heldout.win_rate:.2f}, {_ci(heldout)} over {heldout.scored_pairs} prompts"
    if heldout.ci95[0] > 0.5:
        return True, f"{summary} lies above 0.5"
    return False, f"{summary} does not exclude 0.5"


def _length_check(lengths_candidate: list[int], lengths_current: list[int],
                  max_ratio: float | None) -> tuple[bool, str, LengthEvidence]:
    mean_candidate, mean_current = mean(lengths_candidate), mean(lengths_current)
    if not mean_current:  # empty answers (or none at all): a ratio over zero is unbounded unless both are zero
        ratio = 1.0 if not mean_candidate else None
    else:
        ratio = mean_candidate / mean_current
    evidence = LengthEvidence(mean_candidate, mean_current, ratio, max_ratio)
    if ratio is None:
        passed = max_ratio is None
        summary = f"mean response length {mean_candidate:.1f} tokens against the current model's empty answers"
    else:
        passed = max_ratio is None or ratio <= max_ratio
        summary = (f"mean response length {mean_candidate or 0:.1f} vs {mean_current or 0:.1f} tokens, ratio "
                   f"{ratio:.2f}")
    if max_ratio is None:
        return passed, f"{summary} (length guard off)", evidence
    return passed, f"{summary} {'within' if passed else 'exceeds'} the limit {max_ratio}", evidence


def _general_check(scores: PairedScores, max_drop: float | None) -> tuple[bool, str, GeneralEvidence]:
    if not scores.scored_pairs:
        evidence = GeneralEvidence(scores, None, max_drop)
        return False, (f"general set: no prompt could be scored for both models (0 of {scores.prompts}); the "
                       "trade-off is unknown"), evidence
    drop = scores.mean_b - scores.mean_a
    evidence = GeneralEvidence(scores, drop, max_drop)
    passed = max_drop is None or drop <= max_drop
    limit = "(guard off)" if max_drop is None else f"{'within' if passed else 'exceeds'} the limit {max_drop}"
    summary = (f"general set: mean {scores.mean_a:.3f} vs {scores.mean_b:.3f}, a drop of {drop:.3f} {limit} "
               f"(win rate {scores.win_rate:.2f}, {_ci(scores)})")
    return passed, summary, evidence


def decide(scores_candidate: list[float | None], scores_current: list[float | None], lengths_candidate: list[int],
           lengths_current: list[int], general_candidate: list[float | None] | None = None,
           general_current: list[float | None] | None = None, max_length_ratio: float | None = 2.0,
           max_general_drop: float | None = 0.05, seed: int = 0) -> Decision:
    """Index i of each list is prompt i of its set. Without a general set, the trade-off check is left out."""
    heldout = paired_scores(scores_candidate, scores_current, seed)
    checks = [_win_check(heldout)]
    length_passed, length_reason, length = _length_check(lengths_candidate, lengths_current, max_length_ratio)
    checks.append((length_passed, length_reason))
    general = None
    if general_candidate is not None and general_current is not None:
        general_passed, general_reason, general = _general_check(
            paired_scores(general_candidate, general_current, seed), max_general_drop)
        checks.append((general_passed, general_reason))
    reasons = [f"{'pass' if passed else 'fail'}: {reason}" for passed, reason in checks]
    return Decision(all(passed for passed, _ in checks), reasons, heldout, length, general)
