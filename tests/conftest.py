"""Shared test setup. Tiers: tests/core and tests/recipes are pure and fast; tests/actors starts real Ray actors
(vLLM-CPU, DeepSpeed-CPU) with the 135M demo model; tests/e2e runs the `tao-ray` command end to end."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The real-component tests write the 135M model's checkpoints (2.7 GB a run with the optimizer's state) and Ray's
# session files under /tmp: about 5.5 GB at the suite's peak. Short of this, they would fail one by one, deep in
# DeepSpeed or Ray, with "No space left on device".
FREE_DISK_NEEDED_GB = 8
HEAVY_DIRS = ("actors", "e2e")

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


def pytest_collection_finish(session):
    heavy = [item for item in session.items if item.get_closest_marker("integration") or item.get_closest_marker("e2e")
             or Path(str(item.path)).parent.name in HEAVY_DIRS]
    if not heavy:
        return
    where = tempfile.gettempdir()
    free_gb = shutil.disk_usage(where).free / 1e9
    if free_gb < FREE_DISK_NEEDED_GB:
        pytest.exit(f"tests: {free_gb:.1f} GB free under {where}; the {len(heavy)} real-component tests selected need "
                    f"about {FREE_DISK_NEEDED_GB} GB (model checkpoints, Ray's files): free some space there, or run "
                    "`make test-fast`", returncode=3)
