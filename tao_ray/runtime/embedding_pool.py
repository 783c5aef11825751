"""Embeddings for `tao-ray ingest` over the whole cluster: a Ray Data pipeline whose map stage is an actor pool, each
actor holding one sentence embedder (loaded once), spread over the nodes (Ray Data's default spread scheduling).

The log's chunks go into the object store once every line has been validated (a bad line costs no embedding) and
come back in log order, so "the earlier line wins" holds for duplicates exactly as in a single process. The store's
checks run in the driver on each returned chunk (data/store.py); only the embedding, the dominant cost, is spread.
In: pyarrow chunks with a `text` column. Out: the same chunks with `embedding` and `node` columns.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import ray

from tao_ray.data.embeddings import NAME, Embedder, with_embeddings

BATCH_ROWS = 1024
"""Rows per call into an embedding actor: large enough that the per-call overhead is small against encoding (about
3 s per 1,024 prompts on one CPU core), small enough that every actor gets work on a 10k log."""


class _EmbedChunks:
    """One Ray Data actor: the embedder on this node, with as many torch threads as its share of the node's CPUs
    (Ray counts one CPU per actor so that the pipeline's other stages still fit beside it)."""

    def __init__(self, device: str, threads: int, batch_size: int):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.embedder = Embedder(device, batch_size=batch_size)
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, table: pa.Table) -> pa.Table:
        return with_embeddings(table, self.embedder.matrix(table["text"].to_pylist()), self.node)


def _cpu_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= 1]


class RayDataEmbedding:
    """`Embedding` (data/embeddings.py) on a Ray Data actor pool: `actors` embedders (default one per node with
    CPUs), each with `gpus_per_actor` GPUs (0: on CPU)."""

    name = NAME

    def __init__(self, actors: int | None = None, gpus_per_actor: float = 0.0, batch_rows: int = BATCH_ROWS):
        nodes = _cpu_nodes()
        self.actors = actors or max(1, len(nodes))
        self.gpus_per_actor, self.batch_rows = gpus_per_actor, batch_rows
        per_node = math.ceil(self.actors / max(1, len(nodes)))
        smallest = min((int(n["Resources"]["CPU"]) for n in nodes), default=1)
        self.threads = 0 if gpus_per_actor else max(1, smallest // per_node)
        self._local: Embedder | None = None
        self.nodes_used: set[str] = set()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Small sets (held-out files) are embedded in this process: starting the pool would cost more."""
        if self._local is None:
            self._local = Embedder("cuda" if self.gpus_per_actor else "cpu")
        return self._local.matrix(texts)

    def stream(self, chunks: Iterable[pa.Table]) -> Iterator[pa.Table]:
        # Every line is validated before the first embedding. Ray Data hands an actor a whole block, so blocks of
        # `batch_rows` are what lets every actor (and node) take a share of a small log.
        refs = [ray.put(table.slice(start, self.batch_rows)) for table in chunks
                for start in range(0, len(table), self.batch_rows)]
        if not refs:
            return
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = sys.stderr.isatty()
        dataset = ray.data.from_arrow_refs(refs).map_batches(
            _EmbedChunks, batch_size=self.batch_rows, batch_format="pyarrow", concurrency=self.actors,
            num_cpus=1, num_gpus=self.gpus_per_actor or None, scheduling_strategy="SPREAD",
            fn_constructor_kwargs={"device": "cuda" if self.gpus_per_actor else "cpu", "threads": self.threads,
                                   "batch_size": 128})
        del refs  # the dataset holds the chunks now; each is freed once embedded
        for table in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            self.nodes_used.update(table["node"].to_pylist())
            yield table
