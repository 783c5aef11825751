"""Which dtype each side computes in, decided on the machine that runs it (a cluster's nodes may differ).

In: a recipe setting (auto | float32 | bfloat16), the device, the model's weights dtype and the CPU's flags. Out: a
torch dtype name. `auto` picks bfloat16 on CPUs with native bf16 matmuls (AVX512-BF16 or AMX), where it runs about
twice as fast as float32, and otherwise the weights' dtype (on GPUs, recipes choose bfloat16 weights themselves).
"""

from __future__ import annotations

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16(flags: set[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve(setting: str, device: str, weights_dtype: str, flags: set[str] | None = None) -> str:
    if setting != "auto":
        return setting
    if device == "cpu" and cpu_has_bf16(flags):
        return "bfloat16"
    return weights_dtype
