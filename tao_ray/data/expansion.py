"""Prompt expansion: new training prompts written by an LLM from a few seed prompts, as `tao-ray expand` runs it.

A seed is split into its task ("Describe bicycles.") and its checks (constraints, or IFEval-style instructions).
The LLM only ever writes tasks: a paraphrase of the seed's task, an Evol-Instruct-style rewrite of it (another topic,
more detail, harder), or a new task in the style of a few seeds shown as earlier turns. The new prompt is that task
followed by the sentences of the seed's checks, so the checks apply by construction; the checks in the demo and IFEval
formats are about the answer's form (case, length, keywords...), which any task can be asked in.

Small models are noisy writers, so each sample is cleaned (first line, no "Sure, here is..." chatter, no quotes),
must look like a request, and is rejected with a counted reason otherwise. Decisions over embeddings (near duplicates
of a seed or of an accepted prompt, copies of held-out prompts) take the vectors as given.
In: seed records, a `draw(requests) -> samples` callable (the engine) and an `embed` callable. Out: prompt rows.
No Ray, no vLLM.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tao_ray.data.check_text import conflicts, constraint_sentence, instruction_sentences
from tao_ray.data.decontamination import (
    NEAR_DUPLICATE_DISTANCE,
    Embed,
    References,
    as_matrix,
    normalize,
    prompt_key,
    prompt_text,
)
from tao_ray.data.prompts import PromptRecord
from tao_ray.data.vector_index import VectorIndex

# Each rewrite is taught by three worked turns before the real one: a 135M model follows examples where it ignores
# a bare instruction (asked to "rewrite this request", it answers the request instead). The examples' topics stay
# clear of the demo's held-out topics.
_EXAMPLE_TASKS = ("Describe a busy train station.", "Give me tips for learning to swim.",
                  "Write a poem about winter mornings.")
METHODS: dict[str, tuple[str, tuple[str, str, str]]] = {
    "paraphrase": ("Say this request in other words", (
        "Tell me what a busy train station is like.", "What advice would you give someone learning to swim?",
        "Compose a short poem about mornings in winter.")),
    "evolve-topic": ("Write a similar request about a different subject", (
        "Describe an old farmhouse kitchen.", "Give me tips for learning to knit.",
        "Write a poem about a lost balloon.")),
    "evolve-detail": ("Make this request more specific", (
        "Describe a busy train station at rush hour from the point of view of a ticket seller.",
        "Give me tips for learning to swim as an adult who is afraid of deep water.",
        "Write a poem about a winter morning when the school bus does not come.")),
    "evolve-difficulty": ("Make this request more challenging", (
        "Describe a busy train station and explain how its timetable keeps trains from colliding.",
        "Compare three ways of learning to swim and say which suits a nervous adult best.",
        "Write a poem about winter mornings that never uses the word cold.")),
}
NEW = "new"
"""Self-Instruct style: a few seed tasks as earlier answers to "write a new request", then one more."""
NEW_INSTRUCTION = "Write one new request a user might ask an assistant."
NEW_EXAMPLES = 4
ALL_METHODS = (*METHODS, NEW)
_COPYABLE = {normalize(t) for t in _EXAMPLE_TASKS} | {normalize(t) for _, outs in METHODS.values() for t in outs}

MIN_WORDS, MAX_WORDS = 3, 40
_PREFIX = re.compile(r"^\s*(?:(?:sure|okay|ok|certainly|of course|absolutely|great|here(?:'s| is| are)?|"
                     r"(?:the )?(?:new|rewritten|revised|similar|specific|harder|challenging|more specific|"
                     r"more challenging)(?: version of the)? request|request|rewritten|rewrite|revised|answer|"
                     r"question|task|prompt|user|assistant|a|q)\b[\s:,!.\-]*)+", re.IGNORECASE)
_REQUEST_START = set("""describe explain write tell give list share compose create suggest compare summarize summarise
what why how who when where which can could would should is are do does imagine draft name offer outline plan
recommend teach help make design find choose translate show propose invent develop discuss argue predict define
sketch prepare provide present recount narrate detail evaluate analyze analyse identify illustrate review pretend
please brainstorm rank sort count estimate calculate solve convert paint craft tell invent""".split())
_CHATTER = re.compile(r"\b(request|rewrit\w*|as an ai|i can't|i cannot|i'm|i am|i will|i'll|assistant|"
                      r"original|this prompt)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


@dataclass(frozen=True)
class Seed:
    id: str
    task: str
    """The request without its check sentences."""
    context: tuple[dict[str, str], ...]
    """Messages before the last user message (a system prompt), kept in every prompt made from this seed."""
    constraints: tuple[dict[str, Any], ...]
    instruction_ids: tuple[str, ...]
    instruction_kwargs: tuple[dict[str, Any], ...]


def check_sentences(constraints: Sequence[dict[str, Any]], instruction_ids: Sequence[str] = (),
                    instruction_kwargs: Sequence[dict[str, Any]] = ()) -> list[str]:
    sentences = [constraint_sentence(c) for c in constraints]
    if instruction_ids:
        sentences += instruction_sentences(instruction_ids, instruction_kwargs)
    return sentences


def split_seed(record: PromptRecord) -> Seed:
    """The seed's task: its last message minus the sentences of its checks. A file that words its checks its own
    way (as IFEval's does) leaves them unfound; then the first sentence, where the request stands, is the task."""
    text = record.messages[-1]["content"]
    task = text
    sentences = check_sentences(record.constraints, record.instruction_id_list, record.instruction_kwargs)
    for sentence in sentences:
        task = task.replace(sentence, " ") if sentence in task else task
    task = " ".join(task.split())
    if sentences and (not task or any(s not in text for s in sentences)):
        task = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    return Seed(id=record.id, task=task or text, context=record.messages[:-1], constraints=record.constraints,
                instruction_ids=record.instruction_id_list, instruction_kwargs=record.instruction_kwargs)


def request_messages(method: str, seed: Seed, examples: Sequence[Seed] = ()) -> list[dict[str, str]]:
    """The chat that asks the LLM for one new task by `method` (`examples`: the seeds shown for NEW)."""
    turns: list[tuple[str, str]]
    if method == NEW:
        turns = [(NEW_INSTRUCTION, example.task) for example in examples] + [(NEW_INSTRUCTION, "")]
    else:
        instruction, outputs = METHODS[method]
        turns = [(f"{instruction}: {task}", out) for task, out in zip(_EXAMPLE_TASKS, outputs)]
        turns.append((f"{instruction}: {seed.task}", ""))
    messages = []
    for user, assistant in turns:
        messages.append({"role": "user", "content": user})
        if assistant:
            messages.append({"role": "assistant", "content": assistant})
    return messages


def clean(sample: str) -> tuple[str | None, str | None]:
    """(task, None) for a usable sample, else (None, the reason it is rejected)."""
    lines = [line.strip() for line in sample.strip().splitlines() if line.strip()]
    if not lines:
        return None, "empty"
    text = lines[0].strip().strip("*#").strip()
    text = re.sub(r"^\d+[.)]\s+", "", text)  # "1. Describe ..." from a model that writes lists
    text = _PREFIX.sub("", text).strip().strip("\"'“”‘’`").strip()
    if not text:
        return None, "empty"
    if not re.search(r"[.!?][\"')\]]*$", text):
        return None, "unfinished"
    sentences = _SENTENCE_END.split(text)
    text = " ".join(sentences[:2])  # a request is short; a third sentence is the model answering itself
    words = text.split()
    if len(words) < MIN_WORDS:
        return None, "too_short"
    if len(words) > MAX_WORDS:
        return None, "too_long"
    if _CHATTER.search(text) or "\"" in text and text.count("\"") % 2:
        return None, "chatter"
    if normalize(words[0]) not in _REQUEST_START and not text.endswith("?"):
        return None, "not_a_request"
    if normalize(text) in _COPYABLE:
        return None, "copied_example"
    return text[0].upper() + text[1:], None


def vary_checks(constraints: Sequence[dict[str, Any]], pool: Sequence[dict[str, Any]],
                rng: random.Random) -> tuple[list[dict[str, Any]], str]:
    """Harder or easier by one check: add a constraint of a kind seen in the seeds (one that does not conflict) or
    drop one of several. Returns the constraints and what changed ("kept", "added max_words", "dropped json")."""
    kept = list(constraints)
    kinds = [c["type"] for c in kept]
    if len(kept) > 1 and rng.random() < 0.5:
        dropped = kept.pop(rng.randrange(len(kept)))
        return kept, f"dropped {dropped['type']}"
    addable = [c for c in pool if not conflicts(c["type"], kinds)]
    if not addable:
        return kept, "kept"
    added = dict(rng.choice(addable))
    return [*kept, added], f"added {added['type']}"


def build_prompt(task: str, seed: Seed, method: str, model: str, round_number: int,
                 constraints: Sequence[dict[str, Any]] | None = None, checks: str = "kept",
                 examples: Sequence[str] = ()) -> dict[str, Any]:
    """One prompt row: the task, then the sentences of its checks; its id and provenance in metadata.source."""
    constraints = list(seed.constraints if constraints is None else constraints)
    content = " ".join([task, *check_sentences(constraints, seed.instruction_ids, seed.instruction_kwargs)])
    messages = [*map(dict, seed.context), {"role": "user", "content": content}]
    source: dict[str, Any] = {"seed": seed.id, "method": method, "model": model, "round": round_number,
                              "checks": checks}
    if examples:
        source["examples"] = list(examples)
    row: dict[str, Any] = {"id": f"x-{prompt_key(prompt_text(messages))[:16]}", "messages": messages}
    if constraints:
        row["constraints"] = constraints
    if seed.instruction_ids:
        row["instruction_id_list"] = list(seed.instruction_ids)
        row["kwargs"] = [dict(k) for k in seed.instruction_kwargs]
    row["metadata"] = {"source": source, "task": task}
    return row


class Acceptance:
    """Accepts a new prompt unless it repeats a seed or an accepted prompt (the same normalized text, or embedding
    within `near_duplicate_distance`) or copies a held-out prompt (see decontamination.References). Repeats are
    found through the same nearest-neighbour index `ingest` uses."""

    def __init__(self, seed_texts: Sequence[str], seed_vectors: Sequence[Any], references: References,
                 near_duplicate_distance: float = NEAR_DUPLICATE_DISTANCE):
        self.keys = {prompt_key(t) for t in seed_texts}
        self.index: VectorIndex | None = None
        if len(seed_vectors):
            self._remember(as_matrix(seed_vectors))
        self.references, self.near_duplicate_distance = references, near_duplicate_distance

    def _remember(self, vectors: Any) -> None:
        if self.index is None:
            self.index = VectorIndex(vectors.shape[1])
        self.index.add(vectors)

    def reason_to_reject(self, text: str, task: str, vector: Any) -> str | None:
        """None (and the prompt counts as accepted from now on) or the rejection reason. N-grams are compared on the
        task alone: the check sentences are templated wording that training and held-out prompts share by design."""
        key = prompt_key(text)
        if key in self.keys:
            return "exact_duplicate"
        vector = as_matrix([vector])
        if self.references.copied_by_many([task], vector)[0] is not None:
            return "contaminated"
        if self.index is not None and self.index.nearest(vector)[0][0] < self.near_duplicate_distance:
            return "near_duplicate"
        self.keys.add(key)
        self._remember(vector)
        return None


Draw = Callable[[list[list[dict[str, str]]], int], list[list[str]]]
"""draw(chats, n) -> n sampled completions per chat."""


@dataclass
class Expansion:
    rows: list[dict[str, Any]]
    rejected: Counter
    rounds: int
    samples: int

    def summary(self, wanted: int) -> str:
        reasons = ", ".join(f"{reason} {count}" for reason, count in self.rejected.most_common()) or "none"
        short = "" if len(self.rows) >= wanted else f" (fell short of {wanted})"
        return (f"expanded: {len(self.rows)} accepted{short} from {self.samples} samples in {self.rounds} rounds; "
                f"rejected {sum(self.rejected.values())}: {reasons}")


def expand(seeds: Sequence[PromptRecord], draw: Draw, embed: Embed, references: References, wanted: int,
           model: str, samples_per_request: int = 4, max_rounds: int = 8, vary_fraction: float = 0.3,
           near_duplicate_distance: float = NEAR_DUPLICATE_DISTANCE, seed: int = 0,
           progress: Callable[[int, Counter], None] = lambda accepted, rejected: None) -> Expansion:
    """Rounds of one request per (seed, method) until `wanted` prompts are accepted or `max_rounds` have run."""
    rng = random.Random(seed)
    parsed = [split_seed(record) for record in seeds]
    pool = [c for s in parsed for c in s.constraints]
    seed_texts = [prompt_text(record.messages) for record in seeds]
    seed_tasks = {normalize(s.task) for s in parsed}
    acceptance = Acceptance(seed_texts, list(embed(seed_texts)), references, near_duplicate_distance)
    rows: list[dict[str, Any]] = []
    rejected: Counter = Counter()
    samples = rounds = 0
    while len(rows) < wanted and rounds < max_rounds:
        rounds += 1
        plan = []  # (seed, method, example ids, chat)
        for s in parsed:
            for method in ALL_METHODS:
                examples = [s, *rng.sample([o for o in parsed if o is not s], min(NEW_EXAMPLES - 1, len(parsed) - 1))]
                rng.shuffle(examples)
                shown = examples if method == NEW else []
                plan.append((s, method, [e.id for e in shown], request_messages(method, s, shown)))
        drawn = draw([chat for *_, chat in plan], samples_per_request)
        # Every request's first sample, then every second one...: a round that fills `wanted` early still draws on
        # every seed and method, not on the first seeds alone.
        by_rank = [(item, completions[rank]) for rank in range(max(map(len, drawn), default=0))
                   for item, completions in zip(plan, drawn, strict=True) if rank < len(completions)]
        candidates = []  # (row, text, task)
        for (s, method, example_ids, _), completion in by_rank:
            samples += 1
            task, reason = clean(completion)
            if not reason and normalize(task) in seed_tasks:
                reason = "unchanged_task"  # only the checks could differ: not a new prompt
            if reason:
                rejected[reason] += 1
                continue
            constraints, checks = (vary_checks(s.constraints, pool, rng) if s.constraints and
                                   rng.random() < vary_fraction else (list(s.constraints), "kept"))
            row = build_prompt(task, s, method, model, rounds, constraints, checks, example_ids)
            candidates.append((row, prompt_text(row["messages"]), task))
        vectors = list(embed([text for _, text, _ in candidates])) if candidates else []
        for (row, text, task), vector in zip(candidates, vectors):
            if len(rows) >= wanted:
                break
            reason = acceptance.reason_to_reject(text, task, vector)
            if reason:
                rejected[reason] += 1
            else:
                rows.append(row)
        progress(len(rows), rejected)
    return Expansion(rows, rejected, rounds, samples)
