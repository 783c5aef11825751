import pytest
import torch

from tao_ray.core.advantages import group_normalized, leave_one_out


def test_group_normalized_hand_values():
    # Group 1: rewards (0, 1): mean 0.5, population std 0.5 -> (-1, +1).
    # Group 2: rewards (1, 1): all equal -> zero signal.
    # Group 3: rewards (0, 0, 0, 1): mean 0.25, std sqrt(0.1875) = 0.4330 -> (-0.5774, ..., 1.7321).
    out = group_normalized(torch.tensor([[0.0, 1.0], [1.0, 1.0]]), eps=0.0 + 1e-12)
    assert torch.allclose(out, torch.tensor([[-1.0, 1.0], [0.0, 0.0]]), atol=1e-6)
    out3 = group_normalized(torch.tensor([[0.0, 0.0, 0.0, 1.0]]), eps=1e-12)
    assert torch.allclose(out3, torch.tensor([[-0.57735, -0.57735, -0.57735, 1.73205]]), atol=1e-4)


def test_group_normalized_without_std_only_centers():
    out = group_normalized(torch.tensor([[0.2, 0.4, 0.9]]), normalize_std=False)
    assert torch.allclose(out, torch.tensor([[-0.3, -0.1, 0.4]]), atol=1e-6)


def test_leave_one_out_hand_values():
    # rewards (1, 2, 3): baselines are the mean of the others: (2.5, 2, 1.5) -> advantages (-1.5, 0, 1.5).
    out = leave_one_out(torch.tensor([[1.0, 2.0, 3.0]]))
    assert torch.allclose(out, torch.tensor([[-1.5, 0.0, 1.5]]))


def test_vectorized_matches_loop():
    rewards = torch.rand(5, 6, generator=torch.Generator().manual_seed(0))
    looped = torch.zeros_like(rewards)
    for b in range(5):
        for g in range(6):
            group = rewards[b]
            looped[b, g] = (group[g] - group.mean()) / (group.std(unbiased=False) + 1e-6)
    assert torch.allclose(group_normalized(rewards), looped, atol=1e-6)
    loo = torch.stack([torch.stack([rewards[b, g] - torch.cat([rewards[b, :g], rewards[b, g + 1:]]).mean()
                                    for g in range(6)]) for b in range(5)])
    assert torch.allclose(leave_one_out(rewards), loo, atol=1e-6)


def test_leave_one_out_needs_two():
    with pytest.raises(ValueError):
        leave_one_out(torch.tensor([[1.0]]))
