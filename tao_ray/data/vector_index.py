"""The nearest-neighbour index behind near-duplicate and contamination checks: usearch's HNSW graph over unit
vectors (cosine distance = 1 - dot product), chosen by benchmarks/ann_choice.py against faiss and hnswlib.

A store's index grows with every ingest (`add`, then `save` beside the shards) instead of being rebuilt, and a
search costs about log(size), so checking 1,000 new prompts against a million stored ones costs little more than
against none. Small sets (held-out files, one batch) go through the same index.
In: float32 arrays [n, dim] of unit vectors. Out: distances. No Ray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FARTHEST = 2.0
"""The cosine distance reported where there is nothing to compare with."""
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 128
"""HNSW graph degree and beam widths: at these, the near-duplicate recall measured against exact search on 20k
prompt embeddings is in benchmarks/results/ann_choice.json."""


class VectorIndex:
    def __init__(self, dim: int):
        from usearch.index import Index  # imported with the index: only ingest and expand need it

        self.dim = dim
        self._index = Index(ndim=dim, metric="ip", dtype="f32", connectivity=CONNECTIVITY,
                            expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)

    def __len__(self) -> int:
        return len(self._index)

    def add(self, vectors: np.ndarray) -> None:
        vectors = _rows(vectors, self.dim)
        if len(vectors):
            keys = np.arange(len(self), len(self) + len(vectors), dtype=np.uint64)
            self._index.add(keys, vectors)

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance to the closest indexed vector, its position in insertion order) per row; FARTHEST and -1 where
        the index is empty."""
        vectors = _rows(vectors, self.dim)
        distances = np.full(len(vectors), FARTHEST, dtype=np.float32)
        positions = np.full(len(vectors), -1, dtype=np.int64)
        if not len(self) or not len(vectors):
            return distances, positions
        matches = self._index.search(vectors, 1)
        # One query comes back as a single result (no per-query counts), several as a batch.
        counts = matches.counts if hasattr(matches, "counts") else [len(matches.keys)]
        found = np.asarray(counts).reshape(-1) > 0
        distances[found] = np.asarray(matches.distances).reshape(len(vectors), -1)[found, 0]
        positions[found] = np.asarray(matches.keys).reshape(len(vectors), -1)[found, 0].astype(np.int64)
        return distances, positions

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        index = cls(dim)
        index._index.load(str(path))
        return index


def _rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
