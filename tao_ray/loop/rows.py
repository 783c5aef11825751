"""The training fields of an iteration's summary row (the evaluation's are in evaluation.py), from what the
iteration drew, scored and learned. Reported numbers are raw scores: comparable across iterations whatever the
normalization."""

from __future__ import annotations

from typing import Any

from tao_ray.core import diversity, selection
from tao_ray.core.batch import Generation
from tao_ray.core.composition import Scores


def train_fields(strategy: str, prompts: list, generations: list[Generation], scores: Scores,
                 scoring: dict[str, Any], samples_kept: int, timing: dict[str, float], train_metrics: dict,
                 receive_s: float, heldout_versions: list[int] | None, checkpoint_write_s: float | None,
                 prompt_order: dict[str, Any]) -> dict[str, Any]:
    """`prompt_order`: the order to resume from (before a batch drawn ahead); `heldout_versions`: the policy
    versions the evaluation's answers came from (None without an evaluation)."""
    flat_rewards = [r for group in scores.raw for r in group if r is not None]
    tokens = sum(g.tokens_drawn or g.tokens_generated for g in generations)
    # Samples drawn with the evaluation have no time of their own; drawn in the background, that thread's.
    sampling_s = timing.get("sampled_ahead", timing["generate"])
    return {
        "train_reward_mean": selection.mean(flat_rewards),
        "samples_generated": sum(g.samples_drawn or len(g.response_texts) for g in generations),
        "samples_kept": samples_kept, "scoring_failed": scores.failed, "tokens_generated": tokens,
        "tokens_per_s": tokens / sampling_s if sampling_s else None,
        "weight_sync_s": timing["sync"], "weight_receive_s": receive_s, "train": train_metrics,
        "sampled_ahead_s": timing.get("sampled_ahead"),
        "checkpoint_write_s": checkpoint_write_s,
        "scoring": scoring,
        "prompt_ids": [p.id for p in prompts], "prompt_order": prompt_order,
        "policy_version": {"samples": sorted({g.policy_version for g in generations}), "heldout": heldout_versions},
        "diversity": {"strategy": strategy, **diversity.batch_metrics(
            [g.response_texts for g in generations], scores.raw,
            [g.tokens_drawn or g.tokens_generated for g in generations],
            [g.mean_distance for g in generations], [g.samples_drawn for g in generations])}}
