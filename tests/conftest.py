"""Shared test setup. Tiers: tests/core and tests/recipes are pure and fast; tests/actors starts real Ray actors
(vLLM-CPU, DeepSpeed-CPU) with the 135M demo model; tests/e2e runs the `tao-ray` command end to end."""

import os

import pytest

# The test machines have no network: never let a library try the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        gpus = torch.cuda.device_count()
    except Exception:
        gpus = 0
    for item in items:
        marker = item.get_closest_marker("gpu")
        if marker is not None:
            needed = marker.kwargs.get("count", 1)
            if gpus < needed:
                item.add_marker(pytest.mark.skip(reason=f"needs {needed} GPU(s), found {gpus}"))
