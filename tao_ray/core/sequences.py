"""Prompt + response packing for the learner's forward pass.

Notation: B = sequences, P = longest prompt, R = longest response, S = P + R.
Each row is [left padding | prompt | response | right padding], so every response starts at column P. The model then
needs logits only for the last R + 1 positions (`logits_to_keep`), not for the prompts: less compute, and no
B×S×V logits tensor. Positions count real tokens only, so left padding does not shift the rotary embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PackedBatch:
    input_ids_BS: torch.Tensor
    attention_mask_BS: torch.Tensor
    position_ids_BS: torch.Tensor
    response_ids_BR: torch.Tensor
    """The tokens whose log-probs the loss needs (padding where the mask is 0)."""
    response_mask_BR: torch.Tensor
    """1.0 on real response tokens."""

    @property
    def logits_to_keep(self) -> int:
        """Positions P-1 .. S-1; the last one predicts past the end and is dropped after the forward."""
        return self.response_ids_BR.shape[1] + 1

    def to(self, device) -> PackedBatch:
        return PackedBatch(*(t.to(device) for t in (self.input_ids_BS, self.attention_mask_BS, self.position_ids_BS,
                                                    self.response_ids_BR, self.response_mask_BR)))


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> PackedBatch:
    if any(len(p) == 0 for p in prompts) or any(len(r) == 0 for r in responses):
        raise ValueError("every prompt and response needs at least one token")
    width_p = max(len(p) for p in prompts)
    width_r = max(len(r) for r in responses)
    batch = len(prompts)
    input_ids_BS = torch.full((batch, width_p + width_r), pad_id, dtype=torch.long)
    attention_mask_BS = torch.zeros((batch, width_p + width_r), dtype=torch.long)
    response_mask_BR = torch.zeros((batch, width_r), dtype=torch.float32)
    for row, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
        start = width_p - len(prompt)
        input_ids_BS[row, start:width_p] = torch.tensor(prompt)
        input_ids_BS[row, width_p:width_p + len(response)] = torch.tensor(response)
        attention_mask_BS[row, start:width_p + len(response)] = 1
        response_mask_BR[row, :len(response)] = 1.0
    position_ids_BS = (attention_mask_BS.cumsum(dim=1) - 1).clamp(min=0)
    return PackedBatch(input_ids_BS, attention_mask_BS, position_ids_BS, input_ids_BS[:, width_p:].clone(),
                       response_mask_BR)


def response_logprobs(model, packed: PackedBatch) -> torch.Tensor:
    """logprobs_BR of each response token under `model` (an HF causal LM, or an engine wrapping one)."""
    from tao_ray.core.losses import token_logprobs

    logits_BKV = model(input_ids=packed.input_ids_BS, attention_mask=packed.attention_mask_BS,
                       position_ids=packed.position_ids_BS, logits_to_keep=packed.logits_to_keep).logits
    return token_logprobs(logits_BKV[:, :-1], packed.response_ids_BR)
