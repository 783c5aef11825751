"""Math reward: 1.0 when the response's final answer is equivalent to the prompt's reference answer, else 0.0.

In: a prompt record with a non-empty "answer" (e.g. "42", "1/2", "\\frac{\\pi}{4}", "$x+1$") and the response text.
Out: 1.0 or 0.0. Equivalence is decided by math-verify (sympy-based), so "\\boxed{\\frac{1}{2}}" matches "0.5".
A record without an answer, or with one math-verify cannot read, raises ValueError: that is a broken prompt, not a
wrong response, and the caller excludes and counts it instead of training on a silent 0.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from math_verify import parse, verify

# math-verify's default timeouts use signal.alarm, which raises outside the main thread; rewards run in worker
# threads and Ray actors, and the caller already enforces a per-sample timeout, so both timeouts are disabled.
_NO_SIGNAL_PARSE = {"parsing_timeout": None}
_NO_SIGNAL_VERIFY = {"timeout_seconds": None}

_DELIMITERS = (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _as_latex(answer: str) -> str:
    # Undelimited gold is read by math-verify's plain-expression parser, which misreads LaTeX and tuples
    # ("x+1" -> nothing, "(1, 2)" -> 2); inside $...$ the LaTeX parser handles plain numbers too.
    for left, right in _DELIMITERS:
        if len(answer) >= len(left) + len(right) and answer.startswith(left) and answer.endswith(right):
            return answer
    return f"${answer}$"


@lru_cache(maxsize=4096)
def _parse_gold(answer: str) -> tuple[Any, ...]:
    # Cached because every prompt's answer is parsed once per sampled response (a whole group per step).
    return tuple(parse(_as_latex(answer), **_NO_SIGNAL_PARSE))


def math_reward(record: dict[str, Any], response: str) -> float:
    answer = record.get("answer")
    if answer is None or not str(answer).strip():
        raise ValueError("prompt has no 'answer': the math reward needs a reference answer in every prompt")
    gold = _parse_gold(str(answer).strip())
    if not gold:
        raise ValueError(f"math-verify cannot read the prompt's 'answer' {str(answer)!r}; write it as LaTeX")
    predicted = parse(response, **_NO_SIGNAL_PARSE)
    if not predicted:
        return 0.0
    return 1.0 if verify(list(gold), predicted, **_NO_SIGNAL_VERIFY) else 0.0
