"""The records that cross actor boundaries: what generators return and the one batch learners consume.

Notation: P = prompts in the iteration, G = samples per prompt, N = samples kept for learning (flattened,
prompt-major). Token ids are python lists because lengths differ; learners pad them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tao_ray.core.advantages import ESTIMATORS


@dataclass
class Generation:
    """One prompt's candidates, as a generator produced them."""

    prompt_index: int
    """Index into the prompt list the driver sent."""
    prompt_token_ids: list[int]
    """The chat-templated prompt the responses answer (what the learner conditions on)."""
    response_texts: list[str]
    """G texts, the scorer's input."""
    response_token_ids: list[list[int]]
    """G token-id lists, the learner's input (may end with EOS)."""

    @property
    def tokens_generated(self) -> int:
        return sum(len(ids) for ids in self.response_token_ids)


@dataclass
class RolloutBatch:
    """One iteration's learning data: every field has N entries (N = kept samples)."""

    prompt_token_ids: list[list[int]] = field(default_factory=list)
    """N prompts (repeated per sample of a group)."""
    response_token_ids: list[list[int]] = field(default_factory=list)
    """N responses."""
    rewards: list[float] = field(default_factory=list)
    """N scores from the scorer."""
    advantages: list[float] = field(default_factory=list)
    """N per-sample advantages (every token of a response shares its sample's advantage)."""
    group_ids: list[int] = field(default_factory=list)
    """N prompt indices: which group each sample belongs to."""

    def __len__(self) -> int:
        return len(self.rewards)

    def shard(self, rank: int, world_size: int) -> RolloutBatch:
        """Rank `rank`'s strided share, so every rank gets a mix of groups and lengths."""
        pick = slice(rank, None, world_size)
        return RolloutBatch(self.prompt_token_ids[pick], self.response_token_ids[pick], self.rewards[pick],
                            self.advantages[pick], self.group_ids[pick])


def build_rollout_batch(generations: list[Generation], rewards: list[list[float | None]], estimator: str,
                        normalize_std: bool = True, skip_flat_groups: bool = True) -> RolloutBatch:
    """Compute advantages per group and flatten to one batch.

    Samples whose reward is None (the scorer failed on them) are left out; a group then uses its remaining samples.
    Groups left with fewer than 2 samples, or (with skip_flat_groups) whose rewards are all equal, carry no
    preference signal: their advantages would be all zero, so they are dropped to save learner compute.
    """
    batch = RolloutBatch()
    for generation, group_rewards in zip(generations, rewards, strict=True):
        kept = [i for i, r in enumerate(group_rewards) if r is not None]
        if len(kept) < 2:
            continue
        rewards_G = torch.tensor([group_rewards[i] for i in kept], dtype=torch.float64)
        if skip_flat_groups and bool((rewards_G == rewards_G[0]).all()):
            continue
        estimate = ESTIMATORS[estimator]
        kwargs = {"normalize_std": normalize_std} if estimator == "grpo" else {}
        advantages_G = estimate(rewards_G.unsqueeze(0), **kwargs).squeeze(0)
        for position, i in enumerate(kept):
            batch.prompt_token_ids.append(generation.prompt_token_ids)
            batch.response_token_ids.append(generation.response_token_ids[i])
            batch.rewards.append(float(rewards_G[position]))
            batch.advantages.append(float(advantages_G[position]))
            batch.group_ids.append(generation.prompt_index)
    return batch
