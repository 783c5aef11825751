"""Regenerate prompts/preferences/topic-pairs.jsonl: clearly separable preference pairs for `tao-ray train-rm`.

Each pair asks about one topic; "chosen" answers about that topic, "rejected" answers about a different one (an
off-topic reply). Deterministic (fixed seed). Run: python tools/make_preference_pairs.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

FACTS = {
    "coffee": "Coffee is brewed from roasted beans and its caffeine helps many people wake up in the morning.",
    "bicycles": "Bicycles are pedal-powered two-wheelers, a cheap and healthy way to get around town.",
    "volcanoes": "Volcanoes are openings in the crust where molten rock, ash and gas escape from deep below.",
    "honey bees": "Honey bees collect nectar from flowers, pollinate crops and store honey in wax combs.",
    "chess": "Chess is a strategy game for two players who move sixteen pieces each across a checkered board.",
    "lighthouses": "Lighthouses are towers with bright lamps that guide ships safely past rocks at night.",
    "penguins": "Penguins are flightless seabirds that swim fast and live mostly in the cold southern oceans.",
    "glaciers": "Glaciers are slow rivers of ice that carve valleys as they creep down mountains.",
    "owls": "Owls are nocturnal birds of prey with silent wings and eyes that see well in the dark.",
    "bridges": "Bridges carry roads and railways across rivers and valleys on beams, arches or cables.",
    "submarines": "Submarines are ships that dive under the sea by filling tanks with water.",
    "cats": "Cats are small, independent pets that purr, nap often and hunt mice.",
    "solar panels": "Solar panels turn sunlight into electricity using layers of silicon cells.",
    "tomatoes": "Tomatoes are juicy red fruits used in salads, sauces and soups.",
    "castles": "Castles are fortified stone buildings with thick walls, towers and moats.",
    "violins": "Violins are string instruments played with a bow, with four strings tuned in fifths.",
    "dolphins": "Dolphins are clever marine mammals that breathe air and talk with clicks and whistles.",
    "mushrooms": "Mushrooms are the fruiting bodies of fungi that grow in damp, shady places.",
    "airports": "Airports are hubs where planes take off and land and travellers check in their bags.",
    "caves": "Caves are hollow spaces in rock, often carved by water over thousands of years.",
    "whales": "Whales are huge ocean mammals; the blue whale is the largest animal that ever lived.",
    "pizza": "Pizza is a flat bread baked with tomato sauce, cheese and toppings in a hot oven.",
    "thunderstorms": "Thunderstorms bring lightning, thunder, heavy rain and strong gusts of wind.",
    "tigers": "Tigers are large striped cats that hunt alone in the forests of Asia.",
    "telescopes": "Telescopes gather light with lenses or mirrors so we can see distant stars and planets.",
    "chocolate": "Chocolate is made from roasted cacao beans mixed with sugar and often milk.",
    "waterfalls": "Waterfalls form where a river drops over a steep cliff or ledge.",
    "keyboards": "Keyboards are rows of keys used to type letters and numbers into a computer.",
    "strawberries": "Strawberries are sweet red berries with tiny seeds on the outside.",
    "canoes": "Canoes are narrow boats paddled by hand, light enough to carry between lakes.",
}

QUESTIONS = ["What can you tell me about {topic}?", "Describe {topic} in one sentence.",
             "Give me a quick fact about {topic}.", "Explain what {topic} are or is, briefly."]


def main() -> None:
    rng = random.Random(0)
    topics = sorted(FACTS)
    pairs = []
    for topic in topics:
        for question in QUESTIONS:
            other = rng.choice([t for t in topics if t != topic])
            pairs.append({"prompt": question.format(topic=topic), "chosen": FACTS[topic], "rejected": FACTS[other]})
    rng.shuffle(pairs)
    out = Path(__file__).resolve().parent.parent / "prompts" / "preferences" / "topic-pairs.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    print(f"{out}: {len(pairs)} pairs")


if __name__ == "__main__":
    main()
