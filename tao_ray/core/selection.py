"""Label-free model selection: which checkpoint is best, when to stop, and whether model A beats model B.

In: per-iteration held-out and training rewards (None where not measured), or paired per-prompt scores.
Out: an iteration, a stop reason (or None), or a win rate with a bootstrap confidence interval.

"Not measured" is None, never 0.0: an evaluation in which no answer could be scored says nothing about the model,
so it neither becomes the best checkpoint nor counts toward patience or the reward-hacking guard.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


def mean(values: list[float | None]) -> float | None:
    """Mean over the values measured (None: an answer the scorer could not rate); None when there are none (not
    measured), as summary.json reports it."""
    measured = [x for x in values if x is not None]
    return sum(measured) / len(measured) if measured else None


def best_iteration(heldout: list[float | None]) -> int | None:
    """Index of the highest held-out score, skipping unmeasured ones; the earliest wins ties (less training, same
    quality). None while nothing has been measured."""
    scored = [(score, -i) for i, score in enumerate(heldout) if score is not None]
    return -max(scored)[1] if scored else None


def stop_reason(heldout: list[float | None], train: list[float | None], patience: int | None,
                max_drop: float | None) -> str | None:
    """Why to stop now, or None. Index i holds iteration i's numbers (iteration 0 = the base model).

    - plateau: the best held-out score is `patience` or more evaluations old.
    - reward hacking: the training reward went up since the best iteration while the held-out score fell more than
      `max_drop` below the best: the policy is fitting the scorer, not the task.
    """
    evaluated = [i for i, score in enumerate(heldout) if score is not None]
    if len(evaluated) < 2:
        return None
    best = best_iteration(heldout)  # never None here: at least two evaluations were measured
    latest = evaluated[-1]
    if patience is not None and sum(1 for i in evaluated if i > best) >= patience:
        return f"plateau: held-out reward has not improved for {patience} evaluation(s) since iteration {best}"
    if max_drop is not None and heldout[best] - heldout[latest] > max_drop:
        train_at_best, train_now = train[best], train[latest]
        rising = train_now is not None and (train_at_best is None or train_now > train_at_best)
        if rising:
            return (f"reward hacking guard: train reward rose to {train_now:.3f} while held-out fell from "
                    f"{heldout[best]:.3f} (iteration {best}) to {heldout[latest]:.3f}, more than {max_drop}")
    return None


@dataclass(frozen=True)
class WinRate:
    win_rate: float
    """P(A scores higher than B on a prompt), ties counted as half a win."""
    ci_low: float
    ci_high: float
    mean_diff: float
    """Mean of A - B over prompts."""
    prompts: int


def win_rate(scores_a: list[float], scores_b: list[float], resamples: int = 2000, seed: int = 0,
             confidence: float = 0.95) -> WinRate:
    """Paired win rate of A over B with a percentile bootstrap over prompts."""
    if len(scores_a) != len(scores_b) or not scores_a:
        raise ValueError("win_rate needs two equally long, non-empty lists of paired scores")
    outcomes = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(scores_a, scores_b)]
    n = len(outcomes)
    rng = random.Random(seed)
    boots = sorted(sum(outcomes[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1.0 - confidence) / 2
    low = boots[int(tail * (resamples - 1))]
    high = boots[int((1.0 - tail) * (resamples - 1))]
    diff = sum(a - b for a, b in zip(scores_a, scores_b)) / n
    return WinRate(sum(outcomes) / n, low, high, diff, n)


def length_ratio(lengths: list[int], base_lengths: list[int]) -> float | None:
    """Mean response length over the base model's mean on the same prompts: what serving the model costs relative
    to the base (decode time grows with tokens). None when either is empty or the base answered with nothing."""
    if not lengths or not base_lengths or not sum(base_lengths):
        return None
    return (sum(lengths) / len(lengths)) / (sum(base_lengths) / len(base_lengths))


def guard_vetoes(ratio: float | None, max_length_ratio: float | None, general_delta: float | None,
                 max_general_drop: float | None, general_ci_high: float | None = None,
                 min_length_ratio: float | None = None) -> list[str]:
    """Why a model may not replace the base, one line per failed guard; [] when none failed. Unmeasured numbers
    (None) and guards turned off (None) veto nothing. A general-set drop vetoes only when it is also more than
    noise: the upper end of the 95% CI of the model's win rate over the base on that set is below 0.5 (a small set
    moves by a few prompts from one iteration to the next)."""
    reasons = []
    if ratio is not None and max_length_ratio is not None and ratio > max_length_ratio:
        reasons.append(f"answers are {ratio:.2f}x as long as the base model's (limit {max_length_ratio:g}x): "
                       "it would cost more to serve")
    if ratio is not None and min_length_ratio is not None and ratio < min_length_ratio:
        reasons.append(f"answers are {ratio:.2f}x as long as the base model's (at least {min_length_ratio:g}x): "
                       "a gain bought by brevity")
    significant = general_ci_high is None or general_ci_high < 0.5
    if general_delta is not None and max_general_drop is not None and general_delta < -max_general_drop \
            and significant:
        reasons.append(f"general-prompt reward fell {-general_delta:.3f} below the base model's (limit "
                       f"{max_general_drop:g}, win rate CI below 0.5): a skill outside the task was traded away")
    return reasons


@dataclass(frozen=True)
class PairedScores:
    """Two models' scores on one prompt set, reduced to what an A/B decision reads. Prompts where either answer
    could not be scored are left out of every number (a failed score says nothing about either model); with no
    scored pair left, the numbers are None."""

    prompts: int
    scored_pairs: int
    win_rate: float | None
    """P(A scores higher than B on a prompt), ties counted as half a win."""
    ci95: tuple[float, float] | None
    mean_a: float | None
    mean_b: float | None
    mean_diff: float | None
    """mean_a - mean_b."""


def paired_scores(scores_a: list[float | None], scores_b: list[float | None], seed: int = 0) -> PairedScores:
    if len(scores_a) != len(scores_b):
        raise ValueError("paired_scores needs one score per prompt from each model")
    pairs = [(a, b) for a, b in zip(scores_a, scores_b) if a is not None and b is not None]
    if not pairs:
        return PairedScores(len(scores_a), 0, None, None, None, None, None)
    result = win_rate([a for a, _ in pairs], [b for _, b in pairs], seed=seed)
    mean_a = sum(a for a, _ in pairs) / len(pairs)
    mean_b = sum(b for _, b in pairs) / len(pairs)
    return PairedScores(len(scores_a), len(pairs), result.win_rate, (result.ci_low, result.ci_high), mean_a, mean_b,
                        result.mean_diff)


def matched_length_versus(scores: list[float | None], base: list[float | None], lengths: list[int],
                          base_lengths: list[int], tolerance: float = 0.25) -> dict[str, Any] | None:
    """The win rate over the base among the prompts whose answer is about as long as the base model's (within
    `tolerance` of its length): a reward gained by answering shorter or longer does not count here. None when no
    prompt's answers are comparable."""
    keep = [i for i, (n, m) in enumerate(zip(lengths, base_lengths, strict=True))
            if m and abs(n - m) <= tolerance * m]
    result = paired_scores([scores[i] for i in keep], [base[i] for i in keep])
    if not result.scored_pairs:
        return None
    return {"pairs": result.scored_pairs, "win_rate": result.win_rate, "ci95_low": result.ci95[0],
            "ci95_high": result.ci95[1]}


def behaviour_rates(per_sample: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per behaviour (constraint or instruction type), its pass rate over the samples that asked for it and how
    many did: {type: {"rate": r, "n": n}}, types sorted."""
    totals: dict[str, list[float]] = {}
    for sample in per_sample:
        for kind, passed in sample.items():
            totals.setdefault(kind, []).append(passed)
    return {kind: {"rate": sum(values) / len(values), "n": len(values)} for kind, values in sorted(totals.items())}
