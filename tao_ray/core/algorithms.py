"""One record per learning algorithm: how its batch is built from scored groups, which loss trains on it, and what
that loss needs (a frozen reference, rows kept together). Adding an algorithm means adding one record here and its
name to config.CHOICES["training.algorithm"]; the driver, the learner and the step planner only read the record.

Notation: B = rows in a micro-batch, R = longest response, G = samples per group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tao_ray.core import batch as batches
from tao_ray.core.losses import clipped_policy_gradient, dpo_loss, sft_loss, truncated_importance_weights

if TYPE_CHECKING:
    import torch

    from tao_ray.config import TrainingSection
    from tao_ray.core.batch import Generation, RolloutBatch
    from tao_ray.core.composition import Scores


@dataclass
class LossInputs:
    """What every loss may read, for one micro-batch."""

    logprobs_BR: torch.Tensor
    """Current policy, with gradient."""
    ref_BR: torch.Tensor | None
    """Frozen reference (None when the algorithm does not use one)."""
    old_BR: torch.Tensor | None
    """The policy at the start of this learning step (several epochs; None: the current one, detached)."""
    behaviour_BR: torch.Tensor | None
    """The engine's log-probs of the sampled tokens, for rows sampled on older weights (None: none are stale)."""
    stale_B: torch.Tensor | None
    """1.0 on rows sampled on older weights than the learner's: only those get the importance correction."""
    advantages_B: torch.Tensor
    mask_BR: torch.Tensor
    """1.0 on real response tokens."""
    denominators: dict[str, float]
    """This rank's share of the whole batch's tokens, rows and pairs (core.data_parallel)."""


@dataclass(frozen=True)
class Algorithm:
    name: str
    build_batch: Callable[[list[Generation], Scores, TrainingSection], RolloutBatch]
    loss: Callable[[LossInputs, TrainingSection], tuple[torch.Tensor, dict[str, float]]]
    rows_per_unit: int = 1
    """Rows that stay together in one micro-batch and on one rank (DPO: a chosen and a rejected response)."""
    reference: Callable[[TrainingSection], bool] = lambda training: False
    """Whether the loss reads a frozen reference with these settings (none is loaded or run otherwise)."""
    policy_gradient: bool = False
    """A ratio-based loss: it reads old log-probs over several epochs and corrects stale rows."""


def _policy_gradient_loss(inputs: LossInputs, training: TrainingSection):
    """grpo and rloo differ only in their advantages. With one epoch the sampling policy is the current one, so
    old = current and the ratio is 1; rows sampled on older weights are reweighted by a truncated importance ratio."""
    old_BR = inputs.logprobs_BR.detach() if inputs.old_BR is None else inputs.old_BR
    weights_BR, correction = None, {}
    if inputs.behaviour_BR is not None:
        weights_BR, correction = truncated_importance_weights(old_BR, inputs.behaviour_BR, inputs.stale_B,
                                                              inputs.mask_BR, training.max_importance_ratio)
    level = training.loss_aggregation
    loss, metrics = clipped_policy_gradient(
        inputs.logprobs_BR, old_BR, inputs.ref_BR, inputs.advantages_B, inputs.mask_BR, training.clip_eps,
        training.kl_coef, level, inputs.denominators["tokens" if level == "token" else "rows"], weights_BR,
        training.clip_eps_high, training.loss_norm_tokens)
    return loss, {**metrics, **correction}


def _dpo_loss(inputs: LossInputs, training: TrainingSection):
    return dpo_loss(inputs.logprobs_BR, inputs.ref_BR, inputs.mask_BR, training.dpo_beta,
                    inputs.denominators["pairs"])


def _sft_loss(inputs: LossInputs, training: TrainingSection):
    return sft_loss(inputs.logprobs_BR, inputs.mask_BR, inputs.denominators["tokens"])


def _group_advantages(estimator: str):
    def build(generations: list[Generation], scores: Scores, training: TrainingSection) -> RolloutBatch:
        return batches.build_rollout_batch(generations, scores.raw, estimator, training.normalize_std,
                                           training.skip_flat_groups, learning_rewards=scores.learning)
    return build


ALGORITHMS: dict[str, Algorithm] = {
    "grpo": Algorithm("grpo", _group_advantages("grpo"), _policy_gradient_loss,
                      reference=lambda training: training.kl_coef > 0, policy_gradient=True),
    "rloo": Algorithm("rloo", _group_advantages("rloo"), _policy_gradient_loss,
                      reference=lambda training: training.kl_coef > 0, policy_gradient=True),
    # DPO's loss is defined against the reference: it always needs one.
    "dpo": Algorithm("dpo", lambda generations, scores, training: batches.build_preference_batch(
        generations, scores.raw, training.min_margin), _dpo_loss, rows_per_unit=2,
        reference=lambda training: True),
    "rft": Algorithm("rft", lambda generations, scores, training: batches.build_best_of_n_batch(
        generations, scores.raw, training.min_score), _sft_loss),
}


def get(name: str) -> Algorithm:
    return ALGORITHMS[name]


def uses_reference(training: TrainingSection) -> bool:
    """With LoRA the reference is the policy with its adapter off: never a second copy, but still run."""
    return get(training.algorithm).reference(training)
