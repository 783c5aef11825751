"""Prompt expansion's pure parts (tao_ray/data/expansion.py, check_text.py): seeds split into task and checks,
samples cleaned, prompts rebuilt with their check sentences, and the accept/reject decisions, with the stand-in
embedder of test_store (hashed character trigrams) and a scripted writer in place of the engine."""

import json
import random

import pytest

from tao_ray.data import expansion
from tao_ray.data.check_text import conflicts, constraint_sentence
from tao_ray.data.decontamination import References
from tao_ray.data.prompts import _record, load_prompts
from tao_ray.rewards.constraints import CHECKS
from tests.data.test_store import embed


def record(content, constraints=(), id="seed-1"):
    return _record({"id": id, "messages": [{"role": "user", "content": content}], "constraints": list(constraints)},
                   "test", 0)


def test_the_demo_files_are_each_a_task_followed_by_the_sentences_of_their_constraints():
    for path in ("prompts/demo/train.jsonl", "prompts/demo/heldout.jsonl", "prompts/seeds/demo-seeds.jsonl"):
        for prompt in load_prompts(path):
            seed = expansion.split_seed(prompt)
            rebuilt = " ".join([seed.task, *map(constraint_sentence, prompt.constraints)])
            assert rebuilt == prompt.messages[-1]["content"], prompt.id


def test_every_constraint_type_has_a_sentence():
    samples = {"n": 2, "keywords": ["owl", "moon"], "words": ["very"], "phrase": "the end.", "keyword": "tea"}
    for kind, (required, _) in CHECKS.items():
        sentence = constraint_sentence({"type": kind, **{name: samples[name] for name in required}})
        assert sentence[0].isupper() and len(sentence.split()) >= 3, kind
    assert constraint_sentence({"type": "include_keywords", "keywords": ["owl", "moon"]}) == \
        'Include the words "owl" and "moon".'


def test_a_seed_whose_checks_are_worded_its_own_way_keeps_its_first_sentence_as_the_task():
    seed = expansion.split_seed(record("Describe owls. Please, no commas at all!", [{"type": "no_commas"}]))
    assert seed.task == "Describe owls."


@pytest.mark.parametrize("sample, expected", [
    ("Describe an old lighthouse at dusk.", ("Describe an old lighthouse at dusk.", None)),
    ('Sure! Here is the new request: "Explain how kites fly."\nMore text.', ("Explain how kites fly.", None)),
    ("Rewritten: what makes honey sweet?", ("What makes honey sweet?", None)),
    ("1. Write a haiku about frost.", ("Write a haiku about frost.", None)),
    ("", (None, "empty")),
    ("Describe the way a river bends and", (None, "unfinished")),
    ("Describe owls.", (None, "too_short")),
    ("Describe " + "very " * 45 + "owls.", (None, "too_long")),
    ("Write this request in other words about owls.", (None, "chatter")),
    ("The moon is a rock that orbits the earth.", (None, "not_a_request")),
    ("Describe an old farmhouse kitchen.", (None, "copied_example")),
])
def test_clean_keeps_a_request_and_names_why_it_rejects(sample, expected):
    assert expansion.clean(sample) == expected


def test_a_third_sentence_is_cut():
    task, _ = expansion.clean("Describe a quiet harbor. Mention the boats. The boats are red and sail at dawn.")
    assert task == "Describe a quiet harbor. Mention the boats."


def test_requests_teach_by_worked_turns_and_end_on_the_user():
    seed = expansion.split_seed(record("Describe owls. Do not use any commas.", [{"type": "no_commas"}]))
    for method in expansion.METHODS:
        chat = expansion.request_messages(method, seed)
        assert [m["role"] for m in chat] == ["user", "assistant"] * 3 + ["user"]
        assert chat[-1]["content"].endswith(": Describe owls.")
    other = expansion.split_seed(record("Explain tides.", id="seed-2"))
    chat = expansion.request_messages(expansion.NEW, seed, [seed, other])
    assert [m["content"] for m in chat if m["role"] == "assistant"] == ["Describe owls.", "Explain tides."]


def test_varied_checks_change_by_one_and_never_conflict():
    rng = random.Random(0)
    pool = [{"type": "uppercase"}, {"type": "max_words", "n": 20}, {"type": "json"}]
    for _ in range(50):
        changed, note = expansion.vary_checks([{"type": "lowercase"}, {"type": "no_commas"}], pool, rng)
        kinds = [c["type"] for c in changed]
        assert abs(len(changed) - 2) == 1 and note.split()[0] in ("added", "dropped")
        assert not any(conflicts(kind, kinds[:i]) for i, kind in enumerate(kinds))


def test_a_built_prompt_is_a_valid_prompt_line_with_its_checks_and_provenance():
    seed = expansion.split_seed(record('Describe owls. End your answer with the exact phrase "the end."',
                                       [{"type": "ends_with", "phrase": "the end."}]))
    row = expansion.build_prompt("Explain how bats find food.", seed, "evolve-topic", "tiny-model", 2,
                                 [*seed.constraints, {"type": "no_digits"}], "added no_digits")
    parsed = _record(json.loads(json.dumps(row)), "out", 0)
    assert parsed.messages[-1]["content"] == ('Explain how bats find food. End your answer with the exact phrase '
                                              '"the end." Do not use any digits.')
    assert parsed.metadata["source"] == {"seed": "seed-1", "method": "evolve-topic", "model": "tiny-model",
                                         "round": 2, "checks": "added no_digits"}
    assert row["id"].startswith("x-") and row["id"] != expansion.build_prompt(
        "Explain how moths find food.", seed, "evolve-topic", "tiny-model", 2)["id"]


def heldout(tmp_path, *contents):
    path = tmp_path / "heldout.jsonl"
    path.write_text("".join(json.dumps({"prompt": c}) + "\n" for c in contents))
    return References([path], embed, ngram=5)


def test_acceptance_rejects_repeats_of_seeds_and_accepted_prompts_and_copies_of_held_out_prompts(tmp_path):
    references = heldout(tmp_path, "Explain how a refrigerator keeps food cold in summer.")
    seeds = ["Describe owls. Do not use any commas."]
    # The stand-in embedder puts "a" / "the" rewordings near 0.09 (the real one near 0.03).
    acceptance = expansion.Acceptance(seeds, embed(seeds), references, near_duplicate_distance=0.2)

    def judge(text, task=None):
        return acceptance.reason_to_reject(text, task or text, embed([text])[0])

    assert judge("describe OWLS, do not use any commas") == "exact_duplicate"
    assert judge("Explain how a refrigerator keeps food cold in winter.") == "contaminated"  # a shared 5-gram
    assert judge("Write a limerick about a sleepy tortoise.") is None
    assert judge("Write a limerick about a sleepy tortoise!!") == "exact_duplicate"
    assert judge("Write a limerick about the sleepy tortoise.") == "near_duplicate"


def test_n_grams_compare_tasks_only_so_shared_check_wording_is_no_contamination(tmp_path):
    checks = " Use only lowercase letters, no capital letters at all. Do not use any commas."
    references = heldout(tmp_path, "Describe pizza." + checks)
    acceptance = expansion.Acceptance([], [], references)
    text = "Write a song about a lighthouse keeper." + checks
    assert acceptance.reason_to_reject(text, "Write a song about a lighthouse keeper.", embed([text])[0]) is None


def scripted_writer(samples):
    """A stand-in engine: hands out the scripted samples in turn, n per chat."""
    queue = iter(samples)

    def draw(chats, n):
        return [[next(queue, "") for _ in range(n)] for _ in chats]
    return draw


def test_expand_stops_at_the_count_wanted_and_counts_every_rejection(tmp_path):
    seeds = [record("Describe owls. Do not use any digits.", [{"type": "no_digits"}])]
    topics = ["a frozen lake", "an empty stadium", "a broken violin", "a desert road", "a paper boat"]
    samples = [f"Write a haiku about {t}." for t in topics] + ["Describe owls.", "Sure!"] * 5
    result = expansion.expand(seeds, scripted_writer(samples), embed, heldout(tmp_path, "Explain tides."), 3,
                              "tiny-model", samples_per_request=3, vary_fraction=0.0)
    assert len(result.rows) == 3 and result.rounds == 1 and result.samples == 15
    assert all(row["constraints"] == [{"type": "no_digits"}] for row in result.rows)
    assert {row["metadata"]["source"]["seed"] for row in result.rows} == {"seed-1"}
    assert result.summary(3).startswith("expanded: 3 accepted from 15 samples in 1 rounds; rejected")


def test_expand_falls_short_after_max_rounds(tmp_path):
    seeds = [record("Describe owls.")]
    result = expansion.expand(seeds, scripted_writer(["Write a haiku about frost."] * 40), embed,
                              heldout(tmp_path, "Explain tides."), 5, "tiny-model", samples_per_request=2,
                              max_rounds=2)
    assert len(result.rows) == 1 and result.rounds == 2
    assert result.rejected["exact_duplicate"] == 19 and "(fell short of 5)" in result.summary(5)
