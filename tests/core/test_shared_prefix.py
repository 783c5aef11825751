import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tao_ray.core.sequences import pack, response_logprobs
from tao_ray.core.shared_prefix import pack_shared, sharing_pays

PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13], [5, 6, 7], [9, 10, 11, 12, 13], [5, 6, 7], [20]]
RESPONSES = [[1, 2], [3, 4, 5, 6], [7], [8, 9, 10], [11, 12, 13, 14, 15], [16, 17]]


def test_layout_by_hand():
    """Two rows share prompt [5, 6]: one sequence [5 6 | 1 2 | 3] with positions restarting after the prompt."""
    packed = pack_shared([[5, 6], [8], [5, 6]], [[1, 2], [4], [3]], pad_id=0)
    assert packed.input_ids_GS.tolist() == [[5, 6, 1, 2, 3], [8, 4, 0, 0, 0]]
    assert packed.position_ids_GS.tolist() == [[0, 1, 2, 3, 2], [0, 1, 0, 0, 0]]
    # row 0 is predicted from the prompt's last position (1), then from its own first token (2); row 2 from 1 alone
    assert packed.source_BR.tolist() == [[1, 2], [5 + 0, 0], [1, 0]]
    assert packed.response_ids_BR.tolist() == [[1, 2], [4, 0], [3, 0]]
    assert packed.response_mask_BR.tolist() == [[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]]
    mask = packed.attention_mask_G1SS[0, 0].int().tolist()
    assert mask == [[1, 0, 0, 0, 0],
                    [1, 1, 0, 0, 0],
                    [1, 1, 1, 0, 0],
                    [1, 1, 1, 1, 0],
                    [1, 1, 0, 0, 1]]  # the second response sees the prompt and itself, not the first response
    padding = packed.attention_mask_G1SS[1, 0].int().tolist()
    assert padding[3] == [0, 0, 0, 1, 0]  # a padding position sees itself only: no all-masked softmax row


def test_sharing_pays_only_when_a_prompt_repeats():
    assert sharing_pays([[1], [2], [1]])
    assert not sharing_pays([[1], [2], [3]])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_logprobs_and_gradients_equal_row_by_row_packing(attention):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, attn_implementation=attention)
    model = LlamaForCausalLM(config).train()
    rows = pack(PROMPTS, RESPONSES, pad_id=0)
    shared = pack_shared(PROMPTS, RESPONSES, pad_id=0)
    assert shared.input_ids_GS.shape[0] == 3  # three distinct prompts
    assert torch.equal(rows.response_mask_BR, shared.response_mask_BR)
    grads = []
    for packed in (rows, shared):
        model.zero_grad()
        logprobs_BR = response_logprobs(model, packed, 0.7, causal_lm=model, chunk_tokens=3)
        (logprobs_BR * packed.response_mask_BR).sum().backward()
        grads.append((logprobs_BR.detach() * packed.response_mask_BR, [p.grad.clone() for p in model.parameters()]))
    (by_row, row_grads), (by_group, group_grads) = grads
    assert torch.allclose(by_row, by_group, atol=1e-5)
    for a, b in zip(row_grads, group_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
