"""A PolicyLearner's checkpoint files: the policy as an HF directory (merged weights, plus the adapter with LoRA) and
the DeepSpeed state to resume from (weights, this rank's optimizer partition, the RNG state), written from a copy in
a background thread while training goes on (engine/background_writes.py). Every rank calls each method; rank 0
writes the model. No Ray."""

from __future__ import annotations

import time

import torch
from peft import get_peft_model_state_dict

from tao_ray.engine import distributed
from tao_ray.engine.background_writes import BackgroundWriter, background_checkpoint_engine
from tao_ray.engine.learner import PolicyLearner


class CheckpointIO:
    def __init__(self, learner: PolicyLearner):
        self.learner = learner
        self.writer = BackgroundWriter()  # checkpoint files written while training goes on

    def save_checkpoint(self, directory: str, full: bool) -> float:
        """Start writing a checkpoint: the policy to `directory`/model and, when `full`, the DeepSpeed state to
        `directory`/learner. Returns once the state is copied (seconds taken); the files are written in the
        background while training goes on: `wait_for_writes` before renaming the directory into place. Every rank
        calls it."""
        started = time.perf_counter()
        self.wait_for_writes()  # one checkpoint at a time: the previous one's files first
        self.save_model(f"{directory}/model", background=True)
        if full:
            self.save_state(f"{directory}/learner", background=True)
        return time.perf_counter() - started

    def writes_done(self) -> bool:
        return self.writer.done()

    def wait_for_writes(self) -> float:
        """Block until every background checkpoint file is written; returns the seconds the writes took."""
        return self.writer.wait()

    def save_model(self, directory: str, background: bool = False) -> None:
        """Write the policy as an HF directory from rank 0 (the caller renames it into place atomically).
        With LoRA, the directory holds the merged weights (what serving needs) and `adapter/` the adapter alone.
        `background`: copy the weights now, write them from the copy in the background (see save_checkpoint)."""
        # Written at once, ZeRO-2's live parameters need no copy; written later, they do.
        state = self.learner.rank0_tensors(copy=background)
        if self.learner.rank == 0:
            model = self.learner.engine.module.get_base_model() if self.learner.lora else self.learner.engine.module
            if background:
                self.writer.submit(lambda: model.save_pretrained(directory, state_dict=state,
                                                                    safe_serialization=True))
            else:
                model.save_pretrained(directory, state_dict=state, safe_serialization=True)
        if self.learner.lora and (self.learner.rank == 0 or self.learner.zero3):
            # peft saves the adapter (and, when an embedding is a LoRA target, that embedding) from the live
            # parameters: under ZeRO-3 exactly those are gathered, at once (a few MB, plus at most the embedding).
            module = self.learner.engine.module
            saved = get_peft_model_state_dict(module, module.state_dict(keep_vars=True)) if self.learner.zero3 else {}
            with distributed.gathered(list(saved.values()), self.learner.zero3):
                if self.learner.rank == 0:
                    module.save_pretrained(f"{directory}/adapter")

    def save_state(self, directory: str, background: bool = False) -> None:
        """DeepSpeed state for resume: weights, this rank's optimizer partition and its torch RNG state (dropout,
        if the model has any). Every rank calls it. `background`: copied now, written in the background."""
        ds_engine = self.learner.engine
        engine = ds_engine.checkpoint_engine
        if background:
            ds_engine.checkpoint_engine = background_checkpoint_engine(self.writer, ds_engine._config)
        try:
            ds_engine.save_checkpoint(directory, tag="state", save_latest=False,
                                        client_state={"torch_rng_state": torch.get_rng_state()})
        finally:
            ds_engine.checkpoint_engine = engine

    def load_state(self, directory: str) -> None:
        """Restore weights and optimizer state saved by save_state. Every rank calls it."""
        path, client_state = self.learner.engine.load_checkpoint(directory, tag="state", load_optimizer_states=True,
                                                         load_lr_scheduler_states=True)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed state under {directory}")
        torch.set_rng_state(client_state["torch_rng_state"])
