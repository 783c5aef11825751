"""The learner engine on a GPU, in a plain process: what a first run on a GPU cluster does at learner setup and in
each step, checked and timed without Ray or vLLM (a bare GPU machine has neither).

    python -m benchmarks.gpu_check [--model DIR] [--steps 3] [--samples 32]     (make gpu-check)

For each configuration (bf16 at ZeRO-2 and at ZeRO-3, one rank; LoRA at ZeRO-2) it builds the engine
(engine/learner.py), checks that the chunked head and shared-prefix packing stay on (the setup probe that once
crashed on a GPU), takes timed steps on a demo-shaped synthetic batch (median after one warm-up), checks that a
step lowers the objective, saves a checkpoint in the background and loads it back, and prints one JSON: tokens/s,
peak GPU memory, MFU, and each check passed or failed with its error. The model: --model, else the demo model if
its package is installed, else the demo model's architecture with random weights (the same shapes and FLOPs).
Installs nothing. On a machine without a GPU it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

CONFIGS = [("bf16-zero2", 2, 0), ("bf16-zero3", 3, 0), ("bf16-zero2-lora", 2, 16)]
# SmolLM2-135M-Instruct's architecture (its config.json), for a machine without the demo model's package.
DEMO_ARCHITECTURE = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 49152,
                     "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
                     "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": True,
                     "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}


def no_gpu_line() -> str | None:
    """One line saying why nothing can be checked here, or None when a CUDA device is present."""
    try:
        import torch
    except ImportError:
        return "gpu-check: torch is not installed; nothing to check"
    if not torch.cuda.is_available():
        return f"gpu-check: no CUDA device on this machine (torch {torch.__version__}); nothing to check"
    return None


def model_dir(given: str | None, scratch: Path) -> tuple[str, str]:
    """(directory, what it is)."""
    if given:
        return given, "given"
    try:
        from tao_ray.data.demo_model import materialize

        return str(materialize()), "demo model"
    except Exception:  # noqa: BLE001 - no demo package here: its architecture with random weights instead
        import torch
        from transformers import AutoModelForCausalLM, LlamaConfig

        path = scratch / "demo-architecture"
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(LlamaConfig(**{k: v for k, v in DEMO_ARCHITECTURE.items()
                                                                 if k not in ("architectures", "model_type")}))
        model.save_pretrained(path)
        return str(path), "demo architecture, random weights"


def check_config(name: str, zero_stage: int, lora_r: int, path: str, steps: int, samples: int, port: int,
                 scratch: Path, device: str = "cuda") -> dict:
    import torch

    from benchmarks.learner_step import synthetic_batch
    from tao_ray.config import LoraSection, TrainingSection
    from tao_ray.core import perf
    from tao_ray.engine import diagnostics
    from tao_ray.engine.checkpoint_io import CheckpointIO
    from tao_ray.engine.learner import LearnerSpec, PolicyLearner

    result: dict = {"config": name, "checks": {}}

    def check(label: str, passed: bool, detail=None) -> None:
        result["checks"][label] = {"passed": bool(passed), **({"detail": detail} if detail is not None else {})}

    training = TrainingSection(lr=1e-6, kl_coef=0.0, zero_stage=zero_stage, micro_batch_size=16,
                               compute_dtype="bfloat16", shared_prefix=True,
                               lora=LoraSection(r=lora_r, sync="merged" if zero_stage == 3 else "adapter"))
    on_gpu = device == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    # bf16 master weights with DeepSpeed's bf16 optimizer on GPUs; fp32 masters with bf16 autocast on CPUs.
    learner = PolicyLearner(LearnerSpec(path, "bfloat16" if on_gpu else "float32", training, device, 0, 1,
                                        os.cpu_count() or 1))
    learner.setup("127.0.0.1", port)
    described = learner.describe()
    result["device"] = described["device"]
    check(f"engine built on {device}", learner.torch_device.type == device, str(learner.torch_device))
    if zero_stage < 3:  # ZeRO-3 keeps the plain head (its partitioned weight is released in the backward pass)
        check("chunked head on", described["chunked_logprobs"])
        check("shared-prefix packing on", described["shared_prefix"])
    batch = synthetic_batch(samples, min(40000, learner.engine.module.config.vocab_size))
    before = learner.loss_on(batch)
    seconds = [learner.train(batch, -(-samples // 16))["seconds"] for _ in range(steps + 1)][1:]
    after = learner.loss_on(batch)
    check("a step lowers the objective", after < before, {"before": before, "after": after})
    median = statistics.median(seconds)
    tokens = sum(batch.lengths())
    parameters = described["parameters"]
    result.update(step_s=median, steps_s=seconds, tokens_per_s=tokens / median,
                  peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None,
                  mfu=perf.mfu(parameters, tokens, median, described["device"], 1, with_reference=False),
                  parameters=parameters)
    checkpoints = CheckpointIO(learner)
    directory = scratch / f"checkpoint-{name}"
    started = time.perf_counter()
    checkpoints.save_checkpoint(str(directory), full=True)
    result["checkpoint_write_s"] = checkpoints.wait_for_writes()
    digest = diagnostics.weights_digest(learner)
    learner.train(batch, -(-samples // 16))
    checkpoints.load_state(str(directory / "learner"))
    check("checkpoint saved and loaded back", diagnostics.weights_digest(learner) == digest,
          {"seconds": time.perf_counter() - started})
    check("model files written", (directory / "model" / "config.json").is_file())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the same checks on the CPU (a dry run of this script; slow)")
    parser.add_argument("--configs", default=",".join(name for name, _, _ in CONFIGS))
    args = parser.parse_args(argv)
    line = no_gpu_line() if args.device == "cuda" else None
    if line:
        print(line)
        return 0
    import torch

    on_gpu = args.device == "cuda"
    report = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "cuda": torch.version.cuda,
              "card": torch.cuda.get_device_name(0) if on_gpu else "cpu", "configs": []}
    wanted = args.configs.split(",")
    with tempfile.TemporaryDirectory(prefix="tao-ray-gpu-check-") as scratch:
        path, report["model"] = model_dir(args.model, Path(scratch))
        for k, (name, zero_stage, lora_r) in enumerate(c for c in CONFIGS if c[0] in wanted):
            try:
                report["configs"].append(check_config(name, zero_stage, lora_r, path, args.steps, args.samples,
                                                      29500 + k, Path(scratch), args.device))
            except Exception as error:  # noqa: BLE001 - every configuration is reported, failed ones with why
                report["configs"].append({"config": name, "error": f"{type(error).__name__}: {error}",
                                          "traceback": traceback.format_exc().splitlines()[-6:]})
            finally:
                _release_process_group()
    report["passed"] = all("error" not in c and all(v["passed"] for v in c["checks"].values())
                           for c in report["configs"])
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


def _release_process_group() -> None:
    """One rank's group per configuration: the next configuration joins a fresh one."""
    import torch

    if not torch.cuda.is_available():
        return  # a CPU dry run: deepspeed keeps its gloo group for the process (joining again is a no-op)
    try:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - nothing joined
        pass
    torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
