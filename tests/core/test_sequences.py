import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tao_ray.core.losses import token_logprobs
from tao_ray.core.sequences import pack, response_logprobs


def test_pack_layout_by_hand():
    packed = pack([[5, 6, 7], [8]], [[1], [2, 3]], pad_id=0)
    # P = 3, R = 2: rows are [prompt right-aligned to column 3 | response from column 3]
    assert packed.input_ids_BS.tolist() == [[5, 6, 7, 1, 0], [0, 0, 8, 2, 3]]
    assert packed.attention_mask_BS.tolist() == [[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    assert packed.position_ids_BS.tolist() == [[0, 1, 2, 3, 3], [0, 0, 0, 1, 2]]
    assert packed.response_ids_BR.tolist() == [[1, 0], [2, 3]]
    assert packed.response_mask_BR.tolist() == [[1.0, 0.0], [1.0, 1.0]]
    assert packed.logits_to_keep == 3


def test_padded_logprobs_equal_unpadded_ones():
    """Packing must not change any real token's log-prob: compare with each sequence run alone, unpadded."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config).eval()
    prompts, responses = [[3, 4, 5, 6], [7, 8]], [[9, 10], [11, 12, 13, 14]]
    with torch.no_grad():
        batched_BR = response_logprobs(model, pack(prompts, responses, pad_id=0))
        for row, (prompt, response) in enumerate(zip(prompts, responses)):
            ids = torch.tensor([prompt + response])
            logits = model(input_ids=ids).logits[:, len(prompt) - 1:-1]
            alone = token_logprobs(logits, torch.tensor([response]))[0]
            assert torch.allclose(batched_BR[row, :len(response)], alone, atol=1e-5)
