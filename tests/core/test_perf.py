"""MFU by hand."""

import pytest

from tao_ray.core.perf import mfu, peak_flops


def test_mfu_of_a_known_step():
    # 8e9 parameters, 100k tokens in 10 s on 8 H100s with a reference: 8 * 8e9 * 1e5 / 10 / (8 * 989e12).
    assert mfu(8_000_000_000, 100_000, 10.0, "NVIDIA H100 80GB HBM3", 8, True) == pytest.approx(0.0809, abs=1e-4)
    assert mfu(8_000_000_000, 100_000, 10.0, "NVIDIA H100 80GB HBM3", 8, False) == pytest.approx(0.0607, abs=1e-4)


def test_no_mfu_without_a_known_peak():
    assert peak_flops("cpu") is None and mfu(135_000_000, 5000, 10.0, "cpu", 1, True) is None
    assert mfu(135_000_000, 0, 10.0, "NVIDIA A100-SXM4-80GB", 1, True) is None
