"""Shared-prompt packing: each prompt's forward pass computed once for all of its group's responses.

A GRPO group is one prompt with several responses. Packed row by row (core.sequences.pack), the prompt's tokens go
through the model once per response; on the demo (prompts ~60 tokens, 4 responses of ~45) that is a third of the
learner's compute spent recomputing the same activations. Here each group is one sequence,

    [prompt | response 1 | response 2 | ... | right padding]

with a block attention mask: the prompt is causal, each response sees the prompt and its own earlier tokens, never
another response. Positions restart after the prompt for every response, so each response is encoded exactly as
in its own row (same rotary positions, same visible tokens): the log-probs equal the row-by-row ones.

Notation: G = sequences (groups), S = longest sequence, B = response rows, R = longest response, H = hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SharedPrefixBatch:
    input_ids_GS: torch.Tensor
    attention_mask_G1SS: torch.Tensor
    """True where a query position (dim 2) may attend to a key position (dim 3)."""
    position_ids_GS: torch.Tensor
    source_BR: torch.Tensor
    """For each response token, the flat index (g * S + s) of the position whose output predicts it."""
    response_ids_BR: torch.Tensor
    response_mask_BR: torch.Tensor
    """1.0 on real response tokens, in the caller's row order."""

    def to(self, device) -> SharedPrefixBatch:
        return SharedPrefixBatch(*(t.to(device) for t in (
            self.input_ids_GS, self.attention_mask_G1SS, self.position_ids_GS, self.source_BR,
            self.response_ids_BR, self.response_mask_BR)))

    def forward_kwargs(self, attention: str) -> dict:
        """What the HF model is called with. sdpa reads the boolean mask; eager adds a float one."""
        mask = self.attention_mask_G1SS
        if attention == "eager":
            mask = torch.zeros(mask.shape, device=mask.device).masked_fill(~mask, torch.finfo(torch.float32).min)
        return dict(input_ids=self.input_ids_GS, attention_mask=mask, position_ids=self.position_ids_GS,
                    use_cache=False)


SUPPORTED_ATTENTION = ("sdpa", "eager")
"""Attention implementations that honour a custom 4D mask (flash-attention kernels ignore it)."""


def require_tokens(prompts: list[list[int]], responses: list[list[int]]) -> None:
    """Both packings need a token in every prompt and response (a response's first log-prob is read at its
    prompt's last position)."""
    if any(len(p) == 0 for p in prompts) or any(len(r) == 0 for r in responses):
        raise ValueError("every prompt and response needs at least one token")


def sharing_pays(prompts: list[list[int]]) -> bool:
    """Whether any prompt repeats, so that packing by group computes fewer tokens than row by row."""
    return len({tuple(p) for p in prompts}) < len(prompts)


def pack_shared(prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> SharedPrefixBatch:
    """Rows with identical prompts (in any order) become one sequence; the response rows keep the caller's order."""

    require_tokens(prompts, responses)
    groups: dict[tuple[int, ...], list[int]] = {}
    for row, prompt in enumerate(prompts):
        groups.setdefault(tuple(prompt), []).append(row)
    width_s = max(len(p) + sum(len(responses[r]) for r in rows) for p, rows in groups.items())
    width_r = max(len(r) for r in responses)
    count_g, count_b = len(groups), len(responses)
    input_ids_GS = torch.full((count_g, width_s), pad_id, dtype=torch.long)
    position_ids_GS = torch.zeros((count_g, width_s), dtype=torch.long)
    # Which block each position belongs to: 0 the prompt, i >= 1 the i-th response, -1 padding.
    block_GS = torch.full((count_g, width_s), -1, dtype=torch.long)
    source_BR = torch.zeros((count_b, width_r), dtype=torch.long)
    response_ids_BR = torch.full((count_b, width_r), pad_id, dtype=torch.long)
    response_mask_BR = torch.zeros((count_b, width_r), dtype=torch.float32)
    for g, (prompt, rows) in enumerate(groups.items()):
        width_p = len(prompt)
        input_ids_GS[g, :width_p] = torch.tensor(prompt)
        position_ids_GS[g, :width_p] = torch.arange(width_p)
        block_GS[g, :width_p] = 0
        start = width_p
        for i, row in enumerate(rows, start=1):
            response = responses[row]
            end = start + len(response)
            input_ids_GS[g, start:end] = torch.tensor(response)
            position_ids_GS[g, start:end] = torch.arange(width_p, width_p + len(response))
            block_GS[g, start:end] = i
            # The last prompt position predicts the first token; each response position predicts the next one.
            source_BR[row, :len(response)] = g * width_s + torch.tensor([width_p - 1, *range(start, end - 1)])
            response_ids_BR[row, :len(response)] = torch.tensor(response)
            response_mask_BR[row, :len(response)] = 1.0
            start = end
    query, key = block_GS.unsqueeze(2), block_GS.unsqueeze(1)
    causal = torch.ones((width_s, width_s), dtype=torch.bool).tril()
    visible = (key == 0) | (key == query)
    real = (query >= 0) & (key >= 0)
    # A padding position attends to itself only: a query with nothing to attend to would give NaN in softmax.
    itself = torch.eye(width_s, dtype=torch.bool) & (query < 0)
    mask_GSS = (causal & visible & real) | itself
    return SharedPrefixBatch(input_ids_GS, mask_GSS.unsqueeze(1), position_ids_GS, source_BR, response_ids_BR,
                             response_mask_BR)


def gather_response_states(output_GSX: torch.Tensor, packed: SharedPrefixBatch) -> torch.Tensor:
    """The model's per-position outputs (hidden states or logits) rearranged into response rows: B x R x X."""
    flat = output_GSX.reshape(-1, output_GSX.shape[-1])
    return flat.index_select(0, packed.source_BR.reshape(-1)).reshape(*packed.source_BR.shape, -1)
