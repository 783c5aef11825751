"""`tao-ray ingest LOG --store STORE`: add production prompts to a versioned prompt store, deduplicated and
decontaminated (data/store.py), the embeddings computed on a Ray Data actor pool over every node of the cluster
(runtime/embedding_pool.py): a local Ray on one machine, the job's cluster under `ray job submit`."""

from __future__ import annotations

import argparse

import ray

from tao_ray.data.store import ingest
from tao_ray.errors import TaoError
from tao_ray.runtime import session
from tao_ray.runtime.embedding_pool import BATCH_ROWS, RayDataEmbedding


def from_args(args: argparse.Namespace) -> int:
    for flag, value in (("--near-duplicate-distance", args.near_duplicate_distance),
                        ("--contamination-distance", args.contamination_distance)):
        if not 0.0 <= value <= 2.0:
            raise TaoError(f"ingest: {flag} is {value}; a cosine distance lies in [0, 2]")
    if args.ngram < 1:
        raise TaoError(f"ingest: --ngram is {args.ngram}; it must be at least 1")
    if args.embed_actors is not None and args.embed_actors < 1:
        raise TaoError(f"ingest: --embed-actors is {args.embed_actors}; it must be at least 1")
    if args.embed_batch is not None and args.embed_batch < 1:
        raise TaoError(f"ingest: --embed-batch is {args.embed_batch}; it must be at least 1")
    if args.embed_gpus < 0:
        raise TaoError(f"ingest: --embed-gpus is {args.embed_gpus}; it must be 0 (CPU) or more")
    started_ray = session.connect()
    try:
        embedding = RayDataEmbedding(args.embed_actors, args.embed_gpus, args.embed_batch or BATCH_ROWS)
        result = ingest(args.store, args.log, embedding, args.decontaminate or [], args.near_duplicate_distance,
                        args.contamination_distance, args.ngram)
    finally:
        if started_ray:
            ray.shutdown()
    nodes = result.manifest.get("embedded_on", {})
    print(result.summary() + (f"; embedded on {len(nodes)} node{'s' * (len(nodes) != 1)}" if nodes else ""))
    return 0
