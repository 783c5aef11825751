"""Per-rank denominators and the merge of the ranks' metrics, by hand."""

import pytest

from tao_ray.core.data_parallel import merge_metrics, rank_denominators


def test_denominators_are_the_whole_batch_share_of_each_rank():
    # 30 tokens, 6 rows, 3 pairs over 2 ranks: each rank divides by half of the whole batch's counts, so the
    # average of the two ranks' gradients is the whole batch's mean gradient.
    assert rank_denominators(30, 6, 3, 2) == {"tokens": 15.0, "rows": 3.0, "pairs": 1.5}
    # One pair on 2 ranks: the share is 0.5, and must not be clamped to 1 (that would halve the step).
    assert rank_denominators(10, 2, 1, 2)["pairs"] == 0.5
    assert rank_denominators(0, 0, 0, 1) == {"tokens": 1.0, "rows": 1.0, "pairs": 1.0}


def test_merge_weights_by_samples_and_leaves_empty_ranks_out():
    ranks = [{"loss": 0.6, "kl": 0.1, "samples": 6.0, "tokens": 60.0, "seconds": 2.0, "grad_norm": 3.0},
             {"loss": 0.2, "kl": 0.4, "samples": 2.0, "tokens": 10.0, "seconds": 5.0, "grad_norm": 3.0},
             {"loss": 0.0, "kl": 0.0, "samples": 0.0, "tokens": 0.0, "seconds": 1.0, "grad_norm": 3.0}]
    merged = merge_metrics(ranks)
    assert merged["kl"] == pytest.approx((0.1 * 6 + 0.4 * 2) / 8)  # the empty rank's 0.0 is no observation
    assert merged["loss"] == pytest.approx(0.8 / 3)  # loss shares: DeepSpeed averages over every rank
    assert merged["samples"] == 8.0 and merged["tokens"] == 70.0
    assert merged["seconds"] == 5.0 and merged["grad_norm"] == 3.0


def test_merge_with_no_samples_anywhere_gives_none_not_zero():
    merged = merge_metrics([{"kl": 0.0, "samples": 0.0, "tokens": 0.0, "seconds": 1.0}])
    assert merged["kl"] is None
