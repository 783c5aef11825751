"""The scorer registry: every scorer a recipe may name is one ScorerSpec, and everything that reads reward names
(parsing, the judge engines, the checks) goes through it."""

import dataclasses

import pytest

from tao_ray.config import ScoringSection
from tao_ray.rewards import registry


def test_an_unknown_scorer_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown scorer 'rouge'; known: constraints, instructions, sql"):
        registry.parse("0.5*constraints + 0.5*rouge")


def test_parse_keeps_the_weights_of_known_scorers():
    assert registry.parse("0.7*sql + 0.3*judge") == [("sql", 0.7), ("judge", 0.3)]


def test_names_collects_every_expression_and_skips_unset_ones():
    assert registry.names("0.5*math + 0.5*constraints", None, "math") == {"math", "constraints"}


def test_only_the_judge_needs_the_judge_engines():
    assert registry.needs_judge("constraints", "0.5*judge + 0.5*math")
    assert not registry.needs_judge("constraints", None, "0.5*reward_model + 0.5*math")
    assert [name for name, spec in registry.SCORERS.items() if spec.needs_judge] == ["judge"]


def test_build_makes_a_component_that_scores():
    component = registry.build("constraints", dataclasses.asdict(ScoringSection()))
    record = {"messages": [{"role": "user", "content": "Answer in lowercase."}],
              "constraints": [{"type": "lowercase"}]}
    assert component.score([record], ["all lowercase here"]) == [1.0]


def test_build_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="unknown scorer 'rouge'"):
        registry.build("rouge", dataclasses.asdict(ScoringSection()))
