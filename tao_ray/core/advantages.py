"""Advantage estimators: turn per-sample scores into per-sample learning signals.

Notation: B = prompts in the batch, G = samples per prompt (the group).
In: rewards_BG, one score per sample, grouped by prompt.
Out: advantages_BG, same shape; a group whose rewards are all equal carries no signal and gets zeros.
"""

from __future__ import annotations

import torch


def group_normalized(rewards_BG: torch.Tensor, normalize_std: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """GRPO: subtract the group mean and (optionally) divide by the group std.

    The std is the population std (unbiased=False) so that a group of two samples with rewards (0, 1) maps to
    exactly (-1, +1), which keeps hand-derived test values simple.
    """
    mean_B1 = rewards_BG.mean(dim=1, keepdim=True)
    centered_BG = rewards_BG - mean_B1
    if not normalize_std:
        return centered_BG
    std_B1 = rewards_BG.std(dim=1, keepdim=True, unbiased=False)
    return centered_BG / (std_B1 + eps)


def leave_one_out(rewards_BG: torch.Tensor) -> torch.Tensor:
    """RLOO: each sample's baseline is the mean of the *other* samples in its group."""
    group_size = rewards_BG.shape[1]
    if group_size < 2:
        raise ValueError("leave-one-out needs at least 2 samples per group")
    total_B1 = rewards_BG.sum(dim=1, keepdim=True)
    baseline_BG = (total_B1 - rewards_BG) / (group_size - 1)
    return rewards_BG - baseline_BG


ESTIMATORS = {"grpo": group_normalized, "rloo": leave_one_out}
