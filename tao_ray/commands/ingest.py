"""`tao-ray ingest LOG --store STORE`: add production prompts to a versioned prompt store, deduplicated and
decontaminated (data/store.py). The sentence embedder is loaded only when there is something to compare."""

from __future__ import annotations

import argparse

from tao_ray.data.embeddings import Embedder
from tao_ray.data.store import ingest
from tao_ray.errors import TaoError


def from_args(args: argparse.Namespace) -> int:
    for flag, value in (("--near-duplicate-distance", args.near_duplicate_distance),
                        ("--contamination-distance", args.contamination_distance)):
        if not 0.0 <= value <= 2.0:
            raise TaoError(f"ingest: {flag} is {value}; a cosine distance lies in [0, 2]")
    if args.ngram < 1:
        raise TaoError(f"ingest: --ngram is {args.ngram}; it must be at least 1")
    embedder = None

    def embed(texts: list[str]) -> list:
        nonlocal embedder
        if embedder is None:  # loaded only when there is something to compare (seconds, on CPU)
            embedder = Embedder("cpu")
        return embedder(texts)

    result = ingest(args.store, args.log, embed, args.decontaminate or [], args.near_duplicate_distance,
                    args.contamination_distance, args.ngram)
    print(result.summary())
    return 0
