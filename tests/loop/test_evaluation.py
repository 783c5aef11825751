"""The evaluation's summary fields and the guards that veto an iteration (pure: no actors)."""

from tao_ray.config import EvalSection
from tao_ray.core.selection import guard_vetoes, length_ratio
from tao_ray.loop.evaluation import EvalSet, Evaluation, eligible_reward, row_fields, split_by_set, versus_base


def evaluation(heldout, lengths, general=None, transfer=None):
    scores = {"heldout": heldout}
    if transfer is not None:
        scores["transfer"] = transfer
    if general is not None:
        scores["general"] = general
    return Evaluation(scores, {"heldout": lengths}, [0], {"scoring/failed": 0})


def test_length_ratio_is_the_ratio_of_means():
    assert length_ratio([20, 40], [10, 10]) == 3.0
    assert length_ratio([], [10]) is None
    assert length_ratio([5], [0, 0]) is None


def test_guards_veto_long_answers_and_general_drops_only():
    assert guard_vetoes(1.9, 2.0, -0.04, 0.05) == []
    long, = guard_vetoes(2.5, 2.0, 0.0, 0.05)
    assert "2.50x" in long and "serve" in long
    drop, = guard_vetoes(1.0, 2.0, -0.2, 0.05)
    assert "0.200" in drop
    assert len(guard_vetoes(3.0, 2.0, -0.2, 0.05)) == 2
    assert guard_vetoes(None, 2.0, None, 0.05) == []  # unmeasured vetoes nothing
    assert guard_vetoes(9.0, None, -9.0, None) == []  # guards turned off
    # A drop within noise (the win rate's CI reaches 0.5) vetoes nothing; a clear one does.
    assert guard_vetoes(1.0, 2.0, -0.083, 0.05, general_ci_high=0.54) == []
    assert len(guard_vetoes(1.0, 2.0, -0.083, 0.05, general_ci_high=0.42)) == 1


def test_versus_base_skips_prompts_either_side_failed():
    assert versus_base([1.0, None, 0.0, 1.0], [0.0, 1.0, None, 1.0])["win_rate"] == 0.75
    assert versus_base([None], [1.0]) is None


def test_base_row_compares_with_itself():
    row = row_fields(evaluation([1.0, 0.0], [10, 30], general=[0.5, 0.5]), None, EvalSection())
    assert row["heldout_reward_mean"] == 0.5 and row["response_tokens_mean"] == 20
    assert row["length_ratio"] == 1.0 and row["general_delta"] == 0.0 and row["vetoed"] == []
    assert "heldout_vs_base" not in row


def test_later_rows_report_every_set_against_the_base():
    base = row_fields(evaluation([0.0, 0.0], [10, 10], general=[1.0] * 6, transfer=[0.0, 0.5]), None,
                      EvalSection())
    row = row_fields(evaluation([1.0, 1.0], [30, 30], general=[0.5] * 6, transfer=[1.0, 0.5]), base,
                     EvalSection(max_length_ratio=2.0, max_general_drop=0.1))
    assert row["heldout_vs_base"]["win_rate"] == 1.0
    assert row["transfer_reward_mean"] == 0.75 and row["transfer_vs_base"]["win_rate"] == 0.75
    assert row["general_delta"] == -0.5 and row["general_vs_base"]["ci95_high"] == 0.0 and row["length_ratio"] == 3.0
    assert len(row["vetoed"]) == 2
    assert eligible_reward(row) is None  # the best held-out reward, vetoed
    assert eligible_reward(base) == 0.0


def test_split_by_set_follows_set_order():
    sets = [EvalSet("heldout", ["a", "b"], []), EvalSet("general", ["c"], [])]
    assert split_by_set(sets, [1, 2, 3]) == {"heldout": [1, 2], "general": [3]}


def test_each_evaluated_file_is_checked_against_its_own_reward():
    """The general prompts need what eval.general_reward needs (answers for math), not what training needs."""
    import pytest

    from tao_ray.config import load_recipe
    from tao_ray.data.inputs import check_scoring, prepare_inputs
    from tao_ray.data.prompts import load_prompts
    from tao_ray.errors import TaoError

    recipe = load_recipe("recipes/demo-cpu.yaml")
    inputs = prepare_inputs(recipe, check_lengths=False)
    assert len(inputs.transfer) == 40 and len(inputs.general) == 24 and inputs.general[0].answer
    train = load_prompts("prompts/demo/train.jsonl", limit=2)  # constraints, no answers: fine for training
    check_scoring(recipe, [("prompts/demo/train.jsonl", train)], [("prompts/general/arithmetic.jsonl",
                                                                   inputs.general)])
    with pytest.raises(TaoError, match=r"train.jsonl: prompt id .* has no \"answer\", which the math scorer "
                                       r"\(recipes/demo-cpu.yaml: line \d+\) needs"):
        check_scoring(recipe, [], [("prompts/demo/train.jsonl", train)])


def test_answers_much_shorter_than_the_base_models_are_vetoed_too():
    short, = guard_vetoes(0.4, 2.0, 0.0, 0.05, min_length_ratio=0.5)
    assert "0.40x as long" in short and "brevity" in short
    assert guard_vetoes(0.6, 2.0, 0.0, 0.05, min_length_ratio=0.5) == []
    assert guard_vetoes(0.1, 2.0, 0.0, 0.05, min_length_ratio=None) == []  # turned off


def test_the_row_vetoes_brevity_with_the_recipes_lower_bound():
    base = row_fields(evaluation([0.2, 0.2], [100, 100]), None, EvalSection())
    halved = row_fields(evaluation([0.9, 0.9], [40, 40]), base, EvalSection())
    assert halved["length_ratio"] == 0.4 and len(halved["vetoed"]) == 1 and eligible_reward(halved) is None
    assert row_fields(evaluation([0.9, 0.9], [40, 40]), base, EvalSection(min_length_ratio=None))["vetoed"] == []


def test_matched_length_win_rate_counts_only_answers_about_as_long_as_the_base_models():
    base = row_fields(evaluation([0.5, 0.5, 0.5, 0.5], [100, 100, 100, 100]), None, EvalSection())
    # Prompts 0 and 1 won by answering in a fifth of the length; 2 and 3 are as long as the base's, one won, one lost.
    row = row_fields(evaluation([1.0, 1.0, 0.7, 0.3], [20, 20, 110, 95]), base, EvalSection(min_length_ratio=None))
    assert row["heldout_vs_base"]["win_rate"] == 0.75
    assert row["heldout_matched_length"]["pairs"] == 2 and row["heldout_matched_length"]["win_rate"] == 0.5


def test_by_type_gives_each_behaviours_pass_rate_and_a_composite_rewards_components():
    evaluated = Evaluation({"heldout": [0.5, 1.0, 0.0]}, {"heldout": [10, 10, 10]}, [0], {},
                           behaviours={"heldout": [{"max_words": 1.0, "no_commas": 0.0}, {"max_words": 1.0},
                                                   {"max_words": 0.0, "no_commas": 1.0}]},
                           components={"heldout": {"constraints": [0.5, 1.0, 0.0], "math": [1.0, None, 0.0]}})
    rates = row_fields(evaluated, None, EvalSection())["by_type"]["heldout"]
    assert rates["max_words"] == {"rate": 2 / 3, "n": 3}
    assert rates["no_commas"] == {"rate": 0.5, "n": 2}
    assert rates["reward/constraints"] == {"rate": 0.5, "n": 3} and rates["reward/math"] == {"rate": 0.5, "n": 2}
