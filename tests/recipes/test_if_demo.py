"""The instruction-following demo's prompt files (tools/make_if_prompts.py): the unseen set asks only for kinds of
instruction the training set never does, the transfer set only in phrasings training never uses, and both
directions of every length constraint are trained."""

import json
from pathlib import Path

from tao_ray.config import load_recipe
from tao_ray.data.prompts import load_prompts

ROOT = Path("prompts/if-demo")


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / f"{name}.jsonl").read_text().splitlines()]


def test_the_unseen_set_asks_only_for_kinds_of_instruction_never_trained_on():
    trained = {iid for row in rows("train") for iid in row["instruction_id_list"]}
    unseen = {iid for row in rows("unseen") for iid in row["instruction_id_list"]}
    assert len(unseen) >= 5 and not trained & unseen


def test_length_is_asked_for_both_ways_in_training():
    relations = {(iid, kwargs.get("relation")) for row in rows("train")
                 for iid, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True)}
    for iid in ("length_constraints:number_words", "length_constraints:number_sentences"):
        assert {(iid, "at least"), (iid, "less than")} <= relations


def test_transfer_prompts_use_phrasings_training_never_uses():
    def sentences(row: dict) -> set[str]:
        # Split at periods; "P.S." leaves fragments of a letter or two, which say nothing about a template.
        return {s.strip() + "." for s in row["prompt"].split(".")[1:] if len(s.strip()) > 3}

    trained = set().union(*(sentences(row) for row in rows("train")))
    transfer = [sentences(row) for row in rows("transfer")]
    # A sentence naming a keyword, number or phrase may coincide; the templates themselves never do.
    shared = [s for found in transfer for s in found if s in trained]
    assert len(shared) <= 0.05 * sum(map(len, transfer)), shared


def test_the_recipe_reads_every_set_and_its_checks_are_valid():
    recipe = load_recipe("recipes/demo-if-cpu.yaml")
    for path in (recipe.data.train_prompts, recipe.data.heldout_prompts, recipe.data.transfer_prompts,
                 recipe.data.unseen_prompts):
        assert load_prompts(path)  # every instruction id and its kwargs valid for the checks library
