"""Regenerate the demo's two extra evaluation sets (deterministic, fixed seed). Run: python tools/make_eval_sets.py

prompts/demo/transfer.jsonl: the skill the demo trains (answers that meet checkable constraints), asked in other
words and formats than tools/make_demo_prompts.py writes: the requirements come first, as a list, inside a system
message or worded as a request from someone's situation; other tasks; topics in neither the training nor the
held-out file. It is scored by the same `constraints` checks, so a gain here means the skill transferred, not the
training file's phrasing.

prompts/general/arithmetic.jsonl: a skill outside the task (one-step arithmetic word problems with their answers,
scored by the math verifier): the demo reports how tuning for constraints changed it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = """otters, volcanic islands, paper airplanes, night markets, lanterns, snails, meteor showers, sailing,
kayaks, quilts, lemonade, puzzles, falcons, harbors, tulips, ice skating, radio, seashells, wind chimes, peacocks,
mountain lakes, jellyfish, fountain pens, bird songs, hammocks, city parks, fog, sandcastles, bonsai trees,
carousels""".replace("\n", " ").split(", ")

TASKS = [
    "What should a beginner know about {topic}?",
    "My niece keeps asking me about {topic}. What could I tell her?",
    "Summarize what makes {topic} special.",
    "I need a caption for a photo of {topic}.",
    "Could you share your thoughts on {topic}?",
    "Pitch {topic} to someone who has never cared about them.",
]

ENDINGS = ["that is all.", "thank you.", "the end.", "have a nice day."]
KEYWORDS = ["simple", "happy", "green", "quiet", "bright", "friend", "water", "light", "small", "warm"]


def _requirement(kind: str, rng: random.Random) -> tuple[dict, str]:
    """One constraint and a wording of it that the training file never uses."""
    if kind == "lowercase":
        return {"type": "lowercase"}, rng.choice(["no uppercase letters anywhere", "keep every letter lower case"])
    if kind == "no_commas":
        return {"type": "no_commas"}, rng.choice(["the comma character is not allowed", "zero commas"])
    if kind == "max_words":
        n = rng.choice([15, 25, 35])
        return {"type": "max_words", "n": n}, rng.choice([f"stay under {n + 1} words", f"{n} words maximum"])
    if kind == "include_keywords":
        word = rng.choice(KEYWORDS)
        return {"type": "include_keywords", "keywords": [word]}, f"the word '{word}' must appear somewhere"
    if kind == "ends_with":
        phrase = rng.choice(ENDINGS)
        return {"type": "ends_with", "phrase": phrase}, f"the very last words must be: {phrase}"
    if kind == "no_digits":
        return {"type": "no_digits"}, rng.choice(["write numbers out in words, never as digits", "no numerals"])
    if kind == "bullets":
        n = rng.choice([2, 3])
        return {"type": "bullets", "n": n}, f"format it as a list of {n} lines, each beginning with a dash and a space"
    raise ValueError(kind)


KINDS = ["lowercase", "no_commas", "max_words", "include_keywords", "ends_with", "no_digits", "bullets"]


def _messages(task: str, requirements: list[str], style: int) -> list[dict]:
    if style == 0:  # requirements first, as a list
        listed = "\n".join(f"- {r}" for r in requirements)
        return [{"role": "user", "content": f"Requirements:\n{listed}\n\n{task}"}]
    if style == 1:  # requirements as the system's house style
        rules = "; ".join(requirements)
        return [{"role": "system", "content": f"House style for every reply: {rules}."},
                {"role": "user", "content": task}]
    # worded inside the request
    return [{"role": "user", "content": f"{task} Please keep to this: {', and '.join(requirements)}."}]


def transfer_set(rng: random.Random, count: int = 40) -> list[dict]:
    records = []
    for i in range(count):
        kinds = rng.sample(KINDS, rng.choice([1, 2, 2]))
        if "bullets" in kinds and "ends_with" in kinds:
            kinds.remove("ends_with")
        constraints, wording = zip(*(_requirement(k, rng) for k in kinds))
        task = rng.choice(TASKS).format(topic=TOPICS[i % len(TOPICS)])
        records.append({"id": f"transfer-{i:04d}", "messages": _messages(task, list(wording), i % 3),
                        "constraints": list(constraints)})
    return records


NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lena"]
THINGS = ["apples", "stamps", "marbles", "pencils", "stickers", "shells", "coins", "cards"]


def arithmetic_set(rng: random.Random, count: int = 24) -> list[dict]:
    records = []
    for i in range(count):
        name, thing = rng.choice(NAMES), rng.choice(THINGS)
        a, b = rng.randint(3, 40), rng.randint(2, 20)
        kind = i % 3
        if kind == 0:
            question = f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
            answer = a + b
        elif kind == 1:
            a = a + b
            question, answer = f"{name} had {a} {thing} and gave away {b}. How many {thing} are left?", a - b
        else:
            a = rng.randint(2, 9)
            question, answer = f"{name} buys {a} bags with {b} {thing} in each. How many {thing} is that?", a * b
        records.append({"id": f"arithmetic-{i:04d}",
                        "messages": [{"role": "user", "content": f"{question} Give the final number at the end."}],
                        "answer": str(answer)})
    return records


def main() -> None:
    rng = random.Random(20261122)
    root = Path(__file__).resolve().parents[1] / "prompts"
    for path, records in ((root / "demo" / "transfer.jsonl", transfer_set(rng)),
                          (root / "general" / "arithmetic.jsonl", arithmetic_set(rng))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


if __name__ == "__main__":
    main()
