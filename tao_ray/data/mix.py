"""Which stored prompts a run trains on, and how often: `data.mix` over a prompt store's versions.

In: the prompt records of a store version (each with metadata.version, the version it arrived in) and the recipe's
mix. Out: the records to train on and, for upweight_recent, one sampling weight per record (None: uniform).
- all: every stored prompt, uniformly (the default).
- recent: only prompts that arrived in the newest `recent_versions` versions.
- upweight_recent: every prompt, weighted 0.5 ** (age / half_life_versions), age being how many versions older
  than the newest it is: with a half-life of 1, last version's prompts are drawn half as often as the newest ones.
Pure: no file is read here (see store.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from tao_ray.data.prompts import PromptRecord

MIXES = ("all", "recent", "upweight_recent")


def version_of(record: PromptRecord) -> int | None:
    version = record.metadata.get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def select(records: Sequence[PromptRecord], mix: str, recent_versions: int = 1,
           half_life_versions: float = 1.0) -> tuple[list[PromptRecord], list[float] | None]:
    """(records to train on, their sampling weights or None). Raises ValueError for a mix other than `all` when a
    record has no version (the file is not a prompt store's)."""
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; use one of: {', '.join(MIXES)}")
    if mix == "all":
        return list(records), None
    versions = [version_of(r) for r in records]
    if any(v is None for v in versions):
        raise ValueError(f"mix {mix} needs a prompt store (every prompt's metadata.version), made by tao-ray ingest")
    newest = max(versions)
    if mix == "recent":
        return [r for r, v in zip(records, versions) if v > newest - recent_versions], None
    return list(records), [0.5 ** ((newest - v) / half_life_versions) for v in versions]
