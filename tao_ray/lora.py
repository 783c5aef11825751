"""LoRA via peft: wrap a policy, and read its weights back as a plain (merged) HF state dict.

The generators and exported checkpoints see ordinary merged weights, W + (alpha/r)·B·A, computed without touching
the trained model (no merge/unmerge round trip, so no drift in the weights being trained).
"""

from __future__ import annotations

import torch

_PREFIX = "base_model.model."


def wrap(model, r: int, alpha: float, dropout: float, target_modules: str):
    from peft import LoraConfig, get_peft_model

    targets = "all-linear" if target_modules == "all-linear" else [m.strip() for m in target_modules.split(",")]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def merged_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """HF-named weights with every adapter folded in; adapter tensors themselves are left out."""
    from peft.tuners.lora import LoraLayer

    deltas = {}
    for name, module in peft_model.named_modules():
        # Linear layers keep their adapter in lora_A/lora_B, embeddings in lora_embedding_A/_B.
        adapters = set(getattr(module, "lora_A", {})) | set(getattr(module, "lora_embedding_A", {}))
        if isinstance(module, LoraLayer) and "default" in adapters:
            deltas[name.removeprefix(_PREFIX) + ".weight"] = module.get_delta_weight("default")
    merged = {}
    for name, tensor in peft_model.state_dict().items():
        if ".lora_" in name:
            continue
        clean = name.removeprefix(_PREFIX).replace(".base_layer", "")
        merged[clean] = (tensor + deltas[clean].to(tensor.dtype)) if clean in deltas else tensor
    return merged
