import pytest

from tao_ray.core.selection import best_iteration, mean, stop_reason, win_rate


def test_best_iteration_prefers_earliest_tie_and_skips_unmeasured():
    assert best_iteration([0.3, None, 0.5, 0.5, 0.4]) == 2


def test_an_evaluation_nothing_could_score_is_not_measured_not_zero():
    assert mean([None, None]) is None and mean([]) is None
    assert mean([None, 0.0, 1.0]) == 0.5  # unscored answers are left out of the mean
    assert mean([0.0, 0.0]) == 0.0  # a real zero stays a zero


def test_best_iteration_when_the_base_model_was_not_measured():
    assert best_iteration([None]) is None and best_iteration([]) is None  # nothing to choose yet
    assert best_iteration([None, 0.1]) == 1  # a later measured evaluation wins even with a low score
    assert best_iteration([None, 0.1, None, 0.05]) == 1


def test_unmeasured_evaluations_count_for_neither_patience_nor_the_hacking_guard():
    # Two unmeasured evaluations after the best are not "no improvement": patience 2 is not reached.
    assert stop_reason([0.3, 0.4, None, None], [None, 0.5, 0.6, 0.7], patience=2, max_drop=0.05) is None
    # The guard compares the best with the latest *measured* evaluation (0.38: a drop of 0.02, within bounds).
    assert stop_reason([0.3, 0.4, 0.38, None], [None, 0.5, 0.6, 0.9], patience=None, max_drop=0.05) is None
    assert stop_reason([None, 0.4], [None, 0.5], patience=1, max_drop=0.0) is None  # one measurement: too early


def test_plateau_stops_after_patience_evaluations():
    heldout = [0.30, 0.40, 0.38, 0.39]
    assert stop_reason(heldout[:3], [None] * 3, patience=2, max_drop=None) is None
    assert "plateau" in stop_reason(heldout, [None] * 4, patience=2, max_drop=None)


def test_hacking_guard_needs_rising_train_and_falling_heldout():
    heldout = [0.30, 0.45, 0.35]
    assert "reward hacking" in stop_reason(heldout, [None, 0.5, 0.7], patience=None, max_drop=0.05)
    assert stop_reason(heldout, [None, 0.5, 0.4], patience=None, max_drop=0.05) is None  # train fell too
    assert stop_reason(heldout, [None, 0.5, 0.7], patience=None, max_drop=0.2) is None  # drop within bound


def test_win_rate_by_hand_and_ci_brackets_it():
    # A wins 2, ties 1, loses 1 of 4 -> (2 + 0.5) / 4 = 0.625; mean diff = (0.5 + 0.2 + 0 - 0.1) / 4 = 0.15
    result = win_rate([1.0, 0.7, 0.3, 0.2], [0.5, 0.5, 0.3, 0.3])
    assert result.win_rate == 0.625 and result.mean_diff == pytest.approx(0.15) and result.prompts == 4
    assert 0.0 <= result.ci_low <= 0.625 <= result.ci_high <= 1.0


def test_win_rate_ci_narrows_with_more_prompts():
    few = win_rate([1.0, 0.0] * 5, [0.5] * 10)
    many = win_rate([1.0, 0.0] * 200, [0.5] * 400)
    assert (many.ci_high - many.ci_low) < (few.ci_high - few.ci_low)
    assert many.win_rate == 0.5
