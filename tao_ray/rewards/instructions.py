"""Verifiable instructions in IFEval's format, checked by the official checks (the if-verifiable package's IFEval).

A prompt record carries `instruction_id_list` (e.g. ["length_constraints:number_words", "punctuation:no_comma"]) and
`kwargs`, one dict per instruction (e.g. [{"num_words": 50, "relation": "less than"}, {}]), as IFEval and the RLVR
instruction-following sets write them. Keys whose value is null are ignored, as in those sets.
Reward: the fraction of instructions followed, strict (the response as written). The loose fraction (the same checks,
passed if any of the official loose variants passes: without first or last line, without markdown asterisks) is
reported as the metric reward/instructions/loose. Thinking blocks (`<think>…</think>`) are stripped first.

IFBench's instruction ids (the same library's copy of IFBench's checks) are accepted where their check runs offline
(IFBENCH_OFFLINE): the others need NLTK's tagger or stopword lists, which no package registry serves.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Sequence
from typing import Any

from tao_ray.rewards.isolation import InlineSampler
from tao_ray.rewards.punkt_data import install_english_punkt

_PROBE = "A short probe. It has two sentences."

# IFBench's checks that need nothing of NLTK beyond Punkt (installed below): each was run offline on a probe
# (tests/rewards/test_instructions.py). Left out: the tagger's (words:start_verb, count:person_names, ...), the
# stopword lists' (ratio:stop_words) and those that score against the prompt text (repeat:*).
IFBENCH_OFFLINE = frozenset({
    "count:keywords_multiple", "count:numbers", "count:punctuation", "count:unique_word_count",
    "count:word_count_range", "format:emoji", "format:line_indent", "format:list", "format:newline",
    "format:no_bullets_bullets", "format:options", "format:output_template", "format:parentheses",
    "format:quote_unquote", "format:sub-bullets", "format:thesis", "format:title_case", "sentence:keyword",
    "words:no_consecutive"})


@functools.lru_cache(maxsize=1)
def _checkers() -> dict[str, type]:
    install_english_punkt()  # before any check runs: sentence counting needs NLTK's Punkt model
    import langdetect

    # The language checks use langdetect, which samples at random unless seeded: one response must get one reward.
    langdetect.DetectorFactory.seed = 0
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    return {**INSTRUCTION_DICT, **_ifbench_offline()}


def _ifbench_offline() -> dict[str, type]:
    import nltk

    # The IFBench module calls nltk.download for its tagger and stopwords when imported. The checks taken here need
    # neither, and a node without network would wait on each download's timeout: refuse them for that import only.
    download = nltk.download
    nltk.download = lambda *args, **kwargs: False
    try:
        from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT
    finally:
        nltk.download = download
    return {instruction_id: INSTRUCTION_DICT[instruction_id] for instruction_id in sorted(IFBENCH_OFFLINE)}


def known_ids() -> list[str]:
    return sorted(_checkers())


def _parameters(checker_class: type) -> list[str]:
    signature = inspect.signature(checker_class.build_description)
    return [name for name, p in signature.parameters.items() if name != "self" and p.kind is not p.VAR_KEYWORD]


def _given(kwargs: dict[str, Any]) -> dict[str, Any]:
    # IFEval's published rows list every parameter of every checker, null where unused.
    return {key: value for key, value in kwargs.items() if value is not None}


def validate_instructions(instruction_ids: Any, kwargs: Any) -> str | None:
    """None when the pair is usable, else a short reason naming the offending key (used in one-line load errors)."""
    if not isinstance(instruction_ids, list) or not instruction_ids \
            or not all(isinstance(i, str) for i in instruction_ids):
        return "key 'instruction_id_list' must be a non-empty list of instruction ids"
    if not isinstance(kwargs, list) or not all(isinstance(k, dict) for k in kwargs):
        return "key 'kwargs' must be a list of objects, one per instruction (use {} for none)"
    if len(kwargs) != len(instruction_ids):
        return (f"key 'kwargs' has {len(kwargs)} entries but 'instruction_id_list' has {len(instruction_ids)}; "
                "give one object per instruction")
    checkers = _checkers()
    for position, (instruction_id, raw) in enumerate(zip(instruction_ids, kwargs)):
        checker_class = checkers.get(instruction_id)
        if checker_class is None:
            return (f"key 'instruction_id_list' names unknown instruction {instruction_id!r}; "
                    f"known: {', '.join(sorted(checkers))}")
        where = f"key 'kwargs' entry {position} ({instruction_id})"
        given, expected = _given(raw), _parameters(checker_class)
        unknown = sorted(set(given) - set(expected))
        if unknown:
            return f"{where}: unknown parameter {unknown[0]!r}; expected: {', '.join(expected) or 'none'}"
        # A checker built with a parameter missing draws it at random (the library also generates prompts), so the
        # reward would change from call to call: every parameter must be given.
        missing = [name for name in expected if name not in given]
        if missing:
            return f"{where}: missing parameter {missing[0]!r}"
        try:
            checker = checker_class(instruction_id)
            checker.build_description(**given)
            checker.check_following(_PROBE)  # a value of the wrong type (e.g. "50" for a count) fails only here
        except Exception as exc:  # the library raises ValueError, TypeError, AttributeError... for bad values
            return f"{where}: {json.dumps(given)} is not usable: {type(exc).__name__}: {exc}"
    return None


def describe(instruction_ids: Sequence[str], kwargs: Sequence[dict[str, Any]]) -> list[str]:
    """The instruction sentence of each (valid) instruction, as the library renders it from its parameters."""
    checkers = _checkers()
    sentences = []
    for instruction_id, raw in zip(instruction_ids, kwargs, strict=True):
        checker = checkers[instruction_id](instruction_id)
        sentences.append(" ".join(str(checker.build_description(**_given(raw))).split()))
    return sentences


def _prompt_text(record: dict[str, Any]) -> str:
    messages = record.get("messages") or []
    return messages[-1]["content"] if messages else ""


def follow_fractions(record: dict[str, Any], response: str) -> tuple[float, float]:
    """(strict, loose): the fractions of the record's instructions that the response follows."""
    from if_verifiable.common import evaluate_instructions

    instruction_ids = record.get("instruction_id_list") or []
    if not instruction_ids:
        raise ValueError("prompt has no 'instruction_id_list': the instructions scorer needs one in every prompt")
    _, scores = evaluate_instructions(response=response, instruction_id_list=list(instruction_ids),
                                      kwargs_list=[_given(k) for k in record.get("kwargs") or []],
                                      prompt=_prompt_text(record), instruction_registry=_checkers())
    return scores.partial_strict, scores.partial_loose


def instruction_results(record: dict[str, Any], response: str) -> dict[str, float]:
    """Per instruction id of the prompt, whether the response follows it (strict; 1.0 or 0.0, the mean for an id
    asked twice): what the per-behaviour diagnostics count."""
    from if_verifiable.common import evaluate_instructions

    instruction_ids = list(record.get("instruction_id_list") or [])
    results, _ = evaluate_instructions(response=response, instruction_id_list=instruction_ids,
                                       kwargs_list=[_given(k) for k in record.get("kwargs") or []],
                                       prompt=_prompt_text(record), instruction_registry=_checkers())
    passed = {result.instruction_id: [] for result in results}
    for result in results:
        passed[result.instruction_id].append(bool(result.strict_pass))
    # An empty response is checked against nothing: every instruction counts as not followed.
    return {instruction_id: (sum(passed[instruction_id]) / len(passed[instruction_id])
                             if passed.get(instruction_id) else 0.0) for instruction_id in instruction_ids}


def instructions_reward(record: dict[str, Any], response: str) -> float:
    return follow_fractions(record, response)[0]


def instructions_loose(record: dict[str, Any], response: str) -> float:
    return follow_fractions(record, response)[1]


class InstructionsComponent:
    """The `instructions` scorer: the strict fraction as the score, the loose fraction in `last_metrics`.

    Inline like `constraints`: the checks are trusted library code and cheap. A sample whose check raises gets None
    (excluded and counted), as with every verifier.
    """

    metric_names = ("loose",)

    def __init__(self):
        self._strict = InlineSampler(instructions_reward)
        self._loose = InlineSampler(instructions_loose)
        self.last_failures: list[str] = []
        self.last_metrics: dict[str, list[float | None]] = {}

    def score(self, records: list[dict], responses: list[str]) -> list[float | None]:
        strict = self._strict.score(records, responses)
        self.last_failures = self._strict.last_failures
        self.last_metrics = {"loose": self._loose.score(records, responses)}
        return strict

    def close(self) -> None:
        pass
