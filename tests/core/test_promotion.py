import json

import pytest

from tao_ray.core.promotion import decide
from tao_ray.core.selection import paired_scores

# 20 held-out prompts; the candidate scores 1.0 and the current model 0.0 on all but two, where they tie.
WINNING = [1.0] * 18 + [0.5, 0.5]
LOSING = [0.0] * 18 + [0.5, 0.5]
SAME_LENGTH = [30] * 20


def test_a_clear_win_with_no_guard_failing_promotes():
    decision = decide(WINNING, LOSING, SAME_LENGTH, SAME_LENGTH)
    # 18 wins and 2 ties of 20: (18 + 2 * 0.5) / 20 = 0.95; a bootstrap over such prompts stays well above 0.5.
    assert decision.promote and decision.heldout.win_rate == 0.95 and decision.heldout.ci95[0] > 0.5
    assert decision.heldout.scored_pairs == 20 and decision.heldout.mean_diff == pytest.approx(0.9)
    assert [reason.split(":")[0] for reason in decision.reasons] == ["pass", "pass"]  # win, serving cost
    assert decision.verdict().startswith("promote candidate (win rate 0.95, CI [")


def test_a_ci_straddling_one_half_keeps_the_current_model():
    # Wins and losses alternate: win rate 0.5, and the CI spans it on both sides.
    decision = decide([1.0, 0.0] * 10, [0.0, 1.0] * 10, SAME_LENGTH, SAME_LENGTH)
    low, high = decision.heldout.ci95
    assert not decision.promote and decision.heldout.win_rate == 0.5 and low < 0.5 < high
    assert decision.reasons[0].startswith("fail: win rate 0.50") and "does not exclude 0.5" in decision.reasons[0]
    assert decision.verdict().startswith("keep current (win rate 0.50, CI [")


def test_all_ties_are_not_a_win():
    # A model against itself: every prompt a tie, win rate exactly 0.5 and a CI of [0.5, 0.5], which is not above.
    decision = decide([0.3, 0.7, 1.0] * 4, [0.3, 0.7, 1.0] * 4, SAME_LENGTH[:12], SAME_LENGTH[:12])
    assert not decision.promote and decision.heldout.ci95 == (0.5, 0.5)
    assert decision.length.ratio == 1.0 and decision.reasons[1].startswith("pass: ")


def test_a_win_bought_with_longer_answers_is_vetoed():
    decision = decide(WINNING, LOSING, [75] * 20, SAME_LENGTH, max_length_ratio=2.0)
    assert not decision.promote and decision.reasons[0].startswith("pass: ")
    assert decision.length.ratio == 2.5 and decision.length.mean_candidate == 75.0
    assert decision.reasons[1] == "fail: mean response length 75.0 vs 30.0 tokens, ratio 2.50 exceeds the limit 2.0"
    assert decide(WINNING, LOSING, [75] * 20, SAME_LENGTH, max_length_ratio=3.0).promote
    off = decide(WINNING, LOSING, [75] * 20, SAME_LENGTH, max_length_ratio=None)
    assert off.promote and off.reasons[1].endswith("(length guard off)")


def test_empty_current_answers_make_the_ratio_unbounded():
    decision = decide(WINNING, LOSING, SAME_LENGTH, [0] * 20)
    assert not decision.promote and decision.length.ratio is None
    assert decide(WINNING, LOSING, [0] * 20, [0] * 20).length.ratio == 1.0  # both empty: the same cost


def test_a_win_that_costs_the_general_set_is_vetoed_and_the_drop_reported_with_its_ci():
    # General set: the candidate's mean is 0.6, the current model's 0.7 (a drop of 0.1 > 0.05).
    general_candidate, general_current = [0.6] * 10, [0.7] * 10
    decision = decide(WINNING, LOSING, SAME_LENGTH, SAME_LENGTH, general_candidate, general_current,
                      max_general_drop=0.05)
    assert not decision.promote and [r.split(":")[0] for r in decision.reasons] == ["pass", "pass", "fail"]
    general = decision.general
    assert general.drop == pytest.approx(0.1) and general.scores.win_rate == 0.0 and general.scores.ci95 == (0.0, 0.0)
    assert "a drop of 0.100 exceeds the limit 0.05 (win rate 0.00, CI [0.00, 0.00])" in decision.reasons[2]
    within = decide(WINNING, LOSING, SAME_LENGTH, SAME_LENGTH, general_candidate, general_current,
                    max_general_drop=0.15)
    assert within.promote and within.reasons[2].startswith("pass: general set: mean 0.600 vs 0.700")


def test_no_scored_pairs_keeps_the_current_model_with_a_reason():
    decision = decide([None, 1.0, None], [0.0, None, None], [5, 5, 5], [5, 5, 5])
    assert not decision.promote and decision.heldout.scored_pairs == 0 and decision.heldout.win_rate is None
    assert decision.reasons[0] == ("fail: no held-out prompt could be scored for both models (0 of 3); nothing "
                                   "shows the candidate is better")
    unscored_general = decide(WINNING, LOSING, SAME_LENGTH, SAME_LENGTH, [None], [0.5])
    assert not unscored_general.promote and "the trade-off is unknown" in unscored_general.reasons[2]


def test_unscored_prompts_are_left_out_of_every_number_but_lengths_count():
    scores = paired_scores([1.0, None, 0.0, 0.5], [0.0, 1.0, None, 0.5])
    # Prompts 0 and 3 are scored for both: one win, one tie -> 0.75; means 0.75 and 0.25.
    assert (scores.prompts, scores.scored_pairs, scores.win_rate) == (4, 2, 0.75)
    assert (scores.mean_a, scores.mean_b, scores.mean_diff) == (0.75, 0.25, 0.5)
    decision = decide([1.0, None], [0.0, 1.0], [10, 40], [10, 10])
    assert decision.length.mean_candidate == 25.0 and decision.length.ratio == 2.5  # the unscored answer's 40 counts


def test_the_decision_is_plain_json_with_the_models_named():
    decision = decide(WINNING, LOSING, SAME_LENGTH, SAME_LENGTH, [0.5] * 4, [0.5] * 4)
    data = json.loads(json.dumps(decision.as_dict()))
    assert set(data) == {"promote", "reasons", "heldout", "length", "general"}
    assert data["heldout"]["mean_candidate"] == pytest.approx(0.95) and data["heldout"]["ci95"][0] > 0.5
    assert data["length"] == {"mean_candidate": 30.0, "mean_current": 30.0, "ratio": 1.0, "max_ratio": 2.0}
    assert data["general"]["drop"] == 0.0 and data["general"]["win_rate"] == 0.5
    assert decide(WINNING, LOSING, SAME_LENGTH, SAME_LENGTH).as_dict()["general"] is None


def test_a_general_guard_turned_off_reports_the_drop_without_a_veto():
    decision = decide([1.0] * 8, [0.0] * 8, [10] * 8, [10] * 8, general_candidate=[0.0] * 8,
                      general_current=[1.0] * 8, max_general_drop=None)
    assert decision.promote and decision.general.drop == 1.0
    assert "guard off" in decision.reasons[-1]
