"""RewardLearnerActor: trains a Bradley-Terry reward model on a DeepSpeed engine (full or LoRA).

In: preference pairs (prompt messages, chosen, rejected). Out: loss/accuracy metrics per epoch, held-out pairwise
accuracy, and an HF sequence-classification directory (one output) that the reward_model scorer loads directly.
The backbone is any causal LM; its LM head is replaced by a freshly initialized scalar head.
"""

from __future__ import annotations

import random
import time

from tao_ray.core import precision
from tao_ray.core.losses import bradley_terry_loss
from tao_ray.engine import distributed
from tao_ray.rewards.reward_model import load_tokenizer, render


class RewardLearnerActor:
    def __init__(self, model_path: str, device: str, lora_r: int, lora_alpha: float, lr: float, batch_size: int,
                 max_length: int, seed: int, num_threads: int):
        self.model_path, self.device, self.seed = model_path, device, seed
        self.lora_r, self.lora_alpha, self.lr = lora_r, lora_alpha, lr
        self.batch_size, self.max_length, self.num_threads = batch_size, max_length, num_threads

    def rendezvous_address(self) -> tuple[str, int]:
        return distributed.rendezvous_address()

    def setup(self, master_address: str, master_port: int) -> int:
        """Build the engine; returns the number of trainable parameters."""
        distributed.join_process_group(0, 1, master_address, master_port, self.device)
        import torch
        from transformers import AutoModelForSequenceClassification


        torch.set_num_threads(max(1, self.num_threads))
        torch.manual_seed(self.seed)
        self.tokenizer = load_tokenizer(self.model_path)
        model = AutoModelForSequenceClassification.from_pretrained(self.model_path, num_labels=1,
                                                                   dtype=torch.float32)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        if self.lora_r:
            from peft import LoraConfig, get_peft_model

            # The new scalar head is trained in full (modules_to_save): it starts from random weights.
            config = LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, target_modules="all-linear",
                                task_type="SEQ_CLS", modules_to_save=["score"])
            model = get_peft_model(model, config)
        # bf16 compute over float32 master weights where the CPU has native bf16 matmuls, as the policy learner.
        self.compute_dtype = precision.resolve("auto", self.device, "float32")
        autocast = self.compute_dtype if self.compute_dtype != "float32" else None
        ds_config = distributed.engine_config(self.batch_size, max_grad_norm=1.0, zero_stage=2, bf16=False,
                                              autocast=autocast)
        self.engine = distributed.make_engine(model, self.lr, 0.0, ds_config)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def dtypes(self) -> dict[str, str]:
        return {"weights": "float32", "compute": self.compute_dtype}

    def _rewards(self, module, messages: list[list[dict]], responses: list[str]):
        texts = [render(self.tokenizer, m, r) for m, r in zip(messages, responses, strict=True)]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length).to(self.engine.device)
        return module(**encoded).logits.squeeze(-1).float()  # the loss and comparisons in float32, not bf16

    def train_epoch(self, pairs: list[tuple[list[dict], str, str]], epoch: int) -> dict[str, float]:
        """One pass in shuffled micro-batches of `batch_size` pairs, one optimizer step each."""
        started = time.perf_counter()
        order = list(range(len(pairs)))
        random.Random(self.seed + epoch).shuffle(order)
        self.engine.train()
        sums = {"loss": 0.0, "accuracy": 0.0}
        for start in range(0, len(order), self.batch_size):
            chunk = [pairs[i] for i in order[start:start + self.batch_size]]
            messages = [m for m, _, _ in chunk]
            rewards_2B = self._rewards(self.engine, messages + messages, [c for _, c, _ in chunk]
                                       + [r for _, _, r in chunk])
            loss, metrics = bradley_terry_loss(rewards_2B[:len(chunk)], rewards_2B[len(chunk):])
            self.engine.backward(loss)
            self.engine.step()
            for key in sums:
                sums[key] += metrics[key] * len(chunk)
        return {key: value / len(pairs) for key, value in sums.items()} | {"seconds": time.perf_counter() - started}

    def accuracy(self, pairs: list[tuple[list[dict], str, str]]) -> float:
        """Fraction of pairs whose chosen response gets the higher reward, computed in float32 as the reward_model
        scorer computes (bf16 logits would also tie more often)."""
        import torch

        self.engine.eval()
        wins = 0
        with torch.no_grad():
            for start in range(0, len(pairs), self.batch_size):
                chunk = pairs[start:start + self.batch_size]
                messages = [m for m, _, _ in chunk]
                rewards_2B = self._rewards(self.engine.module, messages + messages,
                                           [c for _, c, _ in chunk] + [r for _, _, r in chunk])
                wins += int((rewards_2B[:len(chunk)] > rewards_2B[len(chunk):]).sum())
        return wins / len(pairs)

    def save(self, directory: str) -> None:
        """An HF directory with merged weights (LoRA folded in) and the tokenizer."""
        model = self.engine.module
        if self.lora_r:
            model = model.merge_and_unload()
        model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
