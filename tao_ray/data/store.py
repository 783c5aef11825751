"""The flywheel's prompt store: production prompts, deduplicated and decontaminated, in numbered versions
(the layout on disk is in store_layout.py).

Each stored prompt keeps its original keys, gets a stable id ("s-" + a hash of its normalized text; the log's own id,
if any, moves to metadata.source_id) and metadata.source (the log file), source_line, arrived_at (UTC, ISO 8601) and
version. A version is the list of shards so far, so a recipe names one version and reads a fixed set.

`ingest` streams the log in chunks and drops, in this order: exact duplicates (the same normalized text as a stored
prompt or an earlier line: a hash set), contaminated prompts (a word n-gram or most shingles shared with, or an
embedding within `contamination_distance` of, a prompt of a held-out or evaluation file: decontamination.References)
and near duplicates (an embedding within `near_duplicate_distance` of a stored prompt, found in the store's saved
nearest-neighbour index, or of a prompt kept earlier from this log). Its cost grows with the log, not with the store:
stored prompts are never embedded again. An ingest that adds nothing writes no version. Writes are atomic (new files,
then store.json replaced) and an exclusive lock keeps concurrent ingests apart.
In: file paths and an `Embedding` (embeddings.LocalEmbedding in this process, or runtime/embedding_pool.py's Ray Data
pipeline over the cluster). No Ray here.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tao_ray.data.decontamination import (
    CONTAMINATION_DISTANCE,
    NEAR_DUPLICATE_DISTANCE,
    NGRAM,
    References,
    prompt_key,
    prompt_text,
)
from tao_ray.data.embeddings import Embedding, embedding_matrix
from tao_ray.data.jsonl import read_objects
from tao_ray.data.prompts import _record as parse_record
from tao_ray.data.store_layout import (
    FORMAT,
    INDEX,
    MANIFEST_FILE,
    SHARDS,
    STORE_FILE,
    VERSIONS,
    file_sha256,
    is_store,
    locked,
    read_pointer,
    remove_unreferenced,
    version_name,
    version_objects,
    write_atomic,
)
from tao_ray.data.vector_index import VectorIndex
from tao_ray.errors import TaoError

CHUNK_ROWS = 4096
"""Log lines per chunk handed to the embedder: memory is bounded by chunks in flight, not by the log."""
SHARD_ROWS = 200_000
"""Prompts per Parquet shard: one ingest of a large log writes several."""


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


def _key_digest(key: str) -> bytes:
    return bytes.fromhex(key[:32])  # 128 bits: a set of a million keys stays small


def _chunk(rows: list[tuple[int, str, str, str]]) -> pa.Table:
    lines, keys, texts, records = zip(*rows)
    return pa.table({"line": pa.array(lines, pa.int64()), "key": list(keys), "text": list(texts),
                     "record": list(records)})


def read_fresh(log: Path, seen: set[bytes], dropped: list[dict[str, Any]],
               chunk_rows: int = CHUNK_ROWS) -> Iterator[pa.Table]:
    """The log's prompts that are not exact duplicates (of `seen`, which grows, or of an earlier line), in chunks of
    (line, key, text, record). Every line is validated as a prompt line; the first bad one is a TaoError."""
    rows = []
    for index, (where, obj) in enumerate(read_objects(log)):
        record = parse_record(obj, where, index)  # the prompt file format: one clear error per bad line
        line = int(where.rsplit(" ", 1)[1])
        text = prompt_text(record.messages)
        key = prompt_key(text)
        if _key_digest(key) in seen:
            dropped.append({"line": line, "reason": "exact_duplicate"})
            continue
        seen.add(_key_digest(key))
        rows.append((line, key, text, json.dumps(obj, ensure_ascii=False)))
        if len(rows) == chunk_rows:
            yield _chunk(rows)
            rows = []
    if rows:
        yield _chunk(rows)


class ShardWriter:
    """New shards of stored prompts, written under temporary names until `commit`."""

    def __init__(self, folder: Path, prefix: str, dim: int):
        self.folder, self.prefix, self.dim = folder, prefix, dim
        self.schema = pa.schema([("id", pa.string()), ("key", pa.string()), ("text", pa.string()),
                                 ("record", pa.string()), ("version", pa.int32()),
                                 ("embedding", pa.list_(pa.float32(), dim))])
        self.names: list[str] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0

    def write(self, rows: list[dict[str, Any]], vectors: np.ndarray) -> None:
        if not rows:
            return
        if self._writer is None or self._rows >= SHARD_ROWS:
            self._close()
            self.names.append(f"{self.prefix}-{len(self.names):03d}.parquet")
            self._writer = pq.ParquetWriter(self._temporary(self.names[-1]), self.schema)
            self._rows = 0
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        table = pa.table({"id": [r["id"] for r in rows], "key": [r["_key"] for r in rows],
                          "text": [r["_text"] for r in rows],
                          "record": [json.dumps({k: v for k, v in r.items() if not k.startswith("_")},
                                                ensure_ascii=False) for r in rows],
                          "version": pa.array([r["metadata"]["version"] for r in rows], pa.int32()),
                          "embedding": pa.FixedSizeListArray.from_arrays(flat, self.dim)}, schema=self.schema)
        self._writer.write_table(table)
        self._rows += len(rows)

    def commit(self) -> list[str]:
        self._close()
        for name in self.names:
            os.replace(self._temporary(name), self.folder / name)
        return self.names

    def discard(self) -> None:
        self._close()
        for name in self.names:
            self._temporary(name).unlink(missing_ok=True)

    def _temporary(self, name: str) -> Path:
        return self.folder / f".{name}.tmp"

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class NearDuplicates:
    """Keeps a prompt unless its embedding is within `distance` of an indexed one (the store, and what this ingest
    kept before) or of one kept earlier in the same batch (compared exactly)."""

    def __init__(self, index: VectorIndex, distance: float):
        self.index, self.distance = index, distance

    def keep(self, vectors: np.ndarray) -> tuple[list[int], np.ndarray]:
        """(positions kept, each row's nearest distance); the kept vectors join the index."""
        nearest, _ = self.index.nearest(vectors)
        similar = vectors @ vectors.T
        kept: list[int] = []
        for i in range(len(vectors)):
            if kept:
                nearest[i] = min(nearest[i], 1.0 - float(similar[i, kept].max()))
            if nearest[i] >= self.distance:
                kept.append(i)
        self.index.add(vectors[kept])
        return kept, nearest


def _stored_row(obj: dict[str, Any], line: int, key: str, text: str, log: Path, now: datetime.datetime,
                number: int) -> dict[str, Any]:
    row = dict(obj)
    metadata = dict(row.get("metadata") or {})
    if "id" in row:
        metadata["source_id"] = row["id"]
    metadata.update({"source": str(log.resolve()), "source_line": line,
                     "arrived_at": now.isoformat(timespec="seconds"), "version": number})
    row["id"] = f"s-{key[:16]}"
    row["metadata"] = metadata
    return {**row, "_key": key, "_text": text}


def _check_store_dir(store: Path) -> None:
    if store.exists() and not store.is_dir():
        raise TaoError(f"{store}: --store must be a directory (a prompt store, or a new one to create)")
    # .lock alone is what an interrupted first ingest leaves: the directory is still ours to fill.
    if store.is_dir() and any(p.name != ".lock" for p in store.iterdir()) and not is_store(store):
        raise TaoError(f"{store}: --store names a non-empty directory that is not a prompt store (no {STORE_FILE}); "
                       "name a new directory or an existing store")


def _stored_keys(store: Path, shards: Sequence[str]) -> set[bytes]:
    seen: set[bytes] = set()
    for name in shards:
        for batch in pq.ParquetFile(store / SHARDS / name).iter_batches(columns=["key"], batch_size=65536):
            seen.update(_key_digest(k) for k in batch.column(0).to_pylist())
    return seen


def migrate(store: Path, pointer: dict[str, Any], embedding: Embedding) -> dict[str, Any]:
    """A format-1 store (every version a full JSONL file) gains a shard and an index holding its newest version's
    prompts, embedded once; its versions stay readable as they are. Returns the new pointer."""
    objects = [obj for _, obj in version_objects(store / VERSIONS / pointer["newest"])]

    def chunks() -> Iterator[pa.Table]:
        for start in range(0, len(objects), CHUNK_ROWS):
            rows = []
            for line, obj in enumerate(objects[start:start + CHUNK_ROWS], start=start + 1):
                text = prompt_text(parse_record(obj, f"{store}: stored row {line}", line).messages)
                rows.append((line, prompt_key(text), text, json.dumps(obj, ensure_ascii=False)))
            yield _chunk(rows)

    (store / SHARDS).mkdir(exist_ok=True)
    (store / INDEX).mkdir(exist_ok=True)
    writer, index = None, None
    for table in embedding.stream(chunks()):
        vectors = embedding_matrix(table)
        if writer is None:
            writer, index = ShardWriter(store / SHARDS, f"{pointer['newest']}-migrated", vectors.shape[1]), \
                VectorIndex(vectors.shape[1])
        rows = [{**json.loads(r), "_key": k, "_text": t} for r, k, t in zip(
            table["record"].to_pylist(), table["key"].to_pylist(), table["text"].to_pylist())]
        writer.write(rows, vectors)
        index.add(vectors)
    index_name = f"{INDEX}/{pointer['newest']}-migrated.faiss"
    index.save(store / index_name)
    migrated = {"format": FORMAT, "newest": pointer["newest"], "versions": pointer["versions"],
                "shards": writer.commit(), "index": index_name,
                "embedder": {"name": embedding.name, "dim": index.dim}, "migrated_from_format": 1}
    write_atomic(store / STORE_FILE, json.dumps(migrated) + "\n")
    return migrated


def ingest(store: str | Path, log: str | Path, embedding: Embedding, decontaminate: Sequence[str | Path] = (),
           near_duplicate_distance: float = NEAR_DUPLICATE_DISTANCE,
           contamination_distance: float = CONTAMINATION_DISTANCE, ngram: int = NGRAM,
           now: datetime.datetime | None = None) -> IngestResult:
    """Add the new prompts of `log` to the store at `store` (created if missing) as its next version."""
    store, log = Path(store), Path(log)
    _check_store_dir(store)
    if not log.is_file():
        raise TaoError(f"{log}: prompt log not found; check the path")
    for _ in read_objects(log):
        break
    else:
        raise TaoError(f"{log}: prompt log has no prompts; add one JSON object per line")
    references = References(decontaminate, embedding.embed, ngram, contamination_distance)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    seconds: dict[str, float] = {}
    with locked(store):
        started = time.perf_counter()
        pointer = read_pointer(store)
        removed = remove_unreferenced(store, pointer)
        migrated = pointer is not None and pointer["format"] == 1
        if migrated:
            pointer = migrate(store, pointer, embedding)
            seconds["migrate"] = round(time.perf_counter() - started, 3)
        if pointer is not None and pointer["embedder"]["name"] != embedding.name:
            raise TaoError(f"{store}: its prompts were embedded with {pointer['embedder']['name']}, this ingest "
                           f"embeds with {embedding.name}; ingest with the store's embedder, or into a new store")
        number = pointer["versions"] + 1 if pointer else 1
        name = version_name(number)
        shards = list(pointer["shards"]) if pointer else []
        index = VectorIndex.load(store / pointer["index"], pointer["embedder"]["dim"]) if pointer else None
        seen = _stored_keys(store, shards)
        stored_count = len(index) if index is not None else 0
        seconds["load_store"] = round(time.perf_counter() - started, 3)

        dropped: list[dict[str, Any]] = []
        contaminated_by = {file: 0 for file in references.files}
        embedded_on: Counter = Counter()
        (store / SHARDS).mkdir(exist_ok=True)
        (store / INDEX).mkdir(exist_ok=True)
        writer: ShardWriter | None = None
        near: NearDuplicates | None = None
        read = 0
        started = time.perf_counter()
        try:
            for table in embedding.stream(read_fresh(log, seen, dropped)):
                vectors = embedding_matrix(table)
                if writer is None:
                    dim = vectors.shape[1]
                    if index is None:  # a new store (a loaded index is never empty)
                        index = VectorIndex(dim)
                    if index.dim != dim:
                        raise TaoError(f"{store}: stored embeddings have {index.dim} dimensions, this embedder "
                                       f"gives {dim}")
                    writer, near = ShardWriter(store / SHARDS, name, dim), NearDuplicates(index,
                                                                                        near_duplicate_distance)
                embedded_on.update(table["node"].to_pylist())
                lines, keys, texts = (table[c].to_pylist() for c in ("line", "key", "text"))
                read += len(lines)
                hits = references.copied_by_many(texts, vectors)
                clean = []
                for i, hit in enumerate(hits):
                    if hit is None:
                        clean.append(i)
                        continue
                    contaminated_by[hit[0]] += 1
                    dropped.append({"line": lines[i], "reason": "contaminated", "file": hit[0], "by": hit[1]})
                kept, nearest = near.keep(vectors[clean])
                kept_set = set(kept)
                for position, i in enumerate(clean):
                    if position not in kept_set:
                        dropped.append({"line": lines[i], "reason": "near_duplicate",
                                        "distance": round(float(nearest[position]), 4)})
                records = table["record"].to_pylist()
                writer.write([_stored_row(json.loads(records[clean[p]]), lines[clean[p]], keys[clean[p]],
                                          texts[clean[p]], log, now, number) for p in kept],
                             vectors[[clean[p] for p in kept]])
            seconds["embed_and_check"] = round(time.perf_counter() - started, 3)
            dropped.sort(key=lambda d: d["line"])
            reasons = Counter(d["reason"] for d in dropped)
            exact = reasons["exact_duplicate"]
            added = read - reasons["contaminated"] - reasons["near_duplicate"]
            counts = {"read": read + exact, "added": added, "exact_duplicates": exact,
                      "near_duplicates": reasons["near_duplicate"], "contaminated": reasons["contaminated"],
                      "total": stored_count + added}
            manifest = {
                "format": FORMAT, "version": name, "previous": pointer["newest"] if pointer else None,
                "created_at": now.isoformat(timespec="seconds"),
                "source": {"file": str(log.resolve()), "sha256": file_sha256(log)},
                "counts": counts, "contaminated_by": contaminated_by,
                "decontaminated_against": [{"file": str(path.resolve()), "sha256": file_sha256(path)}
                                           for path in map(Path, references.files)],
                "settings": {"near_duplicate_distance": near_duplicate_distance,
                             "contamination_distance": contamination_distance, "ngram": ngram},
                "embedder": {"name": embedding.name, "dim": index.dim if index else None},
                "embedded_on": dict(embedded_on), "seconds": seconds,
                **({"migrated_from_format": 1} if migrated else {}),
                **({"removed_unreferenced": removed} if removed else {}),
                "dropped": dropped,
            }
            if not added:
                if writer is not None:
                    writer.discard()
                return IngestResult(manifest, None, dropped)
            manifest["shards"] = shards + writer.commit()
            _commit(store, name, number, manifest, index, embedding.name)
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        return IngestResult(manifest, store / VERSIONS / name, dropped)


def _commit(store: Path, name: str, number: int, manifest: dict[str, Any], index: VectorIndex,
            embedder: str) -> None:
    """The index and the version directory under new names, then the pointer; the previous index goes last."""
    previous = read_pointer(store)
    index_name = f"{INDEX}/{name}.faiss"
    temporary = store / INDEX / f".{name}.faiss.tmp"
    index.save(temporary)
    os.replace(temporary, store / index_name)
    versions = store / VERSIONS
    versions.mkdir(exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=versions, prefix=f".{name}."))
    try:
        (building / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.rename(building, versions / name)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    write_atomic(store / STORE_FILE, json.dumps({
        "format": FORMAT, "newest": name, "versions": number, "shards": manifest["shards"], "index": index_name,
        "embedder": {"name": embedder, "dim": index.dim}}) + "\n")
    if previous is not None and previous.get("index") and previous["index"] != index_name:
        (store / previous["index"]).unlink(missing_ok=True)
