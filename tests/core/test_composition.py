import pytest

from tao_ray.core.composition import combine, parse_expression, z_normalize


def test_parse_single_and_weighted_expressions():
    assert parse_expression("constraints") == [("constraints", 1.0)]
    assert parse_expression("0.7*sql + 0.3 * reward_model") == [("sql", 0.7), ("reward_model", 0.3)]
    assert parse_expression("2e-1*judge+math") == [("judge", 0.2), ("math", 1.0)]


@pytest.mark.parametrize("expression, message", [
    ("", "must name a scorer"),
    ("0.5*sql + 0.5*sql", "names 'sql' twice"),
    ("sql - judge", "unreadable term"),
    ("0*sql", "weights must be positive"),
])
def test_bad_expressions_say_why(expression, message):
    with pytest.raises(ValueError, match=message):
        parse_expression(expression)


def test_z_normalize_by_hand():
    # [1, 3]: mean 2, std 1 -> [-1, 1]; a flat group -> zeros; None stays None and is left out of the statistics
    assert z_normalize([[1.0, 3.0], [5.0, 5.0], [1.0, None, 3.0]]) == [[-1.0, 1.0], [0.0, 0.0], [-1.0, None, 1.0]]


def test_combine_weights_and_propagates_failures():
    components = {"sql": [[1.0, 0.0], [0.5]], "judge": [[0.5, None], [1.0]]}
    # 0.7*1 + 0.3*0.5 = 0.85; the second sample's judge failed -> excluded; 0.7*0.5 + 0.3*1 = 0.65
    combined = combine(components, {"sql": 0.7, "judge": 0.3})
    assert combined[0][0] == pytest.approx(0.85) and combined[0][1] is None and combined[1][0] == pytest.approx(0.65)
