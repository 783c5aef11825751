"""What makes two prompts one, and a training prompt a copy of an evaluation prompt: shared by `ingest` (the
flywheel's store) and `expand` (new prompts written from seeds).

- the same normalized text (case, punctuation and spacing do not make a prompt new);
- embeddings (unit vectors, so cosine distance is 1 - dot product) closer than a threshold;
- against held-out and evaluation prompts only: a shared word n-gram, or most of their shorter word shingles.

Each check costs about the same whatever the number of references or stored prompts: n-grams are looked up in a
hash set of every reference n-gram (exact, as benchmark decontamination does it), rewordings that keep most of a
reference's words are found by MinHash-LSH and then verified by their exact shingle overlap, and embeddings go
through a nearest-neighbour index (vector_index.py).
In: texts and an `embed(texts) -> vectors` callable (tao_ray.data.embeddings.Embedder, or a stand-in in tests).
No Ray.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tao_ray.data.prompts import load_prompts
from tao_ray.data.vector_index import VectorIndex

NEAR_DUPLICATE_DISTANCE = 0.05
"""Cosine distance of all-MiniLM-L6-v2 embeddings below which two prompts are one: rewordings such as "20 words" /
"twenty words" sit near 0.03, while a changed constraint or topic is 0.1 and more."""
CONTAMINATION_DISTANCE = 0.1
"""Stricter than the duplicate threshold: a paraphrase of a held-out prompt ("How does a fridge keep food cold?"
for "Explain how a refrigerator keeps food cold.", 0.06) must not reach training."""
NGRAM = 13
"""Word n-gram length for contamination, as in the usual benchmark decontamination. Shorter grams flag prompts that
merely share templated instruction wording ("Do not use any commas. End your answer with ..."); short paraphrases
are caught by the embedding distance instead."""

SHINGLE = 5
"""Word shingle length for the reworded-copy check: a prompt that keeps most of a reference's 5-word runs while
breaking every 13-word one (a few words swapped along the way) is still that reference."""
SHINGLE_OVERLAP = 0.5
"""Jaccard overlap of 5-word shingle sets at or above which a prompt is a reworded copy of a reference."""
PERMUTATIONS, BANDS = 120, 40
"""MinHash signature length and LSH bands (3 rows each): a pair at the 0.5 overlap becomes a candidate with
probability 1 - (1 - 0.5**3)**40 = 0.995, one at 0.2 with 0.27 (candidates are then verified exactly)."""

Embed = Callable[[list[str]], Sequence[Any]]
_WORD = re.compile(r"\w+")


def prompt_text(messages: Sequence[dict[str, str]]) -> str:
    """The text a prompt is compared by: every message's content, in order."""
    return "\n".join(m["content"] for m in messages)


def normalize(text: str) -> str:
    """Lowercase words joined by single spaces: case, punctuation and spacing do not make a prompt new."""
    return " ".join(_WORD.findall(text.lower()))


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalize(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def prompt_key(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


def as_matrix(vectors: Sequence[Any] | np.ndarray) -> np.ndarray:
    """[n, dim] float32 from an embedder's output (a matrix, or one vector or tensor per text)."""
    if isinstance(vectors, np.ndarray):
        return vectors.astype(np.float32, copy=False)
    return np.stack([np.asarray(v, dtype=np.float32) for v in vectors]) if len(vectors) else np.zeros((0, 0),
                                                                                                     np.float32)


def distances(new: Sequence[Any], old: Sequence[Any]):
    """[len(new), len(old)] cosine distances between unit vectors, exactly (2.0, the farthest, fills an empty side):
    for tests and small sets; the stores go through VectorIndex."""
    import torch

    if not len(old) or not len(new):
        return torch.full((len(new), len(old)), 2.0)
    return 1.0 - torch.as_tensor(as_matrix(new)) @ torch.as_tensor(as_matrix(old)).T


def _gram_hash(gram: tuple[str, ...]) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(gram).encode(), digest_size=8).digest(), "little")


def _minhash(shingles: set[tuple[str, ...]]):
    from rensa import RMinHash

    signature = RMinHash(num_perm=PERMUTATIONS, seed=1)
    signature.update([" ".join(s) for s in shingles])
    return signature


class References:
    """The prompts of held-out and evaluation files, which no training prompt may copy.

    `gram_text` picks the part of a prompt that n-grams are taken from (default: all of it); `expand` passes the task
    part, without the templated check sentences that train and held-out prompts share by design.
    """

    def __init__(self, paths: Sequence[str | Path], embed: Embed, ngram: int = NGRAM,
                 distance: float = CONTAMINATION_DISTANCE, gram_text: Callable[[Any], str] | None = None):
        # Imported with the references: a run that reads a store never needs the LSH. rensa: the same candidates
        # as datasketch, about 30 times faster (benchmarks/ann_choice.py).
        from rensa import RMinHashLSH

        self.files = {str(Path(p)): load_prompts(p, key="--decontaminate file") for p in paths}
        self.embed, self.ngram, self.distance = embed, ngram, distance
        self.entries = [(file, prompt_text(r.messages)) for file, records in self.files.items() for r in records]
        records = [r for records in self.files.values() for r in records]
        picked = [gram_text(r) if gram_text else prompt_text(r.messages) for r in records]
        self.gram_owner: dict[int, int] = {}  # n-gram hash -> the first reference holding it
        self.plain_owner: dict[str, int] = {}
        self.shingles: list[set[tuple[str, ...]]] = []
        self.lsh = RMinHashLSH(threshold=SHINGLE_OVERLAP, num_perm=PERMUTATIONS, num_bands=BANDS)
        for j, text in enumerate(picked):
            for gram in ngrams(text, ngram):
                self.gram_owner.setdefault(_gram_hash(gram), j)
            self.plain_owner.setdefault(normalize(text), j)
            shingles = ngrams(text, SHINGLE)
            self.shingles.append(shingles)
            if shingles:
                self.lsh.insert(j, _minhash(shingles))
        self._index: VectorIndex | None = None

    def texts(self) -> list[str]:
        return [text for _, text in self.entries]

    def index(self) -> VectorIndex:
        if self._index is None:  # embedded on first use: a run with nothing to compare loads no model
            vectors = as_matrix(self.embed(self.texts()))
            self._index = VectorIndex(vectors.shape[1])
            self._index.add(vectors)
        return self._index

    def copied_by(self, gram_text: str, vector: Any) -> tuple[str, str, float] | None:
        """(file, "ngram" or "embedding", distance) of a reference this prompt copies, else None."""
        return self.copied_by_many([gram_text], as_matrix([vector]))[0]

    def copied_by_many(self, gram_texts: Sequence[str], vectors: np.ndarray) -> list[tuple[str, str, float] | None]:
        """copied_by for a batch: one index search for all of its vectors."""
        hits: list[tuple[str, str, float] | None] = [self._copied_words(text) for text in gram_texts]
        unresolved = [i for i, hit in enumerate(hits) if hit is None]
        if self.entries and unresolved:
            near, owner = self.index().nearest(vectors[unresolved])
            for i, d, j in zip(unresolved, near, owner):
                if d < self.distance:
                    hits[i] = (self.entries[j][0], "embedding", float(d))
        return hits

    def _copied_words(self, text: str) -> tuple[str, str, float] | None:
        owner = self.plain_owner.get(normalize(text))
        if owner is None:
            owner = next((self.gram_owner[h] for h in map(_gram_hash, ngrams(text, self.ngram))
                          if h in self.gram_owner), None)
        if owner is None and self.entries:
            shingles = ngrams(text, SHINGLE)
            if shingles:
                # LSH proposes references; the exact overlap decides (its false positives cost only this check).
                for j in self.lsh.query(_minhash(shingles)):
                    union = len(shingles | self.shingles[j])
                    if union and len(shingles & self.shingles[j]) / union >= SHINGLE_OVERLAP:
                        owner = j
                        break
        return None if owner is None else (self.entries[owner][0], "ngram", 0.0)
