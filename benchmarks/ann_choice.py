"""Index choice for the prompt store: an approximate-nearest-neighbour library for embedding near-duplicates and a
MinHash-LSH library for 13-gram decontamination, picked by measurement on synthetic prompts.

ANN. N distinct templated prompts (plus about 5% rewordings of earlier ones, so that true near-duplicates exist) are
embedded with the project's all-MiniLM-L6-v2 `Embedder` (unit vectors, cosine distance = 1 - dot). Ingest is
simulated in batches of 1024: each batch is searched (k=1) against everything stored before it, then added. An exact
brute-force pass with the same semantics is the reference. Per library and parameter set the JSON gives build+query
seconds, add and query throughput, saved size, save+load seconds, top-1 recall (same id as exact) and
near-duplicate recall: among queries whose exact nearest earlier neighbour is closer than
`NEAR_DUPLICATE_DISTANCE`, the fraction for which the library also returns a neighbour that close. Pairs inside one
batch are left to an exact in-batch comparison (cheap) and are counted separately, not charged to the index.

MinHash-LSH. 2,000 prompts from a separate held-out-style template family are the reference set; about 5% of the N
prompts copy a span of 13 to 30 words of a reference. Shingles are word 13-grams of the normalized text
(`decontamination.ngrams`). A prompt is a true positive when it shares at least one 13-gram with any reference
(exact set intersection); the JSON gives, per library and banding, build seconds, hash+query seconds, candidate
recall and false-candidate rate. Two prompts of ~40 grams sharing one gram have Jaccard ~0.01, so the banding is
one row per band (any equal min-hash makes a candidate); two rows per band is measured to show what a higher
threshold loses. An exact Python set of reference 13-grams is measured too, since it answers the same question
without any approximation.

    .venv/bin/pip install hnswlib usearch datasketch   # the candidates tao-ray does not install (faiss, rensa: it does)
    python -m benchmarks.ann_choice [--n 20000] [--out benchmarks/results-ann-choice-cpu.json]

The choice it led to: faiss HNSW (M 16) for the store's index (data/vector_index.py), an exact set of reference
13-grams for n-gram contamination, and rensa's MinHash-LSH for the reworded-copy check (5-word shingles, a Jaccard
rule, where an LSH earns its place; data/decontamination.py).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("results-ann-choice-cpu.json")
BATCH = 1024
DIM = 384
REFERENCES = 2000
NEAR_DUP_SHARE = 0.05
SPAN_COPY_SHARE = 0.05
SEED = 1234
LIBRARIES = ("faiss-cpu", "usearch", "hnswlib", "datasketch", "rensa", "torch", "sentence-transformers", "numpy")

# --- synthetic prompts --------------------------------------------------------------------------------------------

def _words(block: str) -> list[str]:
    """A vocabulary written as 'a|b|c' over several lines."""
    return [word.strip() for word in block.replace("\n", "").split("|")]


SUBJECTS = _words("""photosynthesis|the French Revolution|sourdough baking|plate tectonics|the stock market|
quantum tunnelling|
urban beekeeping|the Roman aqueducts|machine translation|coral reef bleaching|the printing press|jazz improvisation|
vaccine development|medieval castles|solar panels|the water cycle|chess openings|the Silk Road|black holes|composting|
the human immune system|electric cars|supply chains|the Renaissance|cloud computing|volcanic eruptions|tea ceremonies|
the Apollo missions|antibiotic resistance|minimalist architecture|wind turbines|the Great Barrier Reef|cryptography|
origami|the Industrial Revolution|sleep cycles|desert ecosystems|public libraries|the Olympic Games|nuclear fusion|
bird migration|container shipping|the Byzantine Empire|wildfire prevention|lithium batteries|sign languages|
glacier retreat|street food culture|the periodic table|open-source software|marathon training|tidal energy|
the Hubble telescope|bread fermentation|rainforest canopies|railway signalling|the Mongol Empire|honeybee colonies|
microplastics|the Fibonacci sequence|3D printing|ancient Egyptian medicine|weather forecasting|paper recycling|
the Cold War|mushroom foraging|satellite navigation|the circulatory system|hydroponic farming|opera staging|
cave paintings|carbon capture|the Ottoman navy|sea turtles|public transport planning|smartphone cameras|
the metric system|earthquake engineering|indoor air quality|the Harlem Renaissance|deep-sea vents|credit scores|
knitting patterns|the Suez Canal|monsoon seasons|bicycle maintenance|vertical gardens|lighthouse keeping""")

ASPECTS = _words("""history|main risks|economic impact|basic mechanics|common misconceptions|future prospects|
environmental footprint|key inventors|everyday relevance|ethical questions|cost structure|safety practices|
cultural significance|scientific evidence|regional differences|biggest controversies|technical vocabulary|
practical benefits|hidden trade-offs|early origins|recent breakthroughs|role in education|measurement methods|
influence on art|legal regulation""")

AUDIENCES = _words("""a curious ten-year-old|first-year university students|retired engineers|busy parents|
a city council|
high-school teachers|nurses on a night shift|software developers|farmers in a drought region|museum visitors|
a podcast audience|new immigrants learning English|small business owners|professional chefs|amateur astronomers|
hospital administrators|a book club|graduate researchers|tourists on a guided walk|journalists on a deadline|
volunteer firefighters|art students|investment bankers|a rural radio audience|competitive gamers""")

TEMPLATES = [
    "Describe {topic} for {audience} in at most {k} words.",
    "Explain {topic} to {audience}, using no more than {k} words.",
    "Write a short overview of {topic} aimed at {audience}; keep it under {k} words.",
    "Summarize {topic} for {audience} in roughly {k} words.",
    "Give {audience} a clear introduction to {topic} in {k} words or fewer.",
    "Compose a {style} note about {topic} for {audience}, at most {k} words long.",
    "Draft a {style} paragraph on {topic} that {audience} would enjoy, within {k} words.",
    "In {k} words or less, tell {audience} what matters most about {topic}.",
    "Write a {style} explanation of {topic} for {audience} with a limit of {k} words.",
    "Help {audience} understand {topic}; answer in no more than {k} words.",
    "Prepare a {style} briefing on {topic} for {audience} of at most {k} words.",
    "Outline {topic} for {audience} in {k} words at most, in a {style} tone.",
]

STYLES = _words("""friendly|formal|playful|concise|poetic|journalistic|academic|conversational|persuasive|neutral|
enthusiastic|sober|humorous|story-like|technical""")

CONSTRAINTS = [
    "Use exactly {n} bullet points.",
    "Do not use any commas.",
    "End your answer with the phrase '{phrase}'.",
    "Include the keyword '{word}' at least {n} times.",
    "Start every sentence with a different letter.",
    "Write the whole answer in lowercase letters.",
    "Wrap the entire response in double quotation marks.",
    "Mention at least {n} concrete numbers.",
    "Give the answer a title wrapped in double angular brackets.",
    "Finish with a question addressed to the reader.",
    "Avoid the word '{word}' entirely.",
    "Split the answer into {n} paragraphs separated by a blank line.",
    "Add a postscript starting with P.S.",
    "Highlight at least {n} sections with markdown.",
    "Use no more than {n} sentences.",
]

SITUATIONS = [
    "{person} from {city} needs it for a {event} on {date} and it should {purpose}.",
    "{person} in {city} will use it at a {event} on {date}, so it must {purpose}.",
    "For the {event} that {person} is hosting in {city} on {date}, please make it {purpose_adj}.",
]
EVENTS = _words("""workshop|school assembly|radio segment|community meeting|newsletter issue|training session|
museum tour|
family dinner|conference panel|library exhibition|team retrospective|science fair""")
FIRST = _words("""Ana|Ben|Chloe|Dmitri|Elif|Farid|Grace|Hiro|Ines|Jonas|Kemi|Lars|Maya|Nikhil|Olga|Pablo|Quinn|Rosa|
Sven|
Tara|Umar|Vera|Wen|Ximena|Yusuf|Zoe|Amara|Bruno|Cora|Diego""")
LAST = _words("""Okafor|Lindqvist|Tanaka|Moreau|Kowalski|Haddad|Fernandes|Novak|Osei|Brennan|Castillo|Weber|Petrov|
Nguyen|
Rossi|Schmidt|Yilmaz|Dubois|Kaur|Silva|Jensen|Mensah|Ortega|Hughes|Sato|Costa|Berg|Ali|Varga|Quinn""")
CITIES = _words("""Lisbon|Nairobi|Osaka|Toronto|Krakow|Lagos|Hamburg|Lima|Hanoi|Adelaide|Bergen|Porto|Denver|Seville|
Tbilisi|Cork|Montreal|Busan|Accra|Tallinn|Valparaiso|Ghent|Leeds|Bologna|Tucson|Cusco|Ljubljana|Galway|
Dakar|Oulu""")
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December".split("|")
PURPOSES = _words("""keep people engaged|spark a discussion|fit on one slide|translate easily|avoid jargon|
work without pictures|stay accurate|feel personal|invite questions|fit on a postcard""")
PURPOSE_ADJ = _words("""engaging|thought-provoking|short enough for one slide|easy to translate|free of jargon|
clear without pictures|strictly accurate|personal|open to questions|postcard-sized""")
QUALIFIERS = _words("""modern|local|early|global|small-scale|industrial|traditional|experimental|coastal|urban|rural|
large-scale|amateur|professional|historical|everyday|tropical|northern|low-cost|community""")
PHRASES = "Any other questions?|That is all.|Stay curious!|Thanks for reading.|See you next time.".split("|")
WORDS = _words("""energy|balance|future|signal|pattern|network|river|memory|harvest|orbit|texture|rhythm|bridge|lantern|
compass|season|anchor|spark|canvas|echo|garden|thread|summit|tide|mirror|ledger|beacon|mosaic|engine|
voyage""")
LIMITS = (20, 25, 30, 40, 50, 60, 75, 80, 100, 120, 150, 200)
NUMBER_WORDS = {20: "twenty", 25: "twenty-five", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty",
                75: "seventy-five", 80: "eighty", 100: "one hundred", 120: "one hundred and twenty",
                150: "one hundred and fifty", 200: "two hundred"}
SYNONYMS = {"Describe": "Portray", "Explain": "Clarify", "Write": "Produce", "Summarize": "Sum up",
            "short": "brief", "clear": "plain", "Give": "Offer", "Help": "Assist", "Prepare": "Put together",
            "Outline": "Sketch", "Draft": "Write", "Compose": "Write", "at most": "no more than",
            "no more than": "at most", "under": "below", "roughly": "about", "tell": "inform",
            "need": "require", "want": "would like", "concise": "succinct", "friendly": "warm"}
REFERENCE_TEMPLATES = [
    "Question {i}: what is the {aspect} of {subject}? Answer as if speaking to {audience}.",
    "Task {i}. Considering {subject}, discuss its {aspect}; the readers are {audience}.",
    "Item {i} - {audience} ask about {subject}. Focus on its {aspect} and keep a {style} voice.",
    "Exercise {i}: {style} essay prompt. Topic: {subject}. Angle: {aspect}. Readers: {audience}.",
]
REFERENCE_RULES = [
    "Respond in between {lo} and {hi} words.",
    "Cite {n} sources by author surname, for example {last}.",
    "Your reply must mention {city} and the year {year}.",
    "Refer to the reader as {first} throughout.",
    "Use the word {word} exactly {n} times and never use {word2}.",
]
SPAN_CONNECTORS = ("Use this passage as a starting point:", "Build on the following text:",
                   "Here is an earlier draft to improve:", "Take this excerpt into account:")


def _article(text: str) -> str:
    return re.sub(r"\ba ([aeiou])", r"an \1", text)


def fresh_prompt(rng: random.Random) -> str:
    """One templated prompt: a task sentence, one or two constraints, then who needs it, where and when. Names,
    places and dates keep unrelated prompts from sharing 13-grams through template wording alone."""
    k = rng.choice(LIMITS)
    topic = f"the {rng.choice(ASPECTS)} of {rng.choice(QUALIFIERS)} {rng.choice(SUBJECTS)}"
    parts = [rng.choice(TEMPLATES).format(topic=topic, audience=rng.choice(AUDIENCES), k=k,
                                          style=rng.choice(STYLES))]
    for constraint in rng.sample(CONSTRAINTS, rng.choice((1, 2))):
        parts.append(constraint.format(n=rng.randint(2, 9), phrase=rng.choice(PHRASES), word=rng.choice(WORDS)))
    date = f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(2020, 2031)}"
    parts.append(rng.choice(SITUATIONS).format(person=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                                               city=rng.choice(CITIES), event=rng.choice(EVENTS), date=date,
                                               purpose=rng.choice(PURPOSES), purpose_adj=rng.choice(PURPOSE_ADJ)))
    return _article(" ".join(parts))


def reference_prompt(rng: random.Random) -> str:
    """A held-out-style prompt from a separate template family, so that prompts share 13-grams with the reference
    set through copied spans rather than through common template wording."""
    parts = [rng.choice(REFERENCE_TEMPLATES).format(i=rng.randint(1, 9999), aspect=rng.choice(ASPECTS),
                                                    subject=rng.choice(SUBJECTS), audience=rng.choice(AUDIENCES),
                                                    style=rng.choice(STYLES))]
    for rule in rng.sample(REFERENCE_RULES, 2):
        lo = rng.randrange(50, 300, 10)
        parts.append(rule.format(lo=lo, hi=lo + rng.randrange(20, 200, 10), n=rng.randint(2, 9),
                                 last=rng.choice(LAST), city=rng.choice(CITIES), year=rng.randint(1800, 2030),
                                 first=rng.choice(FIRST), word=rng.choice(WORDS), word2=rng.choice(WORDS)))
    return _article(" ".join(parts))


def reword(text: str, rng: random.Random) -> str:
    """A near-duplicate: a synonym swap, a number spelled out, changed punctuation or case (one to three of them)."""
    edits = rng.sample(["synonym", "number", "punctuation", "case"], rng.randint(1, 3))
    for edit in edits:
        if edit == "synonym":
            present = [w for w in SYNONYMS if w in text]
            if present:
                word = rng.choice(present)
                text = text.replace(word, SYNONYMS[word], 1)
        elif edit == "number":
            present = [k for k in LIMITS if f" {k} " in text]
            if present:
                k = rng.choice(present)
                text = text.replace(f" {k} ", f" {NUMBER_WORDS[k]} ", 1)
        elif edit == "punctuation":
            text = text.replace(". ", "; ", 1) if rng.random() < 0.5 else text.rstrip(".") + "!"
        else:
            text = text.lower() if rng.random() < 0.5 else text[0].lower() + text[1:]
    return text


def span_copy(reference: str, rng: random.Random) -> str:
    """A fresh prompt that quotes 13 to 30 consecutive words of a reference prompt."""
    words = reference.split()
    length = min(len(words), rng.randint(13, 30))
    start = rng.randint(0, len(words) - length)
    return f"{fresh_prompt(rng)} {rng.choice(SPAN_CONNECTORS)} {' '.join(words[start:start + length])}"


def make_prompts(n: int, seed: int = SEED) -> tuple[list[str], list[str], dict]:
    """N distinct prompts (about 5% rewordings, about 5% span copies of references) and REFERENCES references."""
    from tao_ray.data.decontamination import normalize

    rng = random.Random(seed)
    seen: set[str] = set()

    def distinct(make) -> str:
        while True:
            text = make()
            key = normalize(text)
            if key not in seen:
                seen.add(key)
                return text

    references = [distinct(lambda: reference_prompt(rng)) for _ in range(REFERENCES)]
    prompts: list[str] = []
    kinds = {"fresh": 0, "reworded": 0, "span_copy": 0}
    while len(prompts) < n:
        roll = rng.random()
        if roll < NEAR_DUP_SHARE and prompts:
            prompts.append(distinct(lambda: reword(rng.choice(prompts), rng)))
            kinds["reworded"] += 1
        elif roll < NEAR_DUP_SHARE + SPAN_COPY_SHARE:
            prompts.append(distinct(lambda: span_copy(rng.choice(references), rng)))
            kinds["span_copy"] += 1
        else:
            prompts.append(distinct(lambda: fresh_prompt(rng)))
            kinds["fresh"] += 1
    return prompts, references, kinds


# --- embeddings and the exact reference ---------------------------------------------------------------------------

def embed(texts: list[str]) -> tuple[np.ndarray, dict]:
    import torch

    from tao_ray.data.embeddings import Embedder

    embedder = Embedder("cpu")
    embedder(texts[:64])  # warm-up outside the timing
    start = time.perf_counter()
    vectors = torch.stack(embedder(texts)).numpy().astype(np.float32)
    seconds = time.perf_counter() - start
    words = sum(len(t.split()) for t in texts) / len(texts)
    return vectors, {"seconds": round(seconds, 2), "prompts_per_s": round(len(texts) / seconds, 1),
                     "mean_words_per_prompt": round(words, 1), "torch_threads": torch.get_num_threads()}


def exact_neighbours(vectors: np.ndarray) -> dict:
    """Exact top-1 per query, in blocks aligned with the ingest batches.

    `seq_*`: against every earlier vector (j < i, in-batch ones included). `prev_*`: against earlier batches only,
    which is what an index sees when a batch is searched before it is added."""
    n = len(vectors)
    seq_id, seq_dist = np.full(n, -1), np.full(n, 2.0, dtype=np.float32)
    prev_id, prev_dist = np.full(n, -1), np.full(n, 2.0, dtype=np.float32)
    start = time.perf_counter()
    for s in range(0, n, BATCH):
        e = min(s + BATCH, n)
        sims = vectors[s:e] @ vectors[:e].T
        rows = np.arange(e - s)
        sims[np.arange(s, e)[:, None] <= np.arange(e)[None, :]] = -np.inf  # mask j >= i
        best = sims.argmax(1)
        seq_id[s:e], seq_dist[s:e] = best, 1.0 - sims[rows, best]
        if s:
            best = sims[:, :s].argmax(1)
            prev_id[s:e], prev_dist[s:e] = best, 1.0 - sims[rows, best]
    seq_id[0] = -1
    seconds = time.perf_counter() - start
    return {"seq_id": seq_id, "seq_dist": seq_dist, "prev_id": prev_id, "prev_dist": prev_dist, "seconds": seconds}


# --- ANN libraries ------------------------------------------------------------------------------------------------

class FaissHNSW:
    def __init__(self, m: int, ef_construction: int, ef_search: int):
        import faiss

        self.faiss = faiss
        self.index = faiss.IndexHNSWFlat(DIM, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.hnsw.efSearch = ef_search

    def add(self, ids, vectors):  # faiss HNSW ids are insertion positions, which here equal ids
        self.index.add(vectors)

    def search(self, vectors):
        _, ids = self.index.search(vectors, 1)
        return ids[:, 0]

    def save(self, path):
        self.faiss.write_index(self.index, str(path))

    def load(self, path):
        self.index = self.faiss.read_index(str(path))


class FaissFlat(FaissHNSW):
    def __init__(self):
        import faiss

        self.faiss = faiss
        self.index = faiss.IndexFlatIP(DIM)


class USearch:
    def __init__(self, m: int, ef_construction: int, ef_search: int, metric: str, dtype: str):
        from usearch.index import Index

        self.spec = dict(ndim=DIM, metric=metric, dtype=dtype, connectivity=m, expansion_add=ef_construction,
                         expansion_search=ef_search)
        self.index = Index(**self.spec)

    def add(self, ids, vectors):
        self.index.add(ids, vectors)

    def search(self, vectors):
        matches = self.index.search(vectors, 1)
        ids = np.asarray(matches.keys).reshape(len(vectors), -1)[:, 0].astype(np.int64)
        found = np.asarray(matches.counts).reshape(-1) > 0
        return np.where(found, ids, -1)

    def save(self, path):
        self.index.save(str(path))

    def load(self, path):
        from usearch.index import Index

        self.index = Index(**self.spec)
        self.index.load(str(path))


class HnswLib:
    def __init__(self, m: int, ef_construction: int, ef_search: int, capacity: int):
        import hnswlib

        self.hnswlib, self.ef_search = hnswlib, ef_search
        self.index = hnswlib.Index(space="ip", dim=DIM)
        self.index.init_index(max_elements=capacity, M=m, ef_construction=ef_construction, random_seed=100)
        self.index.set_ef(ef_search)

    def add(self, ids, vectors):
        self.index.add_items(vectors, ids)

    def search(self, vectors):
        labels, _ = self.index.knn_query(vectors, k=1)
        return labels[:, 0].astype(np.int64)

    def save(self, path):
        self.index.save_index(str(path))

    def load(self, path):
        capacity = self.index.get_max_elements()
        self.index = self.hnswlib.Index(space="ip", dim=DIM)
        self.index.load_index(str(path), max_elements=capacity)
        self.index.set_ef(self.ef_search)


def ann_configs(n: int) -> dict:
    """name -> (factory, parameters reported in the JSON)."""
    configs = {"faiss-flat-ip (exact)": (FaissFlat, {})}
    for m, efc, efs in ((16, 100, 64), (32, 200, 128)):
        p = {"M": m, "ef_construction": efc, "ef_search": efs}
        configs[f"faiss-hnsw M{m}"] = (lambda m=m, efc=efc, efs=efs: FaissHNSW(m, efc, efs), p)
        configs[f"hnswlib M{m}"] = (lambda m=m, efc=efc, efs=efs: HnswLib(m, efc, efs, n), p)
        for metric, dtype in (("ip", "f32"), ("cos", "f32"), ("ip", "f16")):
            configs[f"usearch {metric}/{dtype} M{m}"] = (
                lambda m=m, efc=efc, efs=efs, metric=metric, dtype=dtype: USearch(m, efc, efs, metric, dtype),
                {**p, "metric": metric, "dtype": dtype})
    return configs


def ingest(index, vectors: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Search each batch against the index, then add it. Returns found ids and add / query seconds."""
    found = np.full(len(vectors), -1, dtype=np.int64)
    add_s = query_s = 0.0
    for s in range(0, len(vectors), BATCH):
        e = min(s + BATCH, len(vectors))
        batch = np.ascontiguousarray(vectors[s:e])
        if s:
            t = time.perf_counter()
            found[s:e] = index.search(batch)
            query_s += time.perf_counter() - t
        t = time.perf_counter()
        index.add(np.arange(s, e, dtype=np.int64), batch)
        add_s += time.perf_counter() - t
    return found, add_s, query_s


def save_load(index, vectors: np.ndarray) -> dict:
    """Save, load, check the loaded index answers like the saved one, extend it by one batch and re-save."""
    probe = np.ascontiguousarray(vectors[-256:])
    before = index.search(probe)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.bin"
        t = time.perf_counter()
        index.save(path)
        save_s = time.perf_counter() - t
        size = path.stat().st_size
        t = time.perf_counter()
        index.load(path)
        load_s = time.perf_counter() - t
        same = float((index.search(probe) == before).mean())
    return {"file_mb": round(size / 2**20, 2), "save_s": round(save_s, 3), "load_s": round(load_s, 3),
            "save_load_s": round(save_s + load_s, 3), "same_answers_after_load": same}


def extend_check(factory, vectors: np.ndarray) -> bool:
    """Build on all but the last batch, save, load into a fresh object, add the last batch, re-save, re-load: the
    last batch must then find itself."""
    head, tail = vectors[:-BATCH], np.ascontiguousarray(vectors[-BATCH:])
    index = factory()
    index.add(np.arange(len(head), dtype=np.int64), head)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.bin"
        index.save(path)
        index = factory()
        index.load(path)
        index.add(np.arange(len(head), len(vectors), dtype=np.int64), tail)
        index.save(path)
        index = factory()
        index.load(path)
        return bool((index.search(tail) == np.arange(len(head), len(vectors))).mean() > 0.99)


def score(found: np.ndarray, vectors: np.ndarray, exact: dict, threshold: float) -> dict:
    """Recall against the exact neighbours among earlier batches (the index's share of the work)."""
    queries = np.arange(BATCH, len(vectors))
    ids = found[queries]
    dist = np.where(ids >= 0, 1.0 - np.einsum("ij,ij->i", vectors[queries], vectors[np.maximum(ids, 0)]), 2.0)
    positive = exact["prev_dist"][queries] < threshold
    return {"top1_recall": round(float((ids == exact["prev_id"][queries]).mean()), 4),
            "near_dup_recall": round(float((dist[positive] < threshold).mean()), 4),
            "near_dup_positives": int(positive.sum()),
            "near_dup_missed": int((dist[positive] >= threshold).sum()),
            "false_near_dups": int(((dist < threshold) & ~positive).sum())}


def run_ann(vectors: np.ndarray, exact: dict, threshold: float) -> dict:
    results = {}
    n = len(vectors)
    for name, (factory, params) in ann_configs(n).items():
        index = factory()
        found, add_s, query_s = ingest(index, vectors)
        row = {"params": params, "build_query_s": round(add_s + query_s, 3), "add_s": round(add_s, 3),
               "query_s": round(query_s, 3), "add_per_s": round(n / add_s), "query_per_s": round((n - BATCH) / query_s),
               **score(found, vectors, exact, threshold), **save_load(index, vectors),
               "extend_saved_index_ok": extend_check(factory, vectors)}
        results[name] = row
        print(json.dumps({name: row}), flush=True)
    return results


# --- MinHash-LSH --------------------------------------------------------------------------------------------------

def shingles(text: str, n: int) -> list[str]:
    from tao_ray.data.decontamination import ngrams

    return sorted(" ".join(gram) for gram in ngrams(text, n))


def exact_overlap(prompts: list[list[str]], references: list[list[str]]) -> tuple[np.ndarray, dict]:
    start = time.perf_counter()
    grams = set().union(*map(set, references))
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    truth = np.array([not grams.isdisjoint(p) for p in prompts])
    return truth, {"build_s": round(build_s, 3), "hash_query_s": round(time.perf_counter() - start, 3)}


def datasketch_lsh(prompts, references, num_perm: int, bands: int) -> tuple[list[bool], dict]:
    from datasketch import MinHash, MinHashLSH

    def hashes(sets):
        return MinHash.bulk([[g.encode() for g in s] for s in sets], num_perm=num_perm, seed=1)

    start = time.perf_counter()
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, num_perm // bands))
    with lsh.insertion_session() as session:
        for i, mh in enumerate(hashes(references)):
            session.insert(i, mh)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    hits = [bool(s) and bool(lsh.query(mh)) for s, mh in zip(prompts, hashes(prompts))]
    return hits, {"build_s": round(build_s, 3), "hash_query_s": round(time.perf_counter() - start, 3)}


def rensa_lsh(prompts, references, num_perm: int, bands: int) -> tuple[list[bool], dict]:
    from rensa import RMinHash, RMinHashLSH

    start = time.perf_counter()
    lsh = RMinHashLSH(threshold=0.01, num_perm=num_perm, num_bands=bands)
    lsh.insert_many(RMinHash.from_token_sets(references, num_perm=num_perm, seed=42), start_key=0)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    hashed = RMinHash.from_token_sets(prompts, num_perm=num_perm, seed=42)
    hits = [bool(s) and bool(lsh.query(mh)) for s, mh in zip(prompts, hashed)]
    return hits, {"build_s": round(build_s, 3), "hash_query_s": round(time.perf_counter() - start, 3)}


def run_minhash(texts: list[str], reference_texts: list[str], n: int) -> dict:
    prompts = [shingles(t, n) for t in texts]
    references = [shingles(t, n) for t in reference_texts]
    truth, exact_row = exact_overlap(prompts, references)
    results = {"positives": int(truth.sum()), "queries": len(prompts),
               "prompts_without_a_gram": sum(not p for p in prompts),
               "mean_grams_per_prompt": round(float(np.mean([len(p) for p in prompts])), 1),
               "exact python set": exact_row}
    for num_perm, bands in ((128, 128), (128, 64), (256, 256)):
        for name, fn in (("datasketch", datasketch_lsh), ("rensa", rensa_lsh)):
            hits, row = fn(prompts, references, num_perm, bands)
            hits = np.array(hits)
            row.update(num_perm=num_perm, bands=bands, rows=num_perm // bands,
                       candidate_recall=round(float(hits[truth].mean()), 4),
                       false_candidate_rate=round(float(hits[~truth].mean()), 4))
            results[f"{name} perm{num_perm} b{bands}r{num_perm // bands}"] = row
            print(json.dumps({name: row}), flush=True)
    return results


# --- report -------------------------------------------------------------------------------------------------------

def versions() -> dict:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="synthetic prompts (default 20000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS.name})")
    args = parser.parse_args()

    from tao_ray.data.decontamination import NEAR_DUPLICATE_DISTANCE, NGRAM

    texts, reference_texts, kinds = make_prompts(args.n)
    vectors, embedding = embed(texts)
    exact = exact_neighbours(vectors)
    print(json.dumps({"embedding": embedding, "exact_s": round(exact["seconds"], 3)}), flush=True)
    ann = run_ann(vectors, exact, NEAR_DUPLICATE_DISTANCE)
    minhash = run_minhash(texts, reference_texts, NGRAM)
    report = {
        "benchmark": "ann_choice",
        "hardware": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine(),
                     "python": platform.python_version()},
        "versions": versions(),
        "n": args.n, "references": REFERENCES, "batch": BATCH, "prompt_kinds": kinds,
        "near_duplicate_distance": NEAR_DUPLICATE_DISTANCE, "ngram": NGRAM,
        "embedding": embedding,
        "exact": {"seconds": round(exact["seconds"], 3),
                  "positive_pairs_sequential": int((exact["seq_dist"] < NEAR_DUPLICATE_DISTANCE).sum()),
                  "positive_pairs_across_batches": int((exact["prev_dist"] < NEAR_DUPLICATE_DISTANCE).sum()),
                  "positive_pairs_within_batch_only": int(((exact["seq_dist"] < NEAR_DUPLICATE_DISTANCE)
                                                           & (exact["prev_dist"] >= NEAR_DUPLICATE_DISTANCE)).sum())},
        "ann": ann,
        "minhash": minhash,
    }
    report["choice"] = choose(report)
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


def choose(report: dict) -> dict:
    """Fastest HNSW configuration that keeps near-duplicate recall >= 0.99; fastest LSH with candidate recall
    >= 0.99 (ties on speed go to the smaller index and to the maintained pure-Python fallback)."""
    ann = {k: v for k, v in report["ann"].items() if "exact" not in k and v["near_dup_recall"] >= 0.99
           and v["extend_saved_index_ok"]}
    ann_pick = min(ann, key=lambda k: ann[k]["build_query_s"]) if ann else None
    lsh = {k: v for k, v in report["minhash"].items() if isinstance(v, dict) and "candidate_recall" in v
           and v["candidate_recall"] >= 0.99}
    lsh_pick = min(lsh, key=lambda k: lsh[k]["build_s"] + lsh[k]["hash_query_s"]) if lsh else None
    return {"ann": ann_pick, "ann_rule": "fastest build+query with near-duplicate recall >= 0.99 and a saved index "
                                         "that can be loaded, extended and re-saved",
            "minhash_lsh": lsh_pick, "minhash_rule": "fastest build + hash+query with candidate recall >= 0.99"}


if __name__ == "__main__":
    main()
