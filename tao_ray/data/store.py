"""The flywheel's prompt store: production prompts, deduplicated and decontaminated, in numbered versions.

Layout of a store directory DIR:
    DIR/store.json                      {"format": 1, "newest": "v0002", "versions": 2}
    DIR/versions/v0001/prompts.jsonl    every prompt stored so far (a prompt file, see prompts.py)
    DIR/versions/v0001/manifest.json    what this ingest read, added and dropped, and why
Each stored prompt keeps its original keys, gets a stable id ("s-" + a hash of its normalized text; the log's own id,
if any, moves to metadata.source_id) and metadata.source (the log file), arrived_at (UTC, ISO 8601) and version.
Every version holds ALL prompts so far, so a recipe reads one file, and an older version stays a valid, fixed set
(a run pins one by naming DIR/versions/vNNNN).

`ingest` drops, in this order: exact duplicates (the same normalized text as a stored prompt or an earlier line),
contaminated prompts (sharing a word n-gram with, or embedding within `contamination_distance` of, a prompt of a
held-out or evaluation file), and near duplicates (embedding within `near_duplicate_distance` of a stored prompt or
an earlier line). An ingest that adds nothing writes no version. Writes are atomic: a version directory is built
under a temporary name and renamed, then store.json is replaced; an exclusive lock keeps concurrent ingests apart.
In: file paths and an `embed(texts) -> [unit vector]` callable (tao_ray.data.embeddings.Embedder, or a stand-in in
tests). No Ray.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tao_ray.data.decontamination import (
    CONTAMINATION_DISTANCE,
    NEAR_DUPLICATE_DISTANCE,
    NGRAM,
    Embed,
    References,
    distances,
    nearest,
    prompt_key,
    prompt_text,
)
from tao_ray.data.jsonl import read_objects
from tao_ray.data.prompts import _record as parse_record
from tao_ray.errors import TaoError

FORMAT = 1
STORE_FILE = "store.json"
PROMPTS_FILE = "prompts.jsonl"
MANIFEST_FILE = "manifest.json"
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_name(number: int) -> str:
    return f"v{number:04d}"


def newest_version(store: Path) -> Path | None:
    """The newest version's directory, or None for a store with none yet (or no store there)."""
    pointer = store / STORE_FILE
    if not pointer.is_file():
        return None
    try:
        newest = json.loads(pointer.read_text())["newest"]
    except (ValueError, KeyError, TypeError):
        raise TaoError(f"{pointer}: not a prompt store's {STORE_FILE} (no \"newest\"); was it edited by "
                       "hand?") from None
    return store / "versions" / newest


def is_store(path: Path) -> bool:
    return (path / STORE_FILE).is_file()


def prompts_file(path: Path) -> Path:
    """The prompt file behind data.train_prompts: a store's newest version, a version directory, or a file."""
    if path.is_dir() and is_store(path):
        return newest_version(path) / PROMPTS_FILE
    if path.is_dir() and (path / MANIFEST_FILE).is_file():
        return path / PROMPTS_FILE
    return path


@dataclass
class _Candidate:
    line: int
    obj: dict[str, Any]
    text: str
    key: str


@dataclass
class IngestResult:
    manifest: dict[str, Any]
    version_dir: Path | None
    """None when nothing was added (no version written)."""
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        counts = self.manifest["counts"]
        by_file = ", ".join(f"{f}: {n}" for f, n in self.manifest["contaminated_by"].items())
        where = f"as {self.manifest['version']}" if self.version_dir else "(nothing new: no version written)"
        return (f"ingested {self.manifest['source']['file']} {where}: {counts['read']} read, {counts['added']} added, "
                f"{counts['exact_duplicates']} exact duplicates, {counts['near_duplicates']} near duplicates, "
                f"{counts['contaminated']} contaminated{f' ({by_file})' if by_file else ''}; "
                f"{counts['total']} prompts in the store")


def _read_log(path: Path) -> list[_Candidate]:
    if not path.is_file():
        raise TaoError(f"{path}: prompt log not found; check the path")
    candidates = []
    for index, (where, obj) in enumerate(read_objects(path)):
        record = parse_record(obj, where, index)  # the prompt file format: one clear error per bad line
        text = prompt_text(record.messages)
        candidates.append(_Candidate(line=int(where.rsplit(" ", 1)[1]), obj=obj, text=text, key=prompt_key(text)))
    if not candidates:
        raise TaoError(f"{path}: prompt log has no prompts; add one JSON object per line")
    return candidates


def _stored(version_dir: Path | None) -> list[dict[str, Any]]:
    if version_dir is None:
        return []
    with open(version_dir / PROMPTS_FILE, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_atomic(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(store: Path):
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ingest(store: str | Path, log: str | Path, embed: Embed, decontaminate: Sequence[str | Path] = (),
           near_duplicate_distance: float = NEAR_DUPLICATE_DISTANCE,
           contamination_distance: float = CONTAMINATION_DISTANCE, ngram: int = NGRAM,
           now: datetime.datetime | None = None) -> IngestResult:
    """Add the new prompts of `log` to the store at `store` (created if missing) as its next version."""
    store, log = Path(store), Path(log)
    if store.exists() and not store.is_dir():
        raise TaoError(f"{store}: --store must be a directory (a prompt store, or a new one to create)")
    # .lock alone is what an interrupted first ingest leaves: the directory is still ours to fill.
    if store.is_dir() and any(p.name != ".lock" for p in store.iterdir()) and not is_store(store):
        raise TaoError(f"{store}: --store names a non-empty directory that is not a prompt store (no {STORE_FILE}); "
                       "name a new directory or an existing store")
    candidates = _read_log(log)
    references = References(decontaminate, embed, ngram, contamination_distance)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    with _locked(store):
        previous = newest_version(store)
        stored = _stored(previous)
        number = int(previous.name[1:]) + 1 if previous else 1
        dropped: list[dict[str, Any]] = []
        contaminated_by = {file: 0 for file in references.files}

        def drop(candidate: _Candidate, reason: str, **detail: Any) -> None:
            dropped.append({"line": candidate.line, "reason": reason, **detail})

        # 1. Exact duplicates, against the store and earlier lines of this log.
        seen = {prompt_key(prompt_text(parse_record(obj, "stored", 0).messages)) for obj in stored}
        fresh = []
        for candidate in candidates:
            if candidate.key in seen:
                drop(candidate, "exact_duplicate")
            else:
                seen.add(candidate.key)
                fresh.append(candidate)
        vectors = list(embed([c.text for c in fresh])) if fresh else []
        # 2. Contamination: shared word n-grams or a close embedding, against every held-out/evaluation prompt.
        clean, clean_vectors = [], []
        for candidate, vector in zip(fresh, vectors):
            hit = references.copied_by(candidate.text, vector)
            if hit is not None:
                contaminated_by[hit[0]] += 1
                drop(candidate, "contaminated", file=hit[0], by=hit[1])
            else:
                clean.append(candidate)
                clean_vectors.append(vector)
        # 3. Near duplicates, against the store and the prompts kept so far from this log.
        stored_vectors = list(embed([prompt_text(parse_record(o, "stored", 0).messages) for o in stored])) \
            if stored and clean else []
        to_stored = distances(clean_vectors, stored_vectors)
        added, kept_vectors = [], []
        for i, (candidate, vector) in enumerate(zip(clean, clean_vectors)):
            near = min(float(to_stored[i].min()) if to_stored.shape[1] else 2.0, nearest(vector, kept_vectors))
            if near < near_duplicate_distance:
                drop(candidate, "near_duplicate", distance=round(near, 4))
            else:
                added.append(candidate)
                kept_vectors.append(vector)

        name = version_name(number)
        counts = {"read": len(candidates), "added": len(added),
                  "exact_duplicates": sum(d["reason"] == "exact_duplicate" for d in dropped),
                  "near_duplicates": sum(d["reason"] == "near_duplicate" for d in dropped),
                  "contaminated": sum(d["reason"] == "contaminated" for d in dropped),
                  "total": len(stored) + len(added)}
        manifest = {
            "format": FORMAT, "version": name, "previous": previous.name if previous else None,
            "created_at": now.isoformat(timespec="seconds"),
            "source": {"file": str(log.resolve()), "sha256": file_sha256(log)},
            "counts": counts, "contaminated_by": contaminated_by,
            "decontaminated_against": [{"file": str(path.resolve()), "sha256": file_sha256(path)}
                                       for path in map(Path, references.files)],
            "settings": {"near_duplicate_distance": near_duplicate_distance,
                         "contamination_distance": contamination_distance, "ngram": ngram},
            "dropped": dropped,
        }
        if not added:
            return IngestResult(manifest, None, dropped)
        rows = stored + [_stored_row(c, log, now, number) for c in added]
        versions = store / "versions"
        versions.mkdir(exist_ok=True)
        building = Path(tempfile.mkdtemp(dir=versions, prefix=f".{name}."))
        try:
            (building / PROMPTS_FILE).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                 encoding="utf-8")
            (building / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            os.rename(building, versions / name)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        write_atomic(store / STORE_FILE, json.dumps({"format": FORMAT, "newest": name, "versions": number}) + "\n")
        return IngestResult(manifest, versions / name, dropped)


def _stored_row(candidate: _Candidate, log: Path, now: datetime.datetime, number: int) -> dict[str, Any]:
    row = dict(candidate.obj)
    metadata = dict(row.get("metadata") or {})
    if "id" in row:
        metadata["source_id"] = row["id"]
    metadata.update({"source": str(log.resolve()), "source_line": candidate.line,
                     "arrived_at": now.isoformat(timespec="seconds"), "version": number})
    row["id"] = f"s-{candidate.key[:16]}"
    row["metadata"] = metadata
    return row
