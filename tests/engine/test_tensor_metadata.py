"""The weights' metadata is read without gathering anything and matches what is sent, tensor for tensor."""

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from tao_ray.engine.distributed import full_tensors, tensor_metadata
from tao_ray.sync.wire import metadata

CONFIG = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=1, tie_word_embeddings=True)


def described(tensors) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(m.name, m.dtype, m.shape) for m in metadata(tensors)]


def test_metadata_of_a_plain_model_is_that_of_its_streamed_tensors():
    torch.manual_seed(0)
    model = LlamaForCausalLM(CONFIG)
    found = tensor_metadata(model)
    assert found == described(full_tensors(model, zero3=False))
    assert "lm_head.weight" not in [name for name, _, _ in found]  # tied: sent once, as the embedding


def test_metadata_of_a_lora_model_names_the_merged_base_tensors():
    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(CONFIG), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    found = tensor_metadata(model, lora=True)
    assert found == described(full_tensors(model, zero3=False, lora=True))
    assert ("model.layers.0.self_attn.q_proj.weight", "float32", (32, 32)) in found
    assert not any("lora_" in name or "base_layer" in name for name, _, _ in found)


def test_metadata_reads_zero3s_whole_shape_of_a_partitioned_parameter():
    model = LlamaForCausalLM(CONFIG)
    embedding = model.model.embed_tokens.weight
    embedding.data = torch.empty(0)  # what a ZeRO-3 rank holds of a parameter it does not own
    embedding.ds_shape = torch.Size([64, 32])
    assert tensor_metadata(model)[0] == ("model.embed_tokens.weight", "float32", (64, 32))
