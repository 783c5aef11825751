import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tao_ray.core.losses import token_logprobs
from tao_ray.core.sequences import head_is_separable, pack, response_logprobs


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


def tiny_llama(**overrides) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, **overrides)
    return LlamaForCausalLM(config)


def test_chunked_logprobs_and_gradients_equal_the_plain_path_at_any_temperature():
    """The hidden-states path (projection and log-softmax per chunk, recomputed in backward) computes what the
    model's own logits give, gradients included; the temperature divides the logits."""
    model = tiny_llama(tie_word_embeddings=True).train()
    packed = pack([[3, 4, 5, 6], [7, 8]], [[9, 10, 11], [12, 13, 14, 15, 16]], pad_id=0)
    for temperature in (1.0, 0.7):
        model.zero_grad()
        plain_BR = response_logprobs(model, packed, temperature)
        (plain_BR * packed.response_mask_BR).sum().backward()
        plain_grads = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        chunked_BR = response_logprobs(model, packed, temperature, causal_lm=model, chunk_tokens=4)  # 2 columns
        (chunked_BR * packed.response_mask_BR).sum().backward()
        assert torch.allclose(plain_BR, chunked_BR, atol=1e-5)
        for plain, chunked in zip(plain_grads, (p.grad for p in model.parameters()), strict=True):
            assert torch.allclose(plain, chunked, atol=1e-5)
        assert model.get_output_embeddings() is model.lm_head  # the projection is back in place
    with torch.no_grad():
        logits = model(input_ids=packed.input_ids_BS, attention_mask=packed.attention_mask_BS,
                       position_ids=packed.position_ids_BS).logits[:, -packed.logits_to_keep:-1]
        expected = token_logprobs(logits / 0.7, packed.response_ids_BR)
    assert torch.allclose(response_logprobs(model, packed, 0.7, causal_lm=model), expected, atol=1e-5)


def test_a_model_that_soft_caps_its_logits_keeps_the_plain_path():
    """A rescaling after the projection commutes with it (the chunked path applies it to the hidden states), a soft
    cap (Gemma 2's tanh) does not: the check tells them apart."""
    model = tiny_llama().eval()
    assert head_is_separable(model, model, 50)

    class Capped(LlamaForCausalLM):
        def __init__(self, config, post):
            super().__init__(config)
            self.post = post

        def forward(self, *args, **kwargs):
            output = super().forward(*args, **kwargs)
            output.logits = self.post(output.logits)
            return output

    for post, separable in ((lambda logits: logits * 0.5, True), (lambda logits: 0.05 * torch.tanh(logits / 0.05),
                                                                  False)):
        capped = Capped(model.config, post).eval()
        assert head_is_separable(capped, capped, 50) is separable
