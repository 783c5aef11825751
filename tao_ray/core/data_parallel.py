"""How a data-parallel step adds up over learner ranks.

DeepSpeed averages the ranks' gradients. For the step to equal the single-rank step on the whole batch, every rank
divides its loss sum by the *whole batch's* denominator (tokens, rows or pairs) times 1/world_size: the average of
the ranks' gradients is then the whole batch's mean gradient, however unevenly the groups fell on the ranks, and a
rank without a group adds zero instead of scaling the step down.
"""

from __future__ import annotations

# Metrics that are totals over the batch (summed over ranks), the same on every rank (taken from rank 0), or each
# rank's share of the whole batch's objective (averaged over all ranks, as DeepSpeed averages their gradients).
SUMMED = ("samples", "tokens")
SHARED = ("grad_norm",)
SHARES = ("loss",)


def rank_denominators(tokens: int, rows: int, pairs: int, world_size: int) -> dict[str, float]:
    """Per-rank loss denominators for a batch of `tokens` response tokens, `rows` rows and `pairs` DPO pairs."""
    return {name: max(total, 1) / world_size for name, total in (("tokens", tokens), ("rows", rows),
                                                                 ("pairs", pairs))}


def merge_metrics(per_rank: list[dict[str, float | None]]) -> dict[str, float | None]:
    """One record for the step: totals summed, shared values from rank 0, the slowest rank's seconds, and every
    other metric averaged over the ranks that had samples, weighted by their samples (an empty rank's zeros are
    not an observation)."""
    merged: dict[str, float | None] = {}
    weighted = [m for m in per_rank if m.get("samples")]
    for key in per_rank[0]:
        if key in SUMMED:
            merged[key] = sum(m[key] for m in per_rank)
        elif key in SHARED:
            merged[key] = per_rank[0][key]
        elif key in SHARES:
            merged[key] = sum(m[key] for m in per_rank) / len(per_rank)
        elif key == "seconds":
            merged[key] = max(m[key] for m in per_rank)
        else:
            total = sum(m["samples"] for m in weighted)
            merged[key] = sum(m[key] * m["samples"] for m in weighted) / total if total else None
    return merged
