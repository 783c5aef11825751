"""The CPU sync's shared-memory weights file: a valid safetensors file, rewritten in place, in the engine's dtype."""

import torch
from safetensors import safe_open
from safetensors.torch import load

from tao_ray.sync import wire

STATE = {"embed": torch.randn(7, 5), "odd": torch.randn(3, dtype=torch.bfloat16), "norm": torch.randn(5),
         "steps": torch.arange(4)}  # "odd" leaves the next tensor misaligned for its dtype


def read(path: str) -> dict[str, torch.Tensor]:
    with safe_open(path, framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def test_shared_file_is_safetensors_and_rewritten_in_place():
    shared = wire.SharedWeightsFile()
    try:
        for dtype in (None, "bfloat16", None):
            size = shared.write(STATE, dtype)
            got = read(shared.path)
            assert sorted(got) == sorted(STATE) and size == len(wire.layout(STATE, dtype)[0]) + sum(
                t.numel() * t.element_size() for t in got.values())
            for name, tensor in STATE.items():
                assert torch.equal(got[name], wire.cast(tensor, dtype))
        mapped = shared.mapped
        changed = {**STATE, "embed": STATE["embed"] * 2}
        shared.write(changed)
        assert shared.mapped is mapped  # same size: the same mapping, overwritten
        assert torch.equal(read(shared.path)["embed"], changed["embed"])
    finally:
        shared.close()


def test_payload_converts_floating_point_tensors_only():
    got = load(wire.pack(STATE, "bfloat16"))
    assert got["embed"].dtype == torch.bfloat16 and got["steps"].dtype == torch.int64
    assert torch.equal(got["embed"], STATE["embed"].to(torch.bfloat16))
