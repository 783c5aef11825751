import threading

import pytest

from tao_ray.rewards.math import math_reward


def _record(answer):
    return {"id": "p1", "messages": [{"role": "user", "content": "?"}], "answer": answer}


def test_boxed_integer_matches_plain_answer():
    assert math_reward(_record("42"), "The answer is \\boxed{42}.") == 1.0


def test_fraction_matches_decimal_answer():
    assert math_reward(_record("0.5"), "So we get \\boxed{\\frac{1}{2}}") == 1.0
    assert math_reward(_record("1/2"), "So we get \\boxed{0.5}") == 1.0


def test_latex_answer_with_variables_and_delimiters():
    assert math_reward(_record("x+1"), "Hence $1 + x$.") == 1.0
    assert math_reward(_record("$x+1$"), "\\boxed{x+2}") == 0.0


def test_numeric_answer_from_json_is_accepted():
    assert math_reward(_record(42), "\\boxed{42}") == 1.0


def test_wrong_answer_scores_zero():
    assert math_reward(_record("42"), "The answer is \\boxed{43}.") == 0.0


def test_response_without_an_answer_scores_zero():
    assert math_reward(_record("42"), "I am not sure how to solve this.") == 0.0
    assert math_reward(_record("42"), "") == 0.0


@pytest.mark.parametrize("answer", [None, "", "   "])
def test_missing_answer_raises(answer):
    with pytest.raises(ValueError, match="prompt has no 'answer'"):
        math_reward(_record(answer), "\\boxed{42}")


def test_record_without_answer_key_raises():
    with pytest.raises(ValueError, match="prompt has no 'answer'"):
        math_reward({"id": "p1", "messages": []}, "\\boxed{42}")


def test_works_outside_the_main_thread():
    # math-verify's default signal.alarm timeouts raise ValueError in any thread but the main one.
    results = {}

    def run():
        try:
            results["right"] = math_reward(_record("42"), "\\boxed{42}")
            results["wrong"] = math_reward(_record("0.5"), "\\boxed{\\frac{1}{3}}")
        except Exception as error:  # surfaced by the assertion below
            results["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert results == {"right": 1.0, "wrong": 0.0}
