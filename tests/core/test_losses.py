import math

import pytest
import torch

from tao_ray.core.losses import aggregate, clipped_policy_gradient, kl_k3, token_logprobs


def test_token_logprobs_matches_log_softmax():
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(1))
    tokens = torch.tensor([[0, 3, 6], [1, 1, 2]])
    expected = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(token_logprobs(logits, tokens), expected, atol=1e-6)


def test_kl_k3_hand_values():
    # r = ref - policy. r = 0 -> 0. r = ln 2 -> 2 - ln 2 - 1 = 0.30685. r = -ln 2 -> 0.5 + ln 2 - 1 = 0.19315.
    policy = torch.tensor([[0.0, 0.0, 0.0]])
    ref = torch.tensor([[0.0, math.log(2), -math.log(2)]])
    assert torch.allclose(kl_k3(policy, ref), torch.tensor([[0.0, 0.30685, 0.19315]]), atol=1e-5)


def test_clipped_loss_hand_values():
    # One sequence, two tokens, advantage +1, no KL.
    # token 1: ratio = e^0.5 = 1.6487 -> clipped to 1.2 (eps 0.2): min(1.6487, 1.2) = 1.2
    # token 2: ratio = e^-0.5 = 0.6065 -> clip gives 0.8; min(0.6065, 0.8) = 0.6065
    # loss = -(1.2 + 0.6065) / 2 = -0.90327; one of two tokens clipped.
    logprobs = torch.tensor([[0.0, 0.0]])
    old = torch.tensor([[-0.5, 0.5]])
    mask = torch.ones(1, 2)
    loss, metrics = clipped_policy_gradient(logprobs, old, logprobs, torch.tensor([1.0]), mask, 0.2, 0.0)
    assert abs(float(loss) - (-(1.2 + math.exp(-0.5)) / 2)) < 1e-5
    assert metrics["clip_fraction"] == 0.5
    assert metrics["kl"] == 0.0


def test_negative_advantage_clips_the_other_side():
    # advantage -1, ratio e^0.5: -min(-1.6487, -1.2) = 1.6487 (unclipped: pessimistic bound wins).
    loss, _ = clipped_policy_gradient(torch.tensor([[0.0]]), torch.tensor([[-0.5]]), torch.tensor([[0.0]]),
                                      torch.tensor([-1.0]), torch.ones(1, 1), 0.2, 0.0)
    assert abs(float(loss) - math.exp(0.5)) < 1e-5


def test_kl_penalty_adds_to_loss():
    # ratio 1, advantage 0 -> pg term 0; kl_coef 0.5 * k3(r = ln 2) = 0.5 * 0.30685.
    logprobs = torch.tensor([[0.0]])
    loss, _ = clipped_policy_gradient(logprobs, logprobs, torch.tensor([[math.log(2)]]), torch.tensor([0.0]),
                                      torch.ones(1, 1), 0.2, 0.5)
    assert abs(float(loss) - 0.5 * 0.30685) < 1e-5


def test_padding_is_ignored_and_aggregation_levels_differ():
    values = torch.tensor([[1.0, 1.0, 1.0, 99.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    # token level: (1 + 1 + 1 + 4) / 4 tokens = 1.75; sequence level: (1 + 4) / 2 = 2.5
    assert float(aggregate(values, mask, "token")) == 1.75
    assert float(aggregate(values, mask, "sequence")) == 2.5
    # constant (Dr. GRPO), fixed length 8: (3 / 8 + 4 / 8) / 2 sequences = 0.4375. Each token weighs 1/8 whatever
    # its answer's length; the sequence level gives the short answer's one token 4x the weight of each of the
    # long answer's three.
    assert float(aggregate(values, mask, "constant", constant_tokens=8)) == 0.4375


def test_the_constant_level_needs_its_length():
    with pytest.raises(ValueError, match="fixed length"):
        aggregate(torch.ones(1, 2), torch.ones(1, 2), "constant")


def test_clip_higher_lets_the_ratio_rise_further_than_it_may_fall():
    # Advantage +1, ratios e^0.5 = 1.6487 and e^-0.5 = 0.6065, eps 0.2, eps_high 0.28:
    # token 1: min(1.6487, clip to 1.28) = 1.28; token 2: min(0.6065, clip to 0.8) = 0.6065.
    # loss = -(1.28 + 0.6065) / 2 = -0.94327 (symmetric clipping gave -0.90327).
    logprobs, old, mask = torch.tensor([[0.0, 0.0]]), torch.tensor([[-0.5, 0.5]]), torch.ones(1, 2)
    loss, metrics = clipped_policy_gradient(logprobs, old, None, torch.tensor([1.0]), mask, 0.2, 0.0,
                                            clip_eps_high=0.28)
    assert abs(float(loss) - (-(1.28 + math.exp(-0.5)) / 2)) < 1e-5
    assert metrics["clip_fraction"] == 0.5
    # Negative advantage: the lower bound (1 - eps) still applies, as without clip-higher.
    loss, _ = clipped_policy_gradient(torch.tensor([[0.0]]), torch.tensor([[0.5]]), None, torch.tensor([-1.0]),
                                      torch.ones(1, 1), 0.2, 0.0, clip_eps_high=0.28)
    assert abs(float(loss) - 0.8) < 1e-5


def test_micro_batches_sum_to_full_batch_mean():
    generator = torch.Generator().manual_seed(3)
    values = torch.randn(6, 5, generator=generator)
    mask = (torch.rand(6, 5, generator=generator) > 0.3).float()
    for level, denominator in (("token", float(mask.sum())), ("sequence", 6.0), ("constant", 6.0)):
        full = aggregate(values, mask, level, constant_tokens=5)
        parts = sum(aggregate(values[i:i + 2], mask[i:i + 2], level, denominator, constant_tokens=5)
                    for i in range(0, 6, 2))
        assert torch.allclose(full, parts, atol=1e-6)


def test_dpo_loss_hand_values():
    # One pair. chosen: policy - ref summed = (0.0 - (-1.0)) = +1; rejected: (-2.0 - (-1.0)) = -1.
    # margin = beta * (1 - (-1)) = 0.5 * 2 = 1 -> loss = -log sigmoid(1) = log(1 + e^-1) = 0.31326
    logprobs = torch.tensor([[0.0, 9.0], [-2.0, 0.0]])
    ref = torch.tensor([[-1.0, 9.0], [-1.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # the 9.0s are padding and must not count
    from tao_ray.core.losses import dpo_loss

    loss, metrics = dpo_loss(logprobs, ref, mask, beta=0.5)
    assert abs(float(loss) - math.log(1 + math.exp(-1))) < 1e-5
    assert metrics["pair_accuracy"] == 1.0 and abs(metrics["margin"] - 1.0) < 1e-6


def test_dpo_vectorized_matches_loop():
    from tao_ray.core.losses import dpo_loss

    generator = torch.Generator().manual_seed(5)
    logprobs, ref = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    mask = torch.ones(6, 4)
    looped = 0.0
    for pair in range(3):
        chosen, rejected = 2 * pair, 2 * pair + 1
        margin = 0.1 * ((logprobs[chosen] - ref[chosen]).sum() - (logprobs[rejected] - ref[rejected]).sum())
        looped += -torch.nn.functional.logsigmoid(margin) / 3
    assert torch.allclose(dpo_loss(logprobs, ref, mask, beta=0.1)[0], looped, atol=1e-6)


def test_sft_loss_is_token_mean_nll():
    from tao_ray.core.losses import sft_loss

    # tokens with log-probs ln 0.5 and ln 0.25 -> NLL (0.6931 + 1.3863) / 2 = 1.0397
    loss, _ = sft_loss(torch.tensor([[math.log(0.5), math.log(0.25), 0.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
    assert abs(float(loss) - (math.log(2) + math.log(4)) / 2) < 1e-5


def test_bradley_terry_loss_by_hand():
    from tao_ray.core.losses import bradley_terry_loss

    # margins 0 and ln 3: -log sigmoid(0) = ln 2; -log sigmoid(ln 3) = -log(3/4) = ln(4/3); mean of the two
    loss, metrics = bradley_terry_loss(torch.tensor([1.0, math.log(3.0)]), torch.tensor([1.0, 0.0]))
    assert float(loss) == pytest.approx((math.log(2.0) + math.log(4 / 3)) / 2)
    assert metrics["accuracy"] == 0.5  # a tie is not a win


def test_without_a_reference_there_is_no_kl_term_and_a_kl_coefficient_is_refused():
    logprobs = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    mask = torch.ones(1, 2)
    loss, metrics = clipped_policy_gradient(logprobs, logprobs.detach(), None, torch.tensor([1.0]), mask, 0.2, 0.0)
    assert metrics["kl"] == 0.0 and loss.item() == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="reference"):
        clipped_policy_gradient(logprobs, logprobs.detach(), None, torch.tensor([1.0]), mask, 0.2, 0.02)


def test_truncated_importance_weights_reweight_stale_rows_only():
    from tao_ray.core.losses import truncated_importance_weights

    proximal = torch.log(torch.tensor([[0.5, 0.4], [0.5, 0.4]]))
    behaviour = torch.log(torch.tensor([[0.25, 0.1], [0.25, 0.1]]))  # ratios 2 and 4
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    weights, metrics = truncated_importance_weights(proximal, behaviour, torch.tensor([1.0, 0.0]), mask, cap=3.0)
    assert torch.allclose(weights, torch.tensor([[2.0, 3.0], [1.0, 1.0]]))  # row 1 is on-policy; 4 is cut to 3
    assert metrics["stale_tokens"] == 2 and metrics["importance_truncated"] == pytest.approx(0.5)
    assert metrics["importance_weight"] == pytest.approx(2.5)
    # The weight scales the policy-gradient term of its token and carries no gradient itself.
    logprobs = proximal.clone().requires_grad_(True)
    loss, _ = clipped_policy_gradient(logprobs, proximal, None, torch.tensor([1.0, 1.0]), mask, 0.2, 0.0,
                                      "token", None, weights)
    loss.backward()
    assert logprobs.grad[0].tolist() == pytest.approx([-2.0 / 3, -3.0 / 3])
