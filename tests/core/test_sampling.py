"""The sampling strategies' logic with a scripted sampler in place of vLLM (the real engine runs in
tests/actors): what each strategy draws, keeps, drops and sends."""

import pytest

from tao_ray.core.composition import Composition, z_normalize
from tao_ray.core.diversity import jaccard_distance
from tao_ray.core.sampling import (
    DEFAULT_TEMPLATE,
    Sample,
    Sampler,
    SamplingPlan,
    conditioned_messages,
    whole_group_scores,
)

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a drink."}]


class ScriptedDraw:
    """Returns the next scripted texts per prompt, and records every prompt it was sent."""

    def __init__(self, script: dict[str, list[str]]):
        self.script = {key: list(texts) for key, texts in script.items()}
        self.sent: list[list[dict]] = []

    def __call__(self, requests):
        out = []
        for messages, count in requests:
            self.sent.append(messages)
            key = messages[-1]["content"].split("\n")[0]
            out.append([Sample(text, [1] * len(text.split())) for text in
                        (self.script[key].pop(0) for _ in range(count))])
        return out


def test_iid_keeps_duplicates_and_draws_n():
    draw = ScriptedDraw({"Name a drink.": ["tea", "tea", "coffee"]})
    (group,) = Sampler(SamplingPlan("iid", n=3, min_distance=0.5, max_draws=6), draw,
                       distance=jaccard_distance).run([PROMPT])
    assert [s.text for s in group.kept] == ["tea", "tea", "coffee"]
    assert (group.drawn, group.near_duplicates) == (3, 0)


def test_dedup_rejects_near_duplicates_and_tops_up():
    texts = ["hot green tea", "hot green tea!", "black coffee", "hot green tea", "cold lemon water"]
    draw = ScriptedDraw({"Name a drink.": texts})
    (group,) = Sampler(SamplingPlan("dedup", n=3, min_distance=0.5, max_draws=6), draw,
                       distance=lambda a, b: jaccard_distance(a, b, n=1)).run([PROMPT])
    # round 1 draws 3 and keeps 2 (the "!" copy is dropped); round 2 draws 1: a copy again; round 3 draws 1: new
    assert [s.text for s in group.kept] == ["hot green tea", "black coffee", "cold lemon water"]
    assert (group.drawn, group.near_duplicates) == (5, 2)
    assert group.tokens_drawn == 3 + 3 + 2 + 3 + 3


def test_dedup_stops_at_the_draw_budget():
    draw = ScriptedDraw({"Name a drink.": ["tea"] * 4})
    (group,) = Sampler(SamplingPlan("dedup", n=3, min_distance=0.5, max_draws=4), draw,
                       distance=jaccard_distance).run([PROMPT])
    assert [s.text for s in group.kept] == ["tea"] and group.drawn == 4 and group.near_duplicates == 3


def test_conditioned_prompt_is_sent_but_the_original_is_kept():
    draw = ScriptedDraw({"Name a drink.": ["tea", "coffee", "cocoa"]})
    (group,) = Sampler(SamplingPlan("conditioned", n=3, max_draws=3), draw).run([PROMPT])
    assert [s.text for s in group.kept] == ["tea", "coffee", "cocoa"]
    # round 1 asks the plain prompt; round 3 shows both earlier answers in the last user message
    assert draw.sent[0] == PROMPT
    third = draw.sent[2][-1]["content"]
    assert third.startswith("Name a drink.\n\nEarlier answers") and "Answer 1:\ntea" in third
    assert "Answer 2:\ncoffee" in third
    assert draw.sent[2][0] == PROMPT[0]  # the system message is untouched
    # what the learner will condition on: the original chat, unmodified
    assert group.messages == PROMPT and PROMPT[-1]["content"] == "Name a drink."


def test_conditioned_drops_oldest_answers_when_the_prompt_would_not_fit():
    draw = ScriptedDraw({"Name a drink.": ["tea " * 50, "coffee", "cocoa"]})
    fits = lambda messages: len(messages[-1]["content"]) < 200  # noqa: E731
    plan = SamplingPlan("conditioned", n=3, max_draws=3, template="Differ from: {previous}")
    Sampler(plan, draw, fits=fits).run([PROMPT])
    assert "tea tea" not in draw.sent[2][-1]["content"] and "Answer 1:\ncoffee" in draw.sent[2][-1]["content"]
    assert draw.sent[1] == PROMPT  # only the long answer existed: nothing fits, so the plain prompt is used


def test_conditioned_messages_template():
    messages = conditioned_messages(PROMPT, ["a"], "Not like these: {previous}")
    assert messages[-1]["content"] == "Name a drink.\n\nNot like these: Answer 1:\na"
    assert "{previous}" in DEFAULT_TEMPLATE


LENGTH = Composition({"length": 1.0})


def _scores_by_text(indices, texts, composition=LENGTH):
    """A scorer whose one component is the text's length (what ScorerActor.score returns for these groups)."""
    return composition.apply({"length": [[float(len(t)) for t in group] for group in texts]})


def test_adaptive_stops_a_settled_group_and_spends_its_budget_on_a_varying_one():
    flat = [{"role": "user", "content": "flat"}]
    varied = [{"role": "user", "content": "varied"}]
    draw = ScriptedDraw({"flat": ["aa", "bb", "cc", "dd"], "varied": ["a", "bbb", "c", "dddd", "e", "ff"]})
    plan = SamplingPlan("adaptive", n=4, max_draws=8, settle_after=2)
    flat_group, varied_group = Sampler(plan, draw, score=_scores_by_text).run([flat, varied])
    # both start with 2; "flat" scores (2, 2) have settled, so its 2 unspent draws go to "varied": 2 + 4 = 6 draws
    assert flat_group.drawn == 2 and flat_group.scores == [2.0, 2.0]
    assert varied_group.drawn == 6 and varied_group.scores == [1.0, 3.0, 1.0, 4.0, 1.0, 2.0]
    assert flat_group.drawn + varied_group.drawn == 2 * 4  # the same total as iid


def test_adaptive_returns_unspent_draws_to_settled_groups():
    one = [{"role": "user", "content": "one"}]
    two = [{"role": "user", "content": "two"}]
    draw = ScriptedDraw({"one": ["aa", "bb", "cc", "dd"], "two": ["a", "b", "c", "d"]})
    plan = SamplingPlan("adaptive", n=3, max_draws=4, settle_after=2)
    groups = Sampler(plan, draw, score=_scores_by_text).run([one, two])
    assert [g.drawn for g in groups] == [3, 3]  # nothing varies: the budget still gets spent


def test_adaptive_needs_a_scorer_and_unknown_strategies_fail():
    with pytest.raises(ValueError, match="score callback"):
        Sampler(SamplingPlan("adaptive"), ScriptedDraw({}))
    with pytest.raises(ValueError, match="unknown sampling strategy"):
        Sampler(SamplingPlan("best"), ScriptedDraw({}))


def test_adaptive_normalizes_over_each_whole_group_not_per_scoring_call():
    varied = [{"role": "user", "content": "varied"}]
    flat = [{"role": "user", "content": "flat"}]
    draw = ScriptedDraw({"varied": ["a", "bbb", "cc", "dddd"], "flat": ["xx", "yy", "zz", "ww"]})
    normalized = Composition({"length": 1.0}, normalize=True)
    calls = []

    def score(indices, texts):
        calls.append(texts)
        return _scores_by_text(indices, texts, normalized)

    plan = SamplingPlan("adaptive", n=3, max_draws=4, settle_after=2)
    varied_group, flat_group = Sampler(plan, draw, score=score).run([varied, flat])
    # round 1 scores 2 per group; "flat" settles, so "varied" alone gets the 2 remaining draws in a second call
    assert calls == [[["a", "bbb"], ["xx", "yy"]], [["cc", "dddd"]]]
    # settling and the group's scores use raw values: a per-call normalization would have made them (-1, 1, -1, 1)
    assert varied_group.scores == [1.0, 3.0, 2.0, 4.0] and flat_group.scores == [2.0, 2.0]
    final = whole_group_scores([varied_group, flat_group], normalized)
    assert final.raw == [[1.0, 3.0, 2.0, 4.0], [2.0, 2.0]]
    # lengths 1, 3, 2, 4: mean 2.5, std sqrt(1.25); z-normalized over all four, not per call
    assert final.learning == z_normalize([[1.0, 3.0, 2.0, 4.0], [2.0, 2.0]])
    assert final.learning[0][0] == pytest.approx(-1.5 / 1.25 ** 0.5) and final.learning[1] == [0.0, 0.0]
