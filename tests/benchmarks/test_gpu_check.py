"""`make gpu-check` (benchmarks/gpu_check.py): one line and exit 0 without a GPU; on the CPU, as a dry run, the same
checks of the learner engine in a plain process (no Ray, no vLLM) pass."""

import json
import subprocess
import sys

import pytest
import torch

from benchmarks import gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: gpu-check runs for real")
def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0
    assert result.stdout.strip().splitlines() == [gpu_check.no_gpu_line()]
    assert "no CUDA device" in result.stdout


@pytest.mark.integration
def test_the_learner_engine_passes_every_check_in_a_plain_process_on_the_cpu():
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--configs",
                             "bf16-zero2", "--steps", "1", "--samples", "8"], capture_output=True, text=True,
                            timeout=600)
    report = json.loads(result.stdout[result.stdout.index("{"):])
    (config,) = report["configs"]
    assert "error" not in config, config
    assert all(check["passed"] for check in config["checks"].values()), config["checks"]
    assert {"engine built on cpu", "chunked head on", "shared-prefix packing on", "a step lowers the objective",
            "checkpoint saved and loaded back"} <= set(config["checks"])
    assert config["tokens_per_s"] > 0 and result.returncode == 0
