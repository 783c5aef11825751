"""Prompt + response packing for the learner's forward pass.

Notation: B = sequences, P = longest prompt, R = longest response, S = P + R.
Each row is [left padding | prompt | response | right padding], so every response starts at column P. The model then
needs logits only for the last R + 1 positions (`logits_to_keep`), not for the prompts: less compute, and no
B×S×V logits tensor. Positions count real tokens only, so left padding does not shift the rotary embeddings.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from tao_ray.core.losses import token_logprobs
from tao_ray.core.shared_prefix import SharedPrefixBatch, gather_response_states, require_tokens


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
    require_tokens(prompts, responses)
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


def response_logprobs(model, packed, temperature: float = 1.0, causal_lm=None,
                      chunk_tokens: int = 4096) -> torch.Tensor:
    """logprobs_BR of each response token under `model` (an HF causal LM, or an engine wrapping one), from logits
    divided by the sampling `temperature`: the distribution the responses were drawn from.

    With `causal_lm` (the HF model inside `model`, whose output projection `head_is_separable` accepted), the model
    returns its last hidden states instead of logits, and the projection and log-softmax run over chunks of about
    `chunk_tokens` positions, each recomputed in the backward pass: no B x R x V logits tensor, in any dtype, is
    ever whole (for a 128k vocabulary and 8k-token micro-batches it would be 4 GB in float32).

    `packed`: a PackedBatch (row by row), or a core.shared_prefix.SharedPrefixBatch (one sequence per prompt; needs
    `causal_lm`)."""
    if isinstance(packed, SharedPrefixBatch):
        # Every position's hidden state is kept (responses sit all along the sequence); only the response rows'
        # predicting positions go through the output projection.
        with hidden_states_instead_of_logits(causal_lm) as head:
            hidden_GSH = model(**packed.forward_kwargs(causal_lm.config._attn_implementation)).logits
        return chunked_token_logprobs(gather_response_states(hidden_GSH, packed), head, packed.response_ids_BR,
                                      temperature, chunk_tokens)
    kwargs = dict(input_ids=packed.input_ids_BS, attention_mask=packed.attention_mask_BS,
                  position_ids=packed.position_ids_BS, logits_to_keep=packed.logits_to_keep, use_cache=False)
    if causal_lm is None:
        return token_logprobs(model(**kwargs).logits[:, :-1], packed.response_ids_BR, temperature)
    with hidden_states_instead_of_logits(causal_lm) as head:
        hidden_BKH = model(**kwargs).logits
    return chunked_token_logprobs(hidden_BKH[:, :-1], head, packed.response_ids_BR, temperature, chunk_tokens)


@contextmanager
def hidden_states_instead_of_logits(causal_lm):
    """Swap the output projection for an identity while the model runs, so its `logits` are the final hidden
    states; yields the projection. The model is still called as a whole (as DeepSpeed's engine must call it, for
    its backward hooks), and every parameter keeps its name."""
    head = causal_lm.get_output_embeddings()
    name = next(child for child, module in causal_lm.named_children() if module is head)
    setattr(causal_lm, name, torch.nn.Identity())
    try:
        yield head
    finally:
        setattr(causal_lm, name, head)


def chunked_token_logprobs(hidden_BRH: torch.Tensor, head, tokens_BR: torch.Tensor, temperature: float,
                           chunk_tokens: int) -> torch.Tensor:
    from torch.utils.checkpoint import checkpoint

    rows, width = tokens_BR.shape
    step = max(1, chunk_tokens // max(rows, 1))
    recompute = torch.is_grad_enabled() and hidden_BRH.requires_grad
    parts = []
    for start in range(0, width, step):
        hidden, tokens = hidden_BRH[:, start:start + step], tokens_BR[:, start:start + step]
        parts.append(checkpoint(_head_logprobs, hidden, tokens, head, temperature, use_reentrant=False)
                     if recompute else _head_logprobs(hidden, tokens, head, temperature))
    return torch.cat(parts, dim=1)


def _head_logprobs(hidden_BCH, tokens_BC, head, temperature: float) -> torch.Tensor:
    return token_logprobs(head(hidden_BCH), tokens_BC, temperature)


def head_is_separable(model, causal_lm, vocab_size: int) -> bool:
    """Whether logits are exactly the output projection of the last hidden states, so that the chunked path computes
    what the model's own forward does. Some families rescale or soft-cap logits after the projection (Gemma 2,
    Cohere, Granite): compared once on a short sequence, and those keep the plain path. `model` is what runs
    (the HF model, or an engine or adapter wrapper around `causal_lm`).

    The probe is built where the model's weights are (DeepSpeed moves them to the rank's GPU). Half-precision
    kernels round differently with the number of rows they see, so there the tolerance is a half-precision one:
    a rescaled or soft-capped head moves log-probs by far more."""
    try:
        weight = next(causal_lm.parameters())
    except (AttributeError, StopIteration, TypeError):
        return False
    ids_BS = torch.arange(8).remainder(vocab_size).unsqueeze(0) + 1
    packed = pack([ids_BS[0, :4].tolist()], [ids_BS[0, 4:].tolist()], 0).to(weight.device)
    try:
        with torch.no_grad():
            plain = response_logprobs(model, packed)
            chunked = response_logprobs(model, packed, causal_lm=causal_lm, chunk_tokens=2)
    except (AttributeError, StopIteration, TypeError):
        return False
    tolerance = 2e-2 if weight.dtype in (torch.bfloat16, torch.float16) else 1e-4
    return bool(torch.allclose(plain.float(), chunked.float(), atol=tolerance))
