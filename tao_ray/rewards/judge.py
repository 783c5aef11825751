"""LLM-as-judge, the pure part: the judge's chat messages and the parsing of its verdicts (no engine here).

In: the rubric, the prompt's chat messages and the response(s) to grade. Out: chat messages for the judge model;
from its output text, a score in [0, 1] or None. None means "the judge did not give a readable verdict": the
parsers never guess a number from prose, because a made-up reward is worse than a missing one.
The engine that runs the judge is tao_ray/actors/judge.py.
"""

from __future__ import annotations

import re

# Small judges (135M) lose the thread in long prompts: the rubrics are a few lines and repeat the output format.
DEFAULT_RUBRIC = (
    "You are a strict grader. Rate the response to the user's request on a scale from 1 (bad) to 10 (excellent): "
    "does it follow every instruction of the request, and is it helpful and correct? "
    "Write one short sentence of reasoning, then end with a line exactly: Score: N"
)

DEFAULT_PAIRWISE_RUBRIC = (
    "You are a strict grader. Compare two responses to the same user request. The better one follows every "
    "instruction of the request and is more helpful and correct; ignore their order and length. "
    "Write one short sentence of reasoning, then end with a line exactly: Winner: A, Winner: B or Winner: tie"
)

_POINTWISE_FORMAT = "End with a line exactly: Score: N (N is an integer from 1 to 10)."
_PAIRWISE_FORMAT = "Which response is better? End with a line exactly: Winner: A, Winner: B or Winner: tie"
_ELIDED = "[...]"


# ---- message builders ----

def truncate_head(text: str, max_chars: int | None) -> str:
    """Keep the first `max_chars` characters and say that the rest was cut (so the judge does not blame the
    response for stopping mid-sentence)."""
    if max_chars is None or len(text) <= max_chars:
        return text
    return f"{text[:max_chars].rstrip()} {_ELIDED} (truncated)"


def _truncate_middle(text: str, max_chars: int | None) -> str:
    # The conversation keeps both ends: instructions are often at the start and the actual question at the end.
    if max_chars is None or len(text) <= max_chars:
        return text
    head = max_chars // 2
    return f"{text[:head].rstrip()}\n{_ELIDED}\n{text[len(text) - (max_chars - head):].lstrip()}".strip()


def render_conversation(prompt_messages: list[dict], max_chars: int | None = None) -> str:
    """The prompt's turns as plain "User: ... / Assistant: ..." text (the judge's own chat template stays its
    own). `max_chars` caps the result, eliding the middle."""
    lines = [f"{str(m.get('role', 'user')).capitalize()}: {m.get('content') or ''}" for m in prompt_messages]
    return _truncate_middle("\n\n".join(lines), max_chars)


def pointwise_messages(rubric: str, prompt_messages: list[dict], response: str,
                       max_chars: int | None = None) -> list[dict]:
    """`max_chars` caps each variable text (conversation, response) so that the caller can fit a context."""
    user = (f"[Conversation]\n{render_conversation(prompt_messages, max_chars)}\n[End of conversation]\n\n"
            f"[Response to grade]\n{truncate_head(response, max_chars)}\n[End of response]\n\n"
            f"{_POINTWISE_FORMAT}")
    return [{"role": "system", "content": rubric}, {"role": "user", "content": user}]


def pairwise_messages(rubric: str, prompt_messages: list[dict], response_a: str, response_b: str,
                      max_chars: int | None = None) -> list[dict]:
    user = (f"[Conversation]\n{render_conversation(prompt_messages, max_chars)}\n[End of conversation]\n\n"
            f"[Response A]\n{truncate_head(response_a, max_chars)}\n[End of response A]\n\n"
            f"[Response B]\n{truncate_head(response_b, max_chars)}\n[End of response B]\n\n"
            f"{_PAIRWISE_FORMAT}")
    return [{"role": "system", "content": rubric}, {"role": "user", "content": user}]


# ---- pointwise parsing ----

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
# "Score: 7", "**Score:** 7", "Final score = 7.5", "Rating: [[7]]", "Score (1-10): 7"; the rest of the line is kept
# to catch "7/5" (another scale) and "7-8" / "7 or 8" (no single score).
_MARKER_RE = re.compile(
    rf"\b(?:score|rating|grade)s?\b(?:\s*\([^)\n]*\))?[*_\s]*[:=][*_\s]*[\[(]*\s*(?P<value>{_NUMBER})(?P<tail>[^\n]*)",
    re.IGNORECASE)
_FRACTION_RE = re.compile(r"(?<![\w./])(?P<value>\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*10(?:\.0+)?(?!\.?\d|/)",
                          re.IGNORECASE)
_DENOMINATOR_RE = re.compile(r"[\])*_\s]*(?:/|out\s+of)\s*(?P<den>\d+(?:\.\d+)?)", re.IGNORECASE)
_SECOND_NUMBER_RE = re.compile(r"[\])*_\s]*(?:(?:-|–|—|to|or|and|,)\s*[*_\[(]*\s*\d|%)", re.IGNORECASE)
_BARE_RE = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?:\s*/\s*10)?")


def _in_scale(value: float) -> float | None:
    return (value - 1.0) / 9.0 if 1.0 <= value <= 10.0 else None


def _marker_score(match: re.Match) -> float | None:
    tail = match.group("tail")
    denominator = _DENOMINATOR_RE.match(tail)
    if denominator:
        return _in_scale(float(match.group("value"))) if float(denominator.group("den")) == 10 else None
    if _SECOND_NUMBER_RE.match(tail):
        return None  # "Score: 7-8", "Score: 7 or 8", "Score: 70%": not one score on the 1-10 scale
    return _in_scale(float(match.group("value")))


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return re.sub(r"[*_#>`\[\]()\s]+", " ", lines[-1]).strip().rstrip(".!").strip() if lines else ""


def parse_pointwise(text: str) -> float | None:
    """The judge's 1-10 score mapped to [0, 1] as (s - 1) / 9, or None.

    Tiers, the first that applies decides: the last "Score:/Rating:/Grade:" marker (its value must be one number in
    [1, 10], else None); else the last "N/10" or "N out of 10"; else a final line that is only a number in range.
    """
    markers = list(_MARKER_RE.finditer(text))
    if markers:
        return _marker_score(markers[-1])
    fractions = list(_FRACTION_RE.finditer(text))
    if fractions:
        return _in_scale(float(fractions[-1].group("value")))
    bare = _BARE_RE.fullmatch(_last_line(text))
    return _in_scale(float(bare.group("value"))) if bare else None


# ---- pairwise parsing ----

_VERDICT_RE = re.compile(r"\b(?:winner|better(?:\s+response)?|verdict)\b[*_\s]*[:=][*_\s]*(?P<rest>[^\n]*)",
                         re.IGNORECASE)
_BRACKET_RE = re.compile(r"\[\[\s*(?P<rest>A|B|tie)\s*\]\]", re.IGNORECASE)
_TIE_RE = re.compile(r"\b(?:tie|tied|draw|equal|equally)\b", re.IGNORECASE)
_LEADING_TIE_RE = re.compile(r"(?:it'?s\s+)?(?:a\s+)?(?:tie|tied|draw|equal|equally)\b", re.IGNORECASE)
_BOTH_RE = re.compile(r"\s*(?:and|or|vs\.?|versus|/|,|&)\s*(?:response\s+)?[AB]\b", re.IGNORECASE)
_NAME_RE = re.compile(r"(?:the\s+)?(?:response|assistant|answer|output)\s+", re.IGNORECASE)


def _verdict(rest: str) -> float | None:
    """Read what follows "Winner:": A -> 1.0, B -> 0.0, tie -> 0.5; None when it is neither or names both."""
    cleaned = re.sub(r"[*_\[\]()\"'`]", " ", rest).strip()
    name = _NAME_RE.match(cleaned)
    cleaned = cleaned[name.end():] if name else cleaned
    if _LEADING_TIE_RE.match(cleaned):
        return 0.5
    # Upper-case letters only, except a lone "a"/"b": a lower-case "a" is usually the article ("a close call").
    letter = re.match(r"(?P<letter>[AB])\b", cleaned) or re.fullmatch(r"(?P<letter>[ab])[.!]?", cleaned)
    if letter is None:  # "Both are equally good" is a tie; "Neither", "the first one" are not readable
        return 0.5 if _TIE_RE.search(cleaned) and not re.search(r"\b[AB]\b", cleaned) else None
    if _BOTH_RE.match(cleaned[letter.end():]):  # "A or B", "A/B", "A and B are equal"
        return 0.5 if _TIE_RE.search(cleaned) else None
    return 1.0 if letter.group("letter").upper() == "A" else 0.0


def parse_pairwise(text: str) -> float | None:
    """The last verdict ("Winner: A", "**Better:** Response B", "[[A]]", "Winner: tie/draw/equal"): 1.0 for A,
    0.0 for B, 0.5 for a tie; else a final line that is only the verdict; else None."""
    markers = sorted([*_VERDICT_RE.finditer(text), *_BRACKET_RE.finditer(text)], key=lambda m: m.start())
    if markers:
        return _verdict(markers[-1].group("rest"))
    last = _last_line(text)
    return _verdict(last) if re.fullmatch(r"(?:(?:response|assistant)\s+)?(?:[ABab]|tie|draw)", last, re.I) else None


def pairwise_score(first: float | None, second: float | None) -> float | None:
    """Position-bias control: `first` is the verdict with the candidate shown as A (1.0 = candidate wins), `second`
    the verdict with it shown as B (0.0 = candidate wins). Mean of both views; one missing -> the other."""
    views = [v for v in (first, None if second is None else 1.0 - second) if v is not None]
    return sum(views) / len(views) if views else None
