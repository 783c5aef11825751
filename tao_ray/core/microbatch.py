"""Micro-batch planning: how many micro-batches a learner step needs, and which rows go in each.

In: per-row token counts (prompt + response) of one rank's shard. Out: row-index chunks. Every rank must run the
same number of micro-batches (ZeRO's gradient reduction is collective), so the driver takes the largest count over
the shards and every rank splits its own rows into exactly that many chunks, balanced by tokens.
"""

from __future__ import annotations

import math


def count(lengths: list[int], max_rows: int, max_tokens: int | None, unit: int = 1) -> int:
    """Micro-batches needed so that none holds more than max_rows rows or (roughly) max_tokens tokens.
    `unit` rows always travel together (2 for DPO's chosen/rejected pairs)."""
    if not lengths:
        return 1
    by_rows = math.ceil(len(lengths) / max(unit, max_rows - max_rows % unit))
    by_tokens = math.ceil(sum(lengths) / max_tokens) if max_tokens else 1
    return max(1, by_rows, min(by_tokens, len(lengths) // unit))


def split(lengths: list[int], parts: int, unit: int = 1, group_ids: list[int] | None = None) -> list[list[int]]:
    """`parts` chunks of row indices (some may be empty) with near-equal unit counts, so none holds more rows than
    `count` planned. Rows of similar length go together (units sorted by tokens): a micro-batch is padded to its
    longest row, so mixing short and long rows wastes compute on padding. Each chunk lists its rows in order;
    the `unit` rows of a unit (2 for DPO's chosen/rejected pairs) stay in one chunk.

    With `group_ids` (one per row; rows of a group share their prompt), a micro-batch packs each group as one
    sequence (core.shared_prefix): units are ordered by their group's tokens and then by group, so a group's rows
    sit next to each other and stay in one chunk unless the chunk boundary falls inside it."""
    units = [list(range(i, min(i + unit, len(lengths)))) for i in range(0, len(lengths), unit)]
    if group_ids is None:
        ordered = sorted(units, key=lambda rows: sum(lengths[j] for j in rows))  # stable: ties keep batch order
    else:
        group_tokens: dict[int, int] = {}
        for j, g in enumerate(group_ids):
            group_tokens[g] = group_tokens.get(g, 0) + lengths[j]
        ordered = sorted(units, key=lambda rows: (group_tokens[group_ids[rows[0]]], group_ids[rows[0]]))
    per_part, extra = divmod(len(units), parts)
    chunks, start = [], 0
    for part in range(parts):
        size = per_part + (1 if part < extra else 0)
        chunks.append(sorted(j for rows in ordered[start:start + size] for j in rows))
        start += size
    return chunks
