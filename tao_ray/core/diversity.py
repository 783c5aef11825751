"""How different a group's responses are, and group-level signal metrics.

In: response texts (or their embedding vectors) of one group, and the group's rewards. Out: distances in [0, 2]
(cosine) or [0, 1] (Jaccard), keep/drop decisions for near-duplicates, and per-batch metrics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch

_TOKEN = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def jaccard_distance(a: str, b: str, n: int = 2) -> float:
    """1 - |A ∩ B| / |A ∪ B| over word n-gram sets (the lexical fallback). Two empty texts are identical."""
    set_a, set_b = set(ngrams(words(a), n)), set(ngrams(words(b), n))
    union = set_a | set_b
    return 0.0 if not union else 1.0 - len(set_a & set_b) / len(union)


def cosine_distance(u_D: torch.Tensor, v_D: torch.Tensor) -> float:
    """1 - cos(u, v), in [0, 2]."""
    return float(1.0 - torch.nn.functional.cosine_similarity(u_D, v_D, dim=0))


def select_distinct(candidates: Sequence, kept: Sequence, distance: Callable[[object, object], float],
                    min_distance: float) -> list[int]:
    """Indices of candidates to keep, greedily in order: a candidate closer than min_distance to anything already
    kept (earlier candidates included) is a near-duplicate and dropped."""
    accepted: list = list(kept)
    chosen = []
    for index, candidate in enumerate(candidates):
        if all(distance(candidate, other) >= min_distance for other in accepted):
            accepted.append(candidate)
            chosen.append(index)
    return chosen


def mean_pairwise_distance(items: Sequence, distance: Callable[[object, object], float]) -> float:
    pairs = [(i, j) for i in range(len(items)) for j in range(i + 1, len(items))]
    return sum(distance(items[i], items[j]) for i, j in pairs) / len(pairs) if pairs else 0.0


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique word n-grams / all word n-grams across the texts (0 when there are none)."""
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def signal_fraction(rewards_per_group: Sequence[Sequence[float]]) -> float:
    """Fraction of groups whose rewards are not all equal: only those give a group-relative learning signal."""
    groups = [g for g in rewards_per_group if len(g) >= 2]
    return sum(1 for g in groups if max(g) != min(g)) / len(groups) if groups else 0.0


def unique_score_fraction(rewards_per_group: Sequence[Sequence[float]]) -> float:
    """Mean over groups of (distinct scores / samples)."""
    groups = [g for g in rewards_per_group if g]
    return sum(len(set(g)) / len(g) for g in groups) / len(groups) if groups else 0.0


def batch_metrics(texts_per_group: Sequence[Sequence[str]], rewards_per_group: Sequence[Sequence[float | None]],
                  tokens_per_group: Sequence[int], distance_per_group: Sequence[float | None] | None = None,
                  drawn_per_group: Sequence[int] | None = None) -> dict[str, float | None]:
    """The per-iteration diversity record. Failed scores (None) are left out of the score metrics.

    tokens_per_group are the tokens *spent* per prompt (dropped near-duplicates included), so
    tokens_per_signal_group is the generation cost of one group that teaches the learner something.
    distance_per_group: each group's mean pairwise distance under the recipe's distance (else Jaccard is used).
    """
    groups = max(len(texts_per_group), 1)
    scored = [[r for r in group if r is not None] for group in rewards_per_group]
    signal_groups = sum(1 for g in scored if len(g) >= 2 and max(g) != min(g))
    jaccard = [mean_pairwise_distance(t, jaccard_distance) for t in texts_per_group]
    distances = [d for d in (distance_per_group or jaccard) if d is not None]
    kept = sum(len(t) for t in texts_per_group)
    return {
        "distinct_1": sum(distinct_n(t, 1) for t in texts_per_group) / groups,
        "distinct_2": sum(distinct_n(t, 2) for t in texts_per_group) / groups,
        "mean_pairwise_distance": sum(distances) / len(distances) if distances else None,
        "mean_pairwise_jaccard": sum(jaccard) / groups,
        "signal_fraction": signal_fraction(scored),
        "unique_score_fraction": unique_score_fraction(scored),
        "samples_drawn": sum(drawn_per_group) if drawn_per_group is not None else kept,
        "samples_kept": kept,
        "tokens_spent": sum(tokens_per_group),
        "tokens_per_signal_group": sum(tokens_per_group) / signal_groups if signal_groups else None,
    }
