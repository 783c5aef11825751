import pytest

from tao_ray.rewards.constraints import CHECKS, check, constraint_results, constraint_reward, validate_constraint


@pytest.mark.parametrize("constraint, good, bad", [
    ({"type": "lowercase"}, "all quiet here.", "All quiet here."),
    ({"type": "uppercase"}, "ALL CAPS!", "Not caps"),
    ({"type": "no_commas"}, "no commas here", "one, two"),
    ({"type": "max_words", "n": 3}, "one two three", "one two three four"),
    ({"type": "min_words", "n": 2}, "one two", "one"),
    ({"type": "max_sentences", "n": 1}, "Just one.", "One. Two."),
    ({"type": "include_keywords", "keywords": ["green"]}, "The green hill.", "The greenish hill."),
    ({"type": "forbidden_words", "words": ["bad"]}, "A good day.", "A Bad day."),
    ({"type": "json"}, '{"a": 1}', "{a: 1}"),
    ({"type": "json"}, '```json\n{"a": 1}\n```', "json please"),
    ({"type": "bullets", "n": 2}, "- one\n- two", "- one\n- two\n- three"),
    ({"type": "starts_with", "phrase": "Sure"}, "sure, here it is", "Here it is. Sure"),
    ({"type": "ends_with", "phrase": "the end."}, "A story. The end.", "The end. A story."),
    ({"type": "paragraphs", "n": 2}, "First.\n\nSecond.", "Only one."),
    ({"type": "quoted"}, '"hello"', 'hello"'),
    ({"type": "no_digits"}, "seven", "7 days"),
    ({"type": "min_sentences", "n": 2}, "One. Two.", "Just one."),
    ({"type": "keyword_count", "keyword": "tea", "n": 2}, "Tea and more tea.", "Tea and teapots."),
    ({"type": "title"}, "<<A Poem>>\nRoses...", "A Poem\nRoses..."),
    ({"type": "postscript"}, "Hello.\nP.S. bye", "Hello. PS bye"),
])
def test_each_check_on_known_texts(constraint, good, bad):
    assert validate_constraint(constraint) is None
    assert check(good, constraint)
    assert not check(bad, constraint)


def test_every_check_is_covered_above():
    covered = {"lowercase", "uppercase", "no_commas", "max_words", "min_words", "max_sentences", "include_keywords",
               "forbidden_words", "json", "bullets", "starts_with", "ends_with", "paragraphs", "quoted", "no_digits",
               "min_sentences", "keyword_count", "title", "postscript"}
    assert covered == set(CHECKS)


def test_reward_is_fraction_met():
    record = {"constraints": [{"type": "lowercase"}, {"type": "no_commas"}, {"type": "max_words", "n": 2}]}
    assert constraint_reward(record, "hello, world") == pytest.approx(2 / 3)  # lowercase + 2 words, but a comma
    assert constraint_reward(record, "hello world") == 1.0
    assert constraint_reward(record, "Hello, big world") == 0.0
    assert constraint_reward({"constraints": []}, "anything") == 0.0


@pytest.mark.parametrize("constraint, message", [
    ({"type": "max_word", "n": 3}, "unknown constraint type"),
    ({"type": "max_words"}, "needs 'n'"),
    ({"type": "max_words", "n": "3"}, "must be int"),
    ({"type": "max_words", "n": 3, "m": 1}, "unknown key 'm'"),
    ("lowercase", "must be an object"),
])
def test_malformed_constraints_are_named(constraint, message):
    assert message in validate_constraint(constraint)


def test_constraint_results_name_each_type_asked_for():
    record = {"constraints": [{"type": "max_words", "n": 3}, {"type": "no_commas"},
                              {"type": "include_keywords", "keywords": ["tea"]},
                              {"type": "include_keywords", "keywords": ["milk"]}]}
    assert constraint_results(record, "tea with sugar") == {"max_words": 1.0, "no_commas": 1.0,
                                                            "include_keywords": 0.5}
    assert constraint_results({}, "anything") == {}
