"""The instructions scorer: IFEval's official checks (and IFBench's that run offline) through if-verifiable, offline;
strict reward, loose metric."""

import json

import pytest

from tao_ray.actors.scorer import ScorerActor
from tao_ray.data.prompts import load_prompts
from tao_ray.errors import TaoError
from tao_ray.rewards.instructions import (
    IFBENCH_OFFLINE,
    InstructionsComponent,
    follow_fractions,
    instructions_reward,
    known_ids,
    validate_instructions,
)


def record(ids, kwargs, prompt="Answer the question."):
    return {"id": "p", "messages": [{"role": "user", "content": prompt}], "instruction_id_list": ids,
            "kwargs": kwargs}


def one(instruction_id, response, **kwargs):
    """The strict reward of one instruction: 1.0 followed, 0.0 not."""
    return instructions_reward(record([instruction_id], [kwargs]), response)


# ---- sentence splitting: NLTK's own Punkt, with NLTK's English model, and no download ----

def test_nltk_punkt_runs_offline_and_splits_as_nltk_documents():
    import nltk

    from tao_ray.rewards.punkt_data import install_english_punkt

    install_english_punkt()
    # The example and its output are from NLTK's punkt module docstring (what the downloaded model gives).
    text = ("Punkt knows that the periods in Mr. Smith and Johann S. Bach\ndo not mark sentence boundaries.  And "
            "sometimes sentences\ncan start with non-capitalized words.  i is a good variable\nname.")
    assert nltk.sent_tokenize(text) == [
        "Punkt knows that the periods in Mr. Smith and Johann S. Bach\ndo not mark sentence boundaries.",
        "And sometimes sentences\ncan start with non-capitalized words.",
        "i is a good variable\nname."]


ABBREVIATIONS = [
    ("Dr. Smith arrived at noon. He was late.", ["Dr. Smith arrived at noon.", "He was late."]),
    ("We met Mr. Jones at 5 p.m. on Friday. It rained.", ["We met Mr. Jones at 5 p.m. on Friday.", "It rained."]),
    ("The U.S. economy grew. Prices rose!  Why? Nobody knows...",
     ["The U.S. economy grew.", "Prices rose!", "Why?", "Nobody knows..."]),
    ("Use tools, e.g., hammers. They help.", ["Use tools, e.g., hammers.", "They help."]),
    # Punkt's English model does not know a bare "e.g." before a lowercase word, and splits there: the official
    # checks count it that way, so this scorer must too.
    ("Bring fruit, e.g. apples or pears. Then rest.", ["Bring fruit, e.g.", "apples or pears.", "Then rest."]),
]


@pytest.mark.parametrize("text, sentences", ABBREVIATIONS, ids=[t[:12] for t, _ in ABBREVIATIONS])
def test_abbreviations_split_as_punkt_does(text, sentences):
    import nltk
    import punkt

    from tao_ray.rewards.punkt_data import install_english_punkt

    install_english_punkt()
    assert nltk.sent_tokenize(text) == sentences
    # A second, independent implementation of Punkt reading the same model agrees.
    assert punkt.sent_tokenize(text) == sentences


def test_sentence_count_check_uses_punkt():
    text = "Dr. Smith met Mr. Jones at 5 p.m. on Friday. They talked."  # a naive splitter would count 5
    assert one("length_constraints:number_sentences", text, num_sentences=2, relation="less than") == 0.0
    assert one("length_constraints:number_sentences", text, num_sentences=3, relation="less than") == 1.0


# ---- instruction types, followed and not ----

@pytest.mark.parametrize("instruction_id, kwargs, followed, broken", [
    ("punctuation:no_comma", {}, "No commas here at all.", "Well, here is one."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "Four short words here.",
     "This answer has far more than five words in it."),
    ("keywords:existence", {"keywords": ["harbor", "lantern"]}, "A lantern swung over the harbor.",
     "A lantern swung over the bay."),
    ("keywords:forbidden_words", {"forbidden_words": ["very"]}, "It was quite cold.", "It was very cold."),
    ("detectable_format:title", {}, "<<Winter Notes>>\nSnow fell.", "Winter Notes\nSnow fell."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", "* one\n* two\n* three"),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "a = 1"),
    ("change_case:english_lowercase", {}, "the tide is coming in tonight.", "The tide is coming in tonight."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions?",
     "Any other questions? Done."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\n\nP.S. Bring a coat.", "Hello."),
    ("language:response_language", {"language": "fr"},
     "Le chat dort sur le canapé toute la journée et ne veut pas sortir.",
     "The cat sleeps on the sofa all day and does not want to go outside."),
    # IFBench's checks (the unseen-constraint set's)
    ("count:word_count_range", {"min_words": 3, "max_words": 5}, "Four words right here.", "Two words."),
    ("count:unique_word_count", {"N": 4}, "Red blue green gold.", "Red red red red."),
    ("sentence:keyword", {"word": "river", "N": 2}, "It rained. The river rose.", "The river rose. It rained."),
    ("count:numbers", {"N": 2}, "We had 3 cats and 4 dogs.", "We had 3 cats, 4 dogs and 5 birds."),
    ("format:no_bullets_bullets", {}, "Here is one. Here is two.\n* first\n* second", "* first\n* second"),
    ("format:title_case", {}, "The Quiet Morning Light", "The quiet morning light"),
    ("format:emoji", {}, "Hello there 😀. Good night 🌙.", "Hello there 😀. Good night."),
])
def test_followed_and_not_followed(instruction_id, kwargs, followed, broken):
    assert one(instruction_id, followed, **kwargs) == 1.0
    assert one(instruction_id, broken, **kwargs) == 0.0


def test_reward_is_the_fraction_followed():
    rec = record(["punctuation:no_comma", "change_case:english_lowercase", "keywords:existence"],
                 [{}, {}, {"keywords": ["kite"]}])
    # (the lowercase check also asks langdetect for English: a few words are not enough for it)
    assert instructions_reward(rec, "we flew a red kite over the hills on a windy afternoon") == 1.0
    assert instructions_reward(rec, "We flew a red kite, then we walked home") == pytest.approx(1 / 3)


def test_null_kwargs_are_ignored_as_in_the_published_sets():
    rec = record(["punctuation:no_comma"], [{"num_words": None, "relation": None}])
    assert validate_instructions(rec["instruction_id_list"], rec["kwargs"]) is None
    assert instructions_reward(rec, "fine") == 1.0


def test_thinking_is_stripped_before_checking():
    assert one("punctuation:no_comma", "<think>hmm, well, ok</think>No commas.") == 1.0


# ---- strict (the reward) vs loose (the metric) ----

def test_strict_and_loose_differ_on_a_preamble_line():
    rec = record(["startend:quotation"], [{}])
    # A chatty first line breaks the strict check; loose also tries the response without its first line.
    assert follow_fractions(rec, 'Here it is:\n"Tides follow the moon."') == (0.0, 1.0)
    assert follow_fractions(rec, '"Tides follow the moon."') == (1.0, 1.0)


def test_strict_and_loose_differ_on_markdown_asterisks():
    rec = record(["startend:end_checker"], [{"end_phrase": "That is all."}])
    assert follow_fractions(rec, "Three facts. **That is all.**") == (0.0, 1.0)


def test_component_scores_strict_and_reports_loose():
    component = InstructionsComponent()
    rec = record(["startend:quotation"], [{}])
    assert component.score([rec, rec], ['Sure:\n"a"', '"b"']) == [0.0, 1.0]
    assert component.last_metrics == {"loose": [1.0, 1.0]} and component.last_failures == []


def test_scorer_logs_loose_beside_the_reward():
    scorer = ScorerActor("instructions")
    rec = record(["startend:quotation"], [{}])
    scorer.score([rec], [['Sure:\n"a"', '"b"']])
    stats = scorer.take_stats()
    assert stats["reward/instructions"] == 0.5 and stats["reward/instructions/loose"] == 1.0


def test_a_record_without_instructions_is_a_failed_sample_not_a_zero():
    component = InstructionsComponent()
    assert component.score([{"id": "p", "messages": []}], ["text"]) == [None]
    assert "instruction_id_list" in component.last_failures[0]


# ---- validation: one line naming the file, line and key ----

def write(tmp_path, *rows):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


GOOD = {"prompt": "Describe a harbor.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}


def test_a_valid_file_loads_with_its_instructions(tmp_path):
    [loaded] = load_prompts(write(tmp_path, GOOD))
    assert loaded.as_dict()["instruction_id_list"] == ["punctuation:no_comma"] and loaded.as_dict()["kwargs"] == [{}]


@pytest.mark.parametrize("change, message", [
    ({"instruction_id_list": ["punctuation:no_semicolon"]}, "unknown instruction 'punctuation:no_semicolon'"),
    ({"kwargs": [{}, {}]}, "key 'kwargs' has 2 entries but 'instruction_id_list' has 1"),
    ({"kwargs": "{}"}, "key 'kwargs' must be a list of objects"),
    ({"instruction_id_list": []}, "key 'instruction_id_list' must be a non-empty list"),
    ({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 50}]},
     "key 'kwargs' entry 0 (length_constraints:number_words): missing parameter 'relation'"),
    ({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": "50", "relation":
                                                                            "less than"}]},
     "is not usable: TypeError"),
    ({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 5, "relation": "about"}]},
     "is not usable: ValueError"),
    ({"kwargs": [{"num_highlights": 2}]}, "unknown parameter 'num_highlights'"),
])
def test_bad_instructions_are_one_line_with_file_line_and_key(tmp_path, change, message):
    path = write(tmp_path, GOOD, GOOD | change)
    with pytest.raises(TaoError) as error:
        load_prompts(path)
    text = str(error.value)
    assert text.startswith(f"{path}: line 2: ") and message in text and "\n" not in text


def test_kwargs_without_ids_is_refused(tmp_path):
    with pytest.raises(TaoError, match="key 'kwargs' needs 'instruction_id_list'"):
        load_prompts(write(tmp_path, {"prompt": "x", "kwargs": [{}]}))


def test_the_shipped_prompt_files_use_known_instructions():
    from pathlib import Path

    ids = set(known_ids())
    for path in [*Path("prompts/instructions").glob("*.jsonl"), *Path("prompts/if-demo").glob("*.jsonl")]:
        records = load_prompts(path)
        assert records and all(set(r.instruction_id_list) <= ids for r in records), path


@pytest.mark.parametrize("instruction_id", sorted(IFBENCH_OFFLINE))
def test_every_ifbench_check_taken_runs_offline(instruction_id):
    """Each accepted IFBench id builds from its parameters and checks a response with no NLTK download: what it
    needs beyond Punkt would fail here, where no download can reach its host."""
    from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT

    assert instruction_id in known_ids()
    checker = INSTRUCTION_DICT[instruction_id](instruction_id)
    checker.build_description()  # draws the parameters the library's own prompts would use
    kwargs = {key: value for key, value in (checker.get_instruction_args() or {}).items() if value is not None}
    assert validate_instructions([instruction_id], [kwargs]) is None
    assert follow_fractions(record([instruction_id], [kwargs]), "One answer. It has 2 sentences, and a list:\n* a")[0] \
        in (0.0, 1.0)


def test_an_ifbench_check_that_needs_nltk_data_is_refused_by_name():
    message = validate_instructions(["words:start_verb"], [{}])
    assert "unknown instruction 'words:start_verb'" in message


def test_a_run_refuses_prompts_without_instructions():
    from tao_ray.config import load_recipe
    from tao_ray.data.inputs import check_scoring

    recipe = load_recipe("recipes/instructions-cpu.yaml")
    plain = load_prompts("prompts/demo/train.jsonl", limit=2)
    with pytest.raises(TaoError, match=r"prompts/demo/train.jsonl: prompt id '.*' has no \"instruction_id_list\""):
        check_scoring(recipe, [("prompts/demo/train.jsonl", plain)])


def test_instruction_results_name_each_instruction_followed_or_not():
    from tao_ray.rewards.instructions import instruction_results

    asked = record(["change_case:english_lowercase", "punctuation:no_comma"], [{}, {}])
    assert instruction_results(asked, "all lowercase, with a comma") == {"change_case:english_lowercase": 1.0,
                                                                         "punctuation:no_comma": 0.0}
    assert instruction_results(asked, "") == {"change_case:english_lowercase": 0.0, "punctuation:no_comma": 0.0}


def test_the_scorer_breaks_answers_down_by_instruction_and_constraint_type():
    scorer = ScorerActor("0.5*instructions + 0.5*constraints")
    both = {**record(["punctuation:no_comma"], [{}]), "constraints": [{"type": "max_words", "n": 3}]}
    assert scorer.by_type([both, both], ["one two", "one, two, three, four"]) == [
        {"punctuation:no_comma": 1.0, "max_words": 1.0}, {"punctuation:no_comma": 0.0, "max_words": 0.0}]
