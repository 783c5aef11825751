import pytest
import torch

from tao_ray.core import diversity


def test_jaccard_by_hand():
    # bigrams: "the cat sat" -> {the cat, cat sat}; "the cat ran" -> {the cat, cat ran}: 1 shared of 3 -> 2/3
    assert diversity.jaccard_distance("The cat sat", "the cat ran") == pytest.approx(2 / 3)
    assert diversity.jaccard_distance("same words here", "Same words, here!") == 0.0
    assert diversity.jaccard_distance("", "") == 0.0


def test_cosine_distance_range():
    assert diversity.cosine_distance(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])) == pytest.approx(0.0)
    assert diversity.cosine_distance(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(1.0)
    assert diversity.cosine_distance(torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0])) == pytest.approx(2.0)


def test_near_duplicates_are_rejected_distinct_texts_kept():
    candidates = ["coffee is a warm drink made from beans",
                  "Coffee is a warm drink made from beans!",       # near-copy of the first
                  "tea leaves steep in hot water for minutes",
                  "coffee is a warm drink made from roasted beans"]  # 3 of its 8 bigrams are new: distance 0.5
    kept = diversity.select_distinct(candidates, [], diversity.jaccard_distance, min_distance=0.3)
    assert kept == [0, 2, 3]
    # against an already-kept response from an earlier round
    assert diversity.select_distinct(candidates[1:2], candidates[:1], diversity.jaccard_distance, 0.3) == []


def test_distinct_n_by_hand():
    # unigrams: a b a | a c -> 5 total, {a, b, c} unique -> 0.6; bigrams: (a b)(b a) | (a c) -> 3 of 3 -> 1.0
    assert diversity.distinct_n(["a b a", "a c"], 1) == pytest.approx(0.6)
    assert diversity.distinct_n(["a b a", "a c"], 2) == 1.0
    assert diversity.distinct_n([], 2) == 0.0


def test_group_signal_metrics():
    groups = [[1.0, 1.0, 1.0], [0.0, 0.5, 0.5], [0.2, 0.8]]
    assert diversity.signal_fraction(groups) == pytest.approx(2 / 3)
    # distinct/samples: 1/3, 2/3, 2/2 -> mean 2/3
    assert diversity.unique_score_fraction(groups) == pytest.approx(2 / 3)
    assert diversity.mean_pairwise_distance(["a b", "a b", "c d"], diversity.jaccard_distance) == pytest.approx(2 / 3)


def test_batch_metrics_record():
    metrics = diversity.batch_metrics([["a b", "a b"], ["a b", "c d"]], [[0.5, 0.5], [0.0, None]], [10, 30])
    assert metrics["signal_fraction"] == 0.0  # group 2 has one scored sample left: no comparison possible
    metrics = diversity.batch_metrics([["a b", "a b"], ["a b", "c d"]], [[0.5, 0.5], [0.0, 1.0]], [10, 30])
    # 40 tokens spent in all, one group with signal -> 40 tokens per signal group
    assert metrics["signal_fraction"] == 0.5 and metrics["tokens_per_signal_group"] == 40
    assert metrics["samples_drawn"] == metrics["samples_kept"] == 4
    assert metrics["mean_pairwise_jaccard"] == 0.5 and metrics["distinct_2"] == 0.75


def test_batch_metrics_with_distances_and_draws():
    metrics = diversity.batch_metrics([["a b"], ["a b", "c d"]], [[0.5], [0.0, 1.0]], [10, 30], [None, 0.8], [3, 2])
    assert metrics["mean_pairwise_distance"] == pytest.approx(0.8)
    assert (metrics["samples_drawn"], metrics["samples_kept"]) == (5, 3)
