"""The nearest-neighbour index behind near-duplicate and contamination checks: faiss's HNSW graph over unit vectors
with inner-product similarity (cosine distance = 1 - dot product), chosen by benchmarks/ann_choice.py against
hnswlib, usearch and exact search (results-ann-choice-cpu.json: near-duplicate recall 1.0 against exact search on
20k prompt embeddings, the fastest maintained library there).

A store's index grows with every ingest (`add`, then `save` beside the shards) instead of being rebuilt, and a
search costs about log(size), so checking 1,000 new prompts against a million stored ones costs little more than
against none. Small sets (held-out files) go through the same index.
In: float32 arrays [n, dim] of unit vectors. Out: distances. No Ray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FARTHEST = 2.0
"""The cosine distance reported where there is nothing to compare with."""
NEIGHBOURS = 16
BUILD_BEAM = 100
SEARCH_BEAM = 64
"""HNSW graph degree and beam widths (M, efConstruction, efSearch), as measured in benchmarks/ann_choice.py."""


class VectorIndex:
    def __init__(self, dim: int, _index=None):
        import faiss  # imported with the index: only ingest and expand need it

        self.dim = dim
        if _index is None:
            _index = faiss.IndexHNSWFlat(dim, NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            _index.hnsw.efConstruction = BUILD_BEAM
        _index.hnsw.efSearch = SEARCH_BEAM  # not kept in the saved file
        self._index = _index

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, vectors: np.ndarray) -> None:
        """Add rows; each gets the next position in insertion order."""
        vectors = _rows(vectors, self.dim)
        if len(vectors):
            self._index.add(vectors)

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance to the closest indexed vector, its position in insertion order) per row; FARTHEST and -1 where
        the index is empty."""
        vectors = _rows(vectors, self.dim)
        distances = np.full(len(vectors), FARTHEST, dtype=np.float32)
        positions = np.full(len(vectors), -1, dtype=np.int64)
        if not len(self) or not len(vectors):
            return distances, positions
        similarity, found = self._index.search(vectors, 1)
        hit = found[:, 0] >= 0
        distances[hit] = 1.0 - similarity[hit, 0]
        positions[hit] = found[hit, 0]
        return distances, positions

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        import faiss

        index = faiss.read_index(str(path))
        if index.d != dim:
            raise ValueError(f"{path}: an index of {index.d}-dimensional vectors, not {dim}")
        return cls(dim, index)


def _rows(vectors: np.ndarray, dim: int) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
