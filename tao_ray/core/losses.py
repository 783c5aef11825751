"""Policy losses on token log-probabilities.

Notation: B = sequences in the micro-batch, T = response tokens (padded), V = vocabulary.
In: logprobs_BT from the current policy, old_logprobs_BT from the policy that produced the rollout's learning step,
ref_logprobs_BT from the frozen reference, advantages_B, and mask_BT (1 on real response tokens).
behaviour_logprobs_BT from the engine that sampled the tokens. Out: a scalar loss and a dict of float metrics.
"""

from __future__ import annotations

import torch


def token_logprobs(logits_BTV: torch.Tensor, tokens_BT: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probability of each chosen token under softmax(logits / temperature). logits_BTV[:, t] must already be
    the prediction *for* tokens_BT[:, t].

    gather - logsumexp instead of log_softmax, so no second B×T×V tensor is materialized.
    """
    logits_BTV = logits_BTV.float()
    if temperature != 1.0:
        logits_BTV = logits_BTV / temperature
    chosen_BT = torch.gather(logits_BTV, dim=-1, index=tokens_BT.unsqueeze(-1)).squeeze(-1)
    return chosen_BT - torch.logsumexp(logits_BTV, dim=-1)


def kl_k3(logprobs_BT: torch.Tensor, ref_logprobs_BT: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference) with Schulman's k3 estimator: exp(r) - r - 1, r = ref - policy.

    k3 is unbiased for samples drawn from the policy and never negative, which is why GRPO uses it.
    """
    log_ratio_BT = ref_logprobs_BT - logprobs_BT
    return torch.exp(log_ratio_BT) - log_ratio_BT - 1.0


def masked_mean(values_BT: torch.Tensor, mask_BT: torch.Tensor) -> torch.Tensor:
    return (values_BT * mask_BT).sum() / mask_BT.sum().clamp(min=1.0)


def aggregate(values_BT: torch.Tensor, mask_BT: torch.Tensor, level: str, denominator: float | None = None,
              constant_tokens: int | None = None) -> torch.Tensor:
    """'token': mean over all real tokens of the batch (long answers weigh more, as in DAPO).
    'sequence': mean over tokens within each sequence, then over sequences (as in the original GRPO).
    'constant': each sequence's token sum divided by the same fixed length `constant_tokens`, then the mean over
    sequences (Dr. GRPO; verl's seq-mean-token-sum-norm): no sequence's tokens weigh more for being in a short
    answer, so the loss does not pay for brevity.

    `denominator` (tokens or sequences of the *whole* batch) lets micro-batches add up to the exact full-batch mean:
    sum the micro-batch results instead of averaging them. It is used as given: a data-parallel rank's share of
    the batch's denominator may be below 1 (core.data_parallel).
    """
    if level == "token":
        total = max(float(mask_BT.sum()), 1.0) if denominator is None else denominator
        return (values_BT * mask_BT).sum() / total
    if level == "sequence":
        per_seq_B = (values_BT * mask_BT).sum(dim=1) / mask_BT.sum(dim=1).clamp(min=1.0)
        total = max(per_seq_B.shape[0], 1) if denominator is None else denominator
        return per_seq_B.sum() / total
    if level == "constant":
        if not constant_tokens:
            raise ValueError("the constant aggregation needs its fixed length (training.loss_norm_tokens)")
        total = max(values_BT.shape[0], 1) if denominator is None else denominator
        return (values_BT * mask_BT).sum() / (constant_tokens * total)
    raise ValueError(f"unknown aggregation level {level!r}; use 'token', 'sequence' or 'constant'")


def clipped_policy_gradient(
    logprobs_BT: torch.Tensor,
    old_logprobs_BT: torch.Tensor,
    ref_logprobs_BT: torch.Tensor | None,
    advantages_B: torch.Tensor,
    mask_BT: torch.Tensor,
    clip_eps: float,
    kl_coef: float,
    aggregation: str = "token",
    denominator: float | None = None,
    weights_BT: torch.Tensor | None = None,
    clip_eps_high: float | None = None,
    constant_tokens: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-style clipped surrogate plus a k3 KL penalty to the reference: the GRPO objective, negated for descent.

    per token: -w * min(ratio * A, clip(ratio, 1-eps, 1+eps_high) * A) + kl_coef * k3(policy, ref)
    `clip_eps_high` (DAPO's clip-higher; None: eps) lets a token's probability rise further than it may fall, which
    keeps rare good tokens explorable.
    `weights_BT` (w, no gradient; default 1) corrects tokens sampled by another policy than `old_logprobs_BT`'s
    (truncated_importance_weights). Without a reference (`ref_logprobs_BT` None, which needs kl_coef 0) there is no
    KL term, and nothing was computed for it.
    """
    if ref_logprobs_BT is None and kl_coef:
        raise ValueError("a KL penalty needs the reference's log-probs")
    advantages_BT = advantages_B.unsqueeze(1).expand_as(logprobs_BT)
    ratio_BT = torch.exp(logprobs_BT - old_logprobs_BT)
    unclipped_BT = ratio_BT * advantages_BT
    high = clip_eps if clip_eps_high is None else clip_eps_high
    clipped_BT = torch.clamp(ratio_BT, 1.0 - clip_eps, 1.0 + high) * advantages_BT
    pg_loss_BT = -torch.minimum(unclipped_BT, clipped_BT)
    if weights_BT is not None:
        pg_loss_BT = weights_BT * pg_loss_BT
    kl_BT = kl_k3(logprobs_BT, ref_logprobs_BT) if ref_logprobs_BT is not None else torch.zeros_like(logprobs_BT)
    loss = aggregate(pg_loss_BT + kl_coef * kl_BT, mask_BT, aggregation, denominator, constant_tokens)
    with torch.no_grad():
        # Fraction of tokens where the clipped term is the one the min selects (its gradient is cut off).
        clipped_fraction = masked_mean((clipped_BT < unclipped_BT).float(), mask_BT)
        metrics = {
            "loss": float(aggregate(pg_loss_BT + kl_coef * kl_BT, mask_BT, aggregation,
                                    constant_tokens=constant_tokens)),
            "pg_loss": float(aggregate(pg_loss_BT, mask_BT, aggregation, constant_tokens=constant_tokens)),
            "kl": float(masked_mean(kl_BT, mask_BT)),
            "clip_fraction": float(clipped_fraction),
        }
    return loss, metrics


def truncated_importance_weights(proximal_BT: torch.Tensor, behaviour_BT: torch.Tensor, stale_B: torch.Tensor,
                                 mask_BT: torch.Tensor, cap: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token importance weights min(pi_prox / pi_behaviour, cap) for rows sampled on older weights (stale_B 1),
    and 1 elsewhere; no gradient flows through them.

    pi_behaviour is the engine that sampled the row (one policy version behind), pi_prox the learner's policy at
    the start of this step. Truncating at `cap` bounds the variance a rare token could add (truncated importance
    sampling, as in one-step-off-policy and fully asynchronous GRPO)."""
    with torch.no_grad():
        ratio_BT = torch.exp((proximal_BT.detach() - behaviour_BT).clamp(max=20.0))
        stale_BT = stale_B.unsqueeze(1).expand_as(ratio_BT) * mask_BT
        weights_BT = torch.where(stale_BT > 0, ratio_BT.clamp(max=cap), torch.ones_like(ratio_BT))
        stale_tokens = float(stale_BT.sum())
        metrics = {"stale_tokens": stale_tokens}
        if stale_tokens:
            metrics.update(
                importance_weight=float((weights_BT * stale_BT).sum() / stale_tokens),
                importance_truncated=float(((ratio_BT > cap).float() * stale_BT).sum() / stale_tokens),
                behaviour_kl=float(((behaviour_BT - proximal_BT) * stale_BT).sum() / stale_tokens))
    return weights_BT, metrics


def dpo_loss(logprobs_BR: torch.Tensor, ref_logprobs_BR: torch.Tensor, mask_BR: torch.Tensor, beta: float,
             denominator: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO on (chosen, rejected) pairs: rows 0, 2, 4, ... are chosen and rows 1, 3, 5, ... rejected.

    per pair: -log sigmoid(beta * ((log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)))),
    with sequence log-probs summed over response tokens. `denominator` (pairs in the whole batch) makes
    micro-batch losses add up to the full-batch mean.
    """
    if logprobs_BR.shape[0] % 2:
        raise ValueError("dpo_loss needs an even number of rows: (chosen, rejected) pairs")
    implicit_reward_B = ((logprobs_BR - ref_logprobs_BR) * mask_BR).sum(dim=1)
    margin_P = beta * (implicit_reward_B[0::2] - implicit_reward_B[1::2])
    pairs = max(margin_P.shape[0], 1) if denominator is None else denominator
    loss = -torch.nn.functional.logsigmoid(margin_P).sum() / pairs
    with torch.no_grad():
        metrics = {"loss": float(-torch.nn.functional.logsigmoid(margin_P).mean()),
                   "margin": float(margin_P.mean()), "pair_accuracy": float((margin_P > 0).float().mean())}
    return loss, metrics


def sft_loss(logprobs_BR: torch.Tensor, mask_BR: torch.Tensor, denominator: float | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative log-likelihood per response token (best-of-N fine-tuning). `denominator`: tokens in the batch."""
    loss = aggregate(-logprobs_BR, mask_BR, "token", denominator)
    return loss, {"loss": float(aggregate(-logprobs_BR.detach(), mask_BR, "token"))}


def bradley_terry_loss(chosen_B: torch.Tensor, rejected_B: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Reward-model loss on preference pairs: -log sigmoid(r_chosen - r_rejected), averaged over the B pairs.

    Under the Bradley-Terry model P(chosen > rejected) = sigmoid(r_c - r_r); this is its negative log-likelihood.
    """
    margin_B = chosen_B.float() - rejected_B.float()
    loss = -torch.nn.functional.logsigmoid(margin_B).mean()
    return loss, {"loss": float(loss), "accuracy": float((margin_B > 0).float().mean()),
                  "margin": float(margin_B.mean())}


def reinforce_surrogate(logprobs_BT: torch.Tensor, advantages_B: torch.Tensor, mask_BT: torch.Tensor, level: str,
                        kl_coef: float = 0.0, ref_logprobs_BT: torch.Tensor | None = None,
                        constant_tokens: int | None = None) -> torch.Tensor:
    """-aggregate(A * logprob) + kl_coef * aggregate(KL): the REINFORCE form of the clipped loss, whose gradient equals
    the clipped loss's at ratio 1 (where the clipped loss's value is constant). A step on a batch must lower it, so
    it measures whether an update helped; no reference (None) means no KL term."""
    per_token_BT = -advantages_B.unsqueeze(1) * logprobs_BT
    if ref_logprobs_BT is not None:
        per_token_BT = per_token_BT + kl_coef * kl_k3(logprobs_BT, ref_logprobs_BT)
    return aggregate(per_token_BT, mask_BT, level, constant_tokens=constant_tokens)
