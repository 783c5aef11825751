"""A prompt store on disk: where each part lives, how a version is read, and the atomic writes that change it.

    DIR/store.json                    {"format": 2, "newest": "v0003", "versions": 3, "shards": [...],
                                       "index": "index/v0003.faiss", "embedder": {"name": ..., "dim": 384}}
    DIR/shards/v0003-000.parquet      the prompts one ingest added: id, key (hash of the normalized text), text,
                                      record (the stored prompt line, JSON), version, embedding
    DIR/versions/v0003/manifest.json  what that ingest read, added and dropped (and why), and the shards that make
                                      up this version: every shard so far, so a version never copies a prompt
    DIR/index/v0003.faiss           the near-duplicate index over every stored embedding, extended by each ingest

store.json is the one pointer: it is replaced last and atomically, so an interrupted ingest leaves the newest
version intact, and files it does not name (a shard or an index that an interrupted ingest wrote) are removed by the
next ingest. Stores written before shards (format 1: DIR/versions/vNNNN/prompts.jsonl holding every prompt so far)
are still read, and the next ingest into one moves its prompts into a shard first (store.py).
In: paths. Out: pointers and prompt objects. No Ray.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tao_ray.data.jsonl import read_objects
from tao_ray.errors import TaoError

FORMAT = 2
STORE_FILE = "store.json"
MANIFEST_FILE = "manifest.json"
PROMPTS_FILE = "prompts.jsonl"
"""A format-1 version's prompts (every prompt so far, as a prompt file)."""
SHARDS, INDEX, VERSIONS = "shards", "index", "versions"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def version_name(number: int) -> str:
    return f"v{number:04d}"


def is_store(path: Path) -> bool:
    return (path / STORE_FILE).is_file()


def read_pointer(store: Path) -> dict[str, Any] | None:
    """store.json, or None where there is no store yet. Format 1 pointers read as {"format": 1, ...}."""
    pointer = store / STORE_FILE
    if not pointer.is_file():
        return None
    try:
        data = json.loads(pointer.read_text())
        data["newest"]  # noqa: B018 - present in every format
    except (ValueError, KeyError, TypeError):
        raise TaoError(f"{pointer}: not a prompt store's {STORE_FILE} (no \"newest\"); was it edited by "
                       "hand?") from None
    data.setdefault("format", 1)
    if data["format"] > FORMAT:
        raise TaoError(f"{pointer}: store format {data['format']} is newer than this tao-ray reads ({FORMAT}); "
                       "upgrade tao-ray")
    return data


def newest_version(store: Path) -> Path | None:
    """The newest version's directory, or None for a store with none yet (or no store there)."""
    pointer = read_pointer(store)
    return None if pointer is None else store / VERSIONS / pointer["newest"]


def prompts_file(path: Path) -> Path:
    """What data.train_prompts names, as load_prompts reads it: a store becomes its newest version's directory; a
    version directory or a plain prompt file stays as it is."""
    if path.is_dir() and is_store(path):
        return newest_version(path)
    return path


def is_version_dir(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_FILE).is_file()


def version_objects(version_dir: Path) -> Iterator[tuple[str, Any]]:
    """(where, prompt object) for every prompt of one version, oldest first, without reading any embedding."""
    legacy = version_dir / PROMPTS_FILE
    if legacy.is_file():
        yield from read_objects(legacy)
        return
    manifest = json.loads((version_dir / MANIFEST_FILE).read_text())
    # Imported here: only a store version needs Parquet, a plain prompt file does not.
    import pyarrow.parquet as pq

    for name in manifest["shards"]:
        shard = version_dir.parent.parent / SHARDS / name
        if not shard.is_file():
            raise TaoError(f"{version_dir / MANIFEST_FILE}: lists shard {name}, which is missing from "
                           f"{shard.parent}; the store was damaged (restore the file or ingest again)")
        row = 0
        for batch in pq.ParquetFile(shard).iter_batches(columns=["record"], batch_size=8192):
            for text in batch.column(0).to_pylist():
                row += 1
                yield f"{shard}: row {row}", json.loads(text)


def write_atomic(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def locked(store: Path):
    """One ingest at a time per store (an exclusive lock on DIR/.lock, released when the process ends)."""
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def remove_unreferenced(store: Path, pointer: dict[str, Any] | None) -> list[str]:
    """Delete what an interrupted ingest left: shards and indexes store.json does not name, versions past its newest
    and half-built ones (a format-1 store names no shards and keeps its own files).
    Returns the removed names (for the manifest)."""
    if pointer is not None and pointer["format"] == 1:
        return []
    keep = set((pointer or {}).get("shards", []))
    index = (pointer or {}).get("index")
    newest = (pointer or {}).get("newest", "")
    removed = []
    for folder, wanted in ((store / SHARDS, lambda p: p.name in keep),
                           (store / INDEX, lambda p: index is not None and f"{INDEX}/{p.name}" == index),
                           (store / VERSIONS, lambda p: not p.name.startswith(".") and p.name <= newest)):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if not wanted(path):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(f"{folder.name}/{path.name}")
    return removed
