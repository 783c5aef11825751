"""What makes two prompts one, and a training prompt a copy of an evaluation prompt: shared by `ingest` (the
flywheel's store) and `expand` (new prompts written from seeds).

- the same normalized text (case, punctuation and spacing do not make a prompt new);
- embeddings (unit vectors, so cosine distance is 1 - dot product) closer than a threshold;
- against held-out and evaluation prompts only: a shared word n-gram.
In: texts and an `embed(texts) -> [unit vector]` callable (tao_ray.data.embeddings.Embedder, or a stand-in in tests).
No Ray.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tao_ray.data.prompts import load_prompts

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


def distances(new: Sequence[Any], old: Sequence[Any]):
    """[len(new), len(old)] cosine distances between unit vectors (2.0, the farthest, fills an empty side)."""
    import torch

    if not len(old) or not len(new):
        return torch.full((len(new), len(old)), 2.0)
    return 1.0 - torch.stack(list(new)) @ torch.stack(list(old)).T


def nearest(vector: Any, others: Sequence[Any]) -> float:
    """The distance from `vector` to the closest of `others` (2.0 when there are none)."""
    return float(distances([vector], others)[0].min()) if len(others) else 2.0


class References:
    """The prompts of held-out and evaluation files, which no training prompt may copy.

    `gram_text` picks the part of a prompt that n-grams are taken from (default: all of it); `expand` passes the task
    part, without the templated check sentences that train and held-out prompts share by design.
    """

    def __init__(self, paths: Sequence[str | Path], embed: Embed, ngram: int = NGRAM,
                 distance: float = CONTAMINATION_DISTANCE, gram_text: Callable[[Any], str] | None = None):
        self.files = {str(Path(p)): load_prompts(p, key="--decontaminate file") for p in paths}
        self.embed, self.ngram, self.distance = embed, ngram, distance
        self.entries = [(file, prompt_text(r.messages)) for file, records in self.files.items() for r in records]
        records = [r for records in self.files.values() for r in records]
        picked = [gram_text(r) if gram_text else prompt_text(r.messages) for r in records]
        self.grams = [(file, ngrams(text, ngram), normalize(text)) for (file, _), text in zip(self.entries, picked)]
        self._vectors: list | None = None

    def texts(self) -> list[str]:
        return [text for _, text in self.entries]

    def vectors(self) -> list:
        if self._vectors is None:  # embedded on first use: a run with nothing to compare loads no model
            self._vectors = list(self.embed(self.texts())) if self.entries else []
        return self._vectors

    def copied_by(self, gram_text: str, vector: Any) -> tuple[str, str, float] | None:
        """(file, "ngram" or "embedding", distance) of the first reference this prompt copies, else None."""
        grams, plain = ngrams(gram_text, self.ngram), normalize(gram_text)
        for file, reference_grams, reference_plain in self.grams:
            if grams & reference_grams or plain == reference_plain:
                return file, "ngram", 0.0
        if not self.entries:
            return None
        row = distances([vector], self.vectors())[0]
        j = int(row.argmin())
        if float(row[j]) < self.distance:
            return self.entries[j][0], "embedding", float(row[j])
        return None
