"""Model FLOPs utilization of a learner step: the FLOPs a dense transformer step needs over what the accelerators
could do in that time.

In: the model's parameter count, the tokens the step ran through the model (prompt + response), the step's seconds,
the accelerator's name and the number of ranks. Out: a fraction, or None where no peak is known (CPUs: their peak
depends on the part, the clock and the instruction mix, so no single figure would mean anything).
FLOPs per token: 6 N for forward and backward of the policy, plus 2 N for the frozen reference's forward.
"""

from __future__ import annotations

# Dense bf16 tensor-core peak per device, FLOP/s, as the vendors publish them (no sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "B200": 2250e12}


def peak_flops(device_name: str | None) -> float | None:
    for model, peak in PEAK_BF16_FLOPS.items():
        if device_name and model in device_name:
            return peak
    return None


def mfu(parameters: int, tokens: int, seconds: float, device_name: str | None, ranks: int,
        with_reference: bool) -> float | None:
    peak = peak_flops(device_name)
    if peak is None or seconds <= 0 or not tokens:
        return None
    flops = (6 + (2 if with_reference else 0)) * parameters * tokens
    return flops / seconds / (peak * ranks)
