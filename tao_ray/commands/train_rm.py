"""`tao-ray train-rm`: a Bradley-Terry reward model from preference pairs, trained on a DeepSpeed learner actor.

In: a JSONL of {"prompt", "chosen", "rejected"}, a causal-LM backbone (any HF directory, hub id or `demo`).
Out: an HF sequence-classification directory with one output (load it with scoring.reward=reward_model and
scoring.reward_model.path=DIR) and a report: held-out pairwise accuracy before and after training.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tao_ray.actors.reward_learner import RewardLearnerActor
from tao_ray.data.inputs import resolve_model_path
from tao_ray.data.preferences import load_pairs, split
from tao_ray.errors import TaoError
from tao_ray.run.tracking import hardware
from tao_ray.runtime import session
from tao_ray.runtime.launch import join_ranks


@dataclass(frozen=True)
class RewardTraining:
    pairs: str
    model: str = "demo"
    out: str = "reward-model"
    epochs: int = 2
    lr: float = 2e-5
    batch_size: int = 8
    lora_r: int = 0
    """0: full fine-tuning; else the LoRA rank (the new scalar head always trains in full)."""
    lora_alpha: float = 16.0
    max_length: int = 512
    heldout_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    cpus: float = 2.0


def check(settings: RewardTraining) -> None:
    for name in ("epochs", "batch_size", "max_length"):
        if getattr(settings, name) < 1:
            raise TaoError(f"train-rm: --{name.replace('_', '-')} must be at least 1")
    if not 0 < settings.heldout_fraction < 1:
        raise TaoError("train-rm: --heldout-fraction must be between 0 and 1")
    if settings.lr <= 0 or settings.lora_r < 0:
        raise TaoError("train-rm: --lr must be positive and --lora-r not negative")
    out = Path(settings.out)
    if out.exists() and any(out.iterdir()):
        raise TaoError(f"train-rm: --out {out} exists and is not empty; choose a new directory")


def train_reward_model(settings: RewardTraining) -> dict:
    import ray


    check(settings)
    pairs = load_pairs(settings.pairs)
    train, heldout = split(pairs, settings.heldout_fraction, settings.seed)
    model_dir = resolve_model_path(settings.model, "train-rm: --model")
    as_tuples = lambda items: [(p.messages, p.chosen, p.rejected) for p in items]  # noqa: E731
    # The learner's engine logs stay in Ray's log files: this command prints one line per epoch and a report.
    started_ray = session.connect(settings.cpus)
    started = time.perf_counter()
    try:
        cls = ray.remote(num_cpus=settings.cpus, num_gpus=1 if settings.device == "cuda" else 0)(RewardLearnerActor)
        (learner,), (trainable,) = join_ranks(lambda: [cls.remote(
            model_dir, settings.device, settings.lora_r, settings.lora_alpha, settings.lr, settings.batch_size,
            settings.max_length, settings.seed, max(1, int(settings.cpus)))])
        before = ray.get(learner.accuracy.remote(as_tuples(heldout)))
        epochs = []
        for epoch in range(settings.epochs):
            epochs.append(ray.get(learner.train_epoch.remote(as_tuples(train), epoch)))
            print(f"train-rm: epoch {epoch + 1}/{settings.epochs} loss {epochs[-1]['loss']:.4f} "
                  f"train accuracy {epochs[-1]['accuracy']:.3f} ({epochs[-1]['seconds']:.1f}s)", flush=True)
        after = ray.get(learner.accuracy.remote(as_tuples(heldout)))
        out = Path(settings.out)
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        ray.get(learner.save.remote(str(staging.resolve())))
        report = {"pairs": len(pairs), "train_pairs": len(train), "heldout_pairs": len(heldout),
                  "heldout_accuracy_before": before, "heldout_accuracy": after, "epochs": epochs,
                  "trainable_parameters": trainable,
                  "dtypes": ray.get(learner.dtypes.remote()), "lora_r": settings.lora_r, "backbone": model_dir,
                  "seconds": time.perf_counter() - started, "hardware": hardware()}
        (staging / "train_rm_report.json").write_text(json.dumps(report, indent=2))
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)  # the directory appears complete or not at all
        report["out"] = str(out)
        return report
    finally:
        if started_ray:
            ray.shutdown()


def from_args(args: argparse.Namespace) -> int:
    settings = RewardTraining(pairs=args.pairs, model=args.model, out=args.out, epochs=args.epochs, lr=args.lr,
                              batch_size=args.batch_size, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                              max_length=args.max_length, heldout_fraction=args.heldout_fraction, seed=args.seed,
                              device=args.device, cpus=args.cpus)
    report = train_reward_model(settings)
    print(json.dumps({k: v for k, v in report.items() if k not in ("epochs", "hardware")}), flush=True)
    return 0
