"""The sentences that ask for a prompt's checks, so a prompt's text and its checks can be built from one source.

In: a demo constraint ({"type": "max_words", "n": 40}) or an IFEval-style instruction id with its kwargs.
Out: the instruction sentence a user would read ("Answer in at most 40 words."). The demo prompt files were written
with these sentences (tools/make_demo_prompts.py), so they also find a seed's check sentences in its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Pairs of constraint types that cannot both hold, or that make the text unparseable for the other check.
CONFLICTS = {frozenset(p) for p in [("lowercase", "uppercase"), ("json", "bullets"), ("json", "quoted"),
                                    ("json", "ends_with"), ("json", "starts_with"), ("quoted", "ends_with"),
                                    ("quoted", "starts_with"), ("bullets", "max_sentences"), ("bullets", "quoted"),
                                    ("uppercase", "ends_with"), ("lowercase", "starts_with"),
                                    ("bullets", "starts_with"), ("json", "max_sentences"),
                                    ("max_words", "min_words"), ("max_sentences", "min_sentences")]}


def _quoted_list(words: Sequence[str]) -> str:
    quoted = [f'"{w}"' for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" and {quoted[-1]}"


def constraint_sentence(constraint: dict[str, Any]) -> str:
    """The sentence asking for one (valid) demo constraint."""
    kind, n = constraint["type"], constraint.get("n")
    plural = "s" if n != 1 else ""
    fixed = {
        "lowercase": "Use only lowercase letters, no capital letters at all.",
        "uppercase": "Write your entire answer in capital letters.",
        "no_commas": "Do not use any commas.",
        "json": "Answer with valid JSON only, no other text.",
        "no_digits": "Do not use any digits.",
        "quoted": "Wrap your whole answer in double quotes.",
        "title": "Give your answer a title wrapped in double angular brackets, such as <<my title>>.",
        "postscript": "End your answer with a postscript starting with P.S.",
    }
    if kind in fixed:
        return fixed[kind]
    if kind == "max_words":
        return f"Answer in at most {n} words."
    if kind == "min_words":
        return f"Answer in at least {n} words."
    if kind == "max_sentences":
        return f"Use at most {n} sentence{plural}."
    if kind == "min_sentences":
        return f"Use at least {n} sentence{plural}."
    if kind == "include_keywords":
        words = constraint["keywords"]
        return f"Include the word{'s' if len(words) > 1 else ''} {_quoted_list(words)}."
    if kind == "forbidden_words":
        words = constraint["words"]
        return f"Do not use the word{'s' if len(words) > 1 else ''} {_quoted_list(words)}."
    if kind == "ends_with":
        # No closing period: the demo phrases end with their own ("that is all.").
        return f'End your answer with the exact phrase "{constraint["phrase"]}"'
    if kind == "starts_with":
        return f'Start your answer with "{constraint["phrase"]}".'
    if kind == "bullets":
        return f"Answer with exactly {n} bullet point{plural}, each starting with '- '."
    if kind == "paragraphs":
        return f"Write exactly {n} paragraph{plural}, separated by blank lines."
    if kind == "keyword_count":
        return f'Use the word "{constraint["keyword"]}" at least {n} time{plural}.'
    raise ValueError(f"no sentence for constraint type {kind!r}")


def instruction_sentences(instruction_ids: Sequence[str], kwargs: Sequence[dict[str, Any]]) -> list[str]:
    """The checks library's own descriptions of IFEval-style instructions (loads the library: seconds)."""
    from tao_ray.rewards.instructions import describe

    return describe(instruction_ids, kwargs)


def conflicts(kind: str, kinds: Sequence[str]) -> bool:
    return kind in kinds or any(frozenset((kind, other)) in CONFLICTS for other in kinds)
