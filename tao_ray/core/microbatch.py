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


def split(lengths: list[int], parts: int, unit: int = 1) -> list[list[int]]:
    """`parts` contiguous chunks of row indices with near-equal token totals (some may be empty).
    Chunk boundaries fall on multiples of `unit`."""
    units = [list(range(i, min(i + unit, len(lengths)))) for i in range(0, len(lengths), unit)]
    unit_tokens = [sum(lengths[j] for j in u) for u in units]
    total = sum(unit_tokens)
    chunks: list[list[int]] = [[] for _ in range(parts)]
    filled, part = 0, 0
    for rows, tokens in zip(units, unit_tokens):
        # Move to the next chunk once this one holds its share, keeping at least one unit per remaining chunk.
        units_left = len(units) - sum(len(c) for c in chunks) // unit
        if chunks[part] and (filled >= total * (part + 1) / parts or units_left <= parts - part - 1):
            part = min(part + 1, parts - 1)
        chunks[part].extend(rows)
        filled += tokens
    return chunks
