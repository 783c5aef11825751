"""LoRA via peft: wrap a policy, and read its weights back as plain (merged) HF tensors.

The generators and exported checkpoints see ordinary merged weights, W + (alpha/r)·B·A, computed without touching
the trained model (no merge/unmerge round trip, so no drift in the weights being trained). The merge goes one LoRA
layer at a time (`distributed.full_tensors` walks the model), so under ZeRO-3 only one layer is ever gathered.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

_PREFIX = "base_model.model."


def wrap(model, r: int, alpha: float, dropout: float, target_modules: str):
    from peft import LoraConfig, get_peft_model

    targets = "all-linear" if target_modules == "all-linear" else [m.strip() for m in target_modules.split(",")]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def hf_name(name: str) -> str:
    """The base model's name of a peft model's tensor: `base_model.model.x.q_proj.base_layer.weight` ->
    `x.q_proj.weight`."""
    return name.removeprefix(_PREFIX).replace(".base_layer", "")


def is_adapted(module) -> bool:
    """A LoRA layer carrying the trained adapter."""
    from peft.tuners.lora import LoraLayer

    # Linear layers keep their adapter in lora_A/lora_B, embeddings in lora_embedding_A/_B.
    adapters = set(getattr(module, "lora_A", {})) | set(getattr(module, "lora_embedding_A", {}))
    return isinstance(module, LoraLayer) and "default" in adapters


def merged_layer(layer) -> Iterator[tuple[str, torch.Tensor]]:
    """A LoRA layer's base tensors by name relative to the layer (`base_layer.weight`, `base_layer.bias`), with the
    adapter folded into the weight; the adapter tensors themselves are left out. Needs the whole layer (gathered
    under ZeRO-3)."""
    with torch.no_grad():
        delta = layer.get_delta_weight("default")
    for name, tensor in layer.base_layer.state_dict().items():
        tensor = tensor.detach()
        yield f"base_layer.{name}", (tensor + delta.to(tensor.dtype)) if name == "weight" else tensor
