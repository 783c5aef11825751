"""The records that cross actor boundaries: what generators return and the one batch learners consume.

Notation: P = prompts in the iteration, G = samples per prompt, N = samples kept for learning (flattened,
prompt-major). Token ids are python lists because lengths differ; learners pad them.

Two scores per sample (core/composition.py): raw (the weighted sum of the components' raw scores) and learning (the
same, or with scoring.normalize=group z-normalized per group). Thresholds and pairing compare raw scores, so
training.min_score and training.min_margin mean what they say; advantages come from learning scores.
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
    samples_drawn: int = 0
    """Samples the strategy drew to keep these G (more than G when near-duplicates were dropped)."""
    near_duplicates: int = 0
    tokens_drawn: int = 0
    """Tokens generated for this prompt, dropped samples included: the compute actually spent."""
    rewards: list[float | None] | None = None
    """G raw scores already given during sampling (the adaptive strategy), else None: the scorer stage scores
    them."""
    learning_rewards: list[float | None] | None = None
    """G learning scores, given with `rewards`: normalized over the whole group once sampling finished."""
    mean_distance: float | None = None
    """Mean pairwise distance between the kept responses (the recipe's generation.distance)."""
    policy_version: int = 0
    """The policy version (iteration whose weights) the engine served when it sampled these."""
    response_logprobs: list[list[float]] | None = None
    """G lists: the engine's log-probability of each sampled token, under the sampling temperature (the behaviour
    policy of an off-policy update); None when the engine did not return them."""

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
    """N raw scores (never normalized: comparable across groups and iterations)."""
    advantages: list[float] = field(default_factory=list)
    """N per-sample advantages (every token of a response shares its sample's advantage)."""
    group_ids: list[int] = field(default_factory=list)
    """N prompt indices: which group each sample belongs to."""
    policy_versions: list[int] = field(default_factory=list)
    """N policy versions: the weights each sample was drawn with (older than the learner's when run.max_staleness
    is 1)."""
    behaviour_logprobs: list[list[float]] = field(default_factory=list)
    """N lists of the engine's log-probs of the response tokens ([] where the engine gave none)."""

    def __len__(self) -> int:
        return len(self.rewards)

    def lengths(self) -> list[int]:
        """Tokens per row (prompt + response): what a forward pass costs."""
        return [len(p) + len(r) for p, r in zip(self.prompt_token_ids, self.response_token_ids)]

    def shard(self, rank: int, world_size: int) -> RolloutBatch:
        """Rank `rank`'s share: every world_size-th group, whole, so DPO pairs never straddle two ranks."""
        groups = sorted(set(self.group_ids))
        mine = set(groups[rank::world_size])
        keep = [i for i, g in enumerate(self.group_ids) if g in mine]
        # The per-sample records a caller may leave empty (no versions, no engine log-probs) stay empty.
        return RolloutBatch(*([values[i] for i in keep] if values else [] for values in (
            self.prompt_token_ids, self.response_token_ids, self.rewards, self.advantages, self.group_ids,
            self.policy_versions, self.behaviour_logprobs)))


def _append(batch: RolloutBatch, generation: Generation, sample: int, reward: float, advantage: float) -> None:
    batch.prompt_token_ids.append(generation.prompt_token_ids)
    batch.response_token_ids.append(generation.response_token_ids[sample])
    batch.rewards.append(float(reward))
    batch.advantages.append(float(advantage))
    batch.group_ids.append(generation.prompt_index)
    batch.policy_versions.append(generation.policy_version)
    batch.behaviour_logprobs.append(list(generation.response_logprobs[sample]) if generation.response_logprobs
                                    else [])


def build_preference_batch(generations: list[Generation], rewards: list[list[float | None]],
                           min_margin: float) -> RolloutBatch:
    """DPO: per group, the best and the worst response by raw score as a (chosen, rejected) pair when their raw
    scores differ by more than min_margin. Pairs are consecutive rows; `advantages` marks chosen +1, rejected -1."""
    batch = RolloutBatch()
    for generation, group_rewards in zip(generations, rewards, strict=True):
        kept = [(r, i) for i, r in enumerate(group_rewards) if r is not None]
        if len(kept) < 2:
            continue
        (best, chosen), (worst, rejected) = max(kept), min(kept)
        if best - worst > min_margin:
            _append(batch, generation, chosen, best, 1.0)
            _append(batch, generation, rejected, worst, -1.0)
    return batch


def build_best_of_n_batch(generations: list[Generation], rewards: list[list[float | None]],
                          min_score: float) -> RolloutBatch:
    """RFT: per group, the top response when its raw score reaches min_score; `advantages` are 1 (plain SFT
    weight)."""
    batch = RolloutBatch()
    for generation, group_rewards in zip(generations, rewards, strict=True):
        kept = [(r, -i) for i, r in enumerate(group_rewards) if r is not None]  # ties: the earliest sample
        if kept and max(kept)[0] >= min_score:
            best, negative_index = max(kept)
            _append(batch, generation, -negative_index, best, 1.0)
    return batch


def build_rollout_batch(generations: list[Generation], rewards: list[list[float | None]], estimator: str,
                        normalize_std: bool = True, skip_flat_groups: bool = True,
                        learning_rewards: list[list[float | None]] | None = None) -> RolloutBatch:
    """Compute advantages per group from the learning scores (default: `rewards`, the raw ones) and flatten to one
    batch that records the raw scores.

    Samples whose reward is None (the scorer failed on them) are left out; a group then uses its remaining samples.
    Groups left with fewer than 2 samples, or (with skip_flat_groups) whose learning scores are all equal, carry no
    preference signal: their advantages would be all zero, so they are dropped to save learner compute.
    """
    batch = RolloutBatch()
    learning_rewards = rewards if learning_rewards is None else learning_rewards
    for generation, raw, learning in zip(generations, rewards, learning_rewards, strict=True):
        kept = [i for i, r in enumerate(raw) if r is not None and learning[i] is not None]
        if len(kept) < 2:
            continue
        learning_G = torch.tensor([learning[i] for i in kept], dtype=torch.float64)
        if skip_flat_groups and bool((learning_G == learning_G[0]).all()):
            continue
        estimate = ESTIMATORS[estimator]
        kwargs = {"normalize_std": normalize_std} if estimator == "grpo" else {}
        advantages_G = estimate(learning_G.unsqueeze(0), **kwargs).squeeze(0)
        for position, i in enumerate(kept):
            _append(batch, generation, i, raw[i], advantages_G[position])
    return batch
