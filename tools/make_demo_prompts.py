"""Regenerate prompts/demo/{train,heldout}.jsonl: instruction prompts with checkable constraints and no labels.

Deterministic (fixed seed). Train and held-out use disjoint topics so the held-out score measures transfer,
not memorised topics. Run: python tools/make_demo_prompts.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tao_ray.data.check_text import conflicts, constraint_sentence

TRAIN_TOPICS = """coffee, bicycles, rain, volcanoes, libraries, honey bees, chess, sourdough bread, lighthouses, jazz,
recycling, the moon, penguins, gardening, trains, museums, photography, tea, deserts, origami, glaciers, owls,
board games, running shoes, bridges, kites, podcasts, maple syrup, submarines, hiking, cats, the post office,
solar panels, tomatoes, castles, rainbows, snow, umbrellas, fireflies, pottery, rivers, clocks, elephants,
spreadsheets, camping, violins, autumn leaves, street food, windmills, dolphins, passwords, sunflowers, yoga,
maps, typewriters, mushrooms, airports, marathons, caves, robots""".replace("\n", " ").split(", ")

HELDOUT_TOPICS = """whales, pizza, thunderstorms, bookstores, skateboards, coral reefs, bamboo, tigers, compasses,
bakeries, telescopes, canoes, wolves, pencils, waterfalls, chocolate, hot air balloons, beaches, keyboards,
strawberries""".replace("\n", " ").split(", ")

TASKS = [
    "Describe {topic}.",
    "Explain why people like {topic}.",
    "Write a short note about {topic}.",
    "Give advice to someone new to {topic}.",
    "Tell me an interesting fact about {topic}.",
    "Write a short story about {topic}.",
]

KEYWORDS = ["simple", "happy", "green", "quiet", "bright", "friend", "water", "light", "small", "warm"]
ENDINGS = ["that is all.", "thank you.", "the end.", "have a nice day."]
OPENINGS = ["Sure", "Here is", "Well", "In short"]


def _constraint(kind: str, rng: random.Random) -> tuple[dict, str]:
    """One constraint, its parameters drawn at random, and the instruction sentence that asks for it."""
    parameters = {"max_words": lambda: {"n": rng.choice([15, 20, 30, 40])},
                  "max_sentences": lambda: {"n": rng.choice([1, 2, 3])},
                  "include_keywords": lambda: {"keywords": [rng.choice(KEYWORDS)]},
                  "ends_with": lambda: {"phrase": rng.choice(ENDINGS)},
                  "starts_with": lambda: {"phrase": rng.choice(OPENINGS)},
                  "bullets": lambda: {"n": rng.choice([2, 3, 4])}}
    constraint = {"type": kind, **parameters.get(kind, dict)()}
    return constraint, constraint_sentence(constraint)


KINDS = ["lowercase", "uppercase", "no_commas", "max_words", "max_sentences", "include_keywords", "ends_with",
         "starts_with", "bullets", "json", "no_digits", "quoted"]


def _pick_kinds(rng: random.Random) -> list[str]:
    count = rng.choice([1, 2, 2, 3])
    kinds: list[str] = []
    while len(kinds) < count:
        kind = rng.choice(KINDS)
        if not conflicts(kind, kinds):
            kinds.append(kind)
    return kinds


def make(topics: list[str], count: int, rng: random.Random, id_prefix: str) -> list[dict]:
    records = []
    for i in range(count):
        topic = topics[i % len(topics)]
        task = rng.choice(TASKS).format(topic=topic)
        constraints, sentences = zip(*(_constraint(k, rng) for k in _pick_kinds(rng)))
        records.append({"id": f"{id_prefix}-{i:04d}",
                        "messages": [{"role": "user", "content": " ".join([task, *sentences])}],
                        "constraints": list(constraints)})
    return records


def main() -> None:
    rng = random.Random(20261122)
    out = Path(__file__).resolve().parents[1] / "prompts" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    for name, topics, count in [("train", TRAIN_TOPICS, 240), ("heldout", HELDOUT_TOPICS, 60)]:
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for record in make(topics, count, rng, name):
                f.write(json.dumps(record) + "\n")
    assert not set(TRAIN_TOPICS) & set(HELDOUT_TOPICS)


if __name__ == "__main__":
    main()
