"""One DeepSpeed data-parallel rank of the policy learner, as a library: build the engine (ZeRO 0-3, LoRA, the frozen
reference), take a train step on a RolloutBatch, measure the objective, read the weights back one module at a time.

No Ray here: a plain process drives it (benchmarks/learner_step.py, benchmarks/gpu_check.py, tests), and
actors/learner.py is the Ray shell around it. Checkpoint files: engine/checkpoint_io.py; weights to the generators:
sync/sender.py. Notation: B = sequences in a micro-batch, R = longest response.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM

from tao_ray.config import Recipe, TrainingSection
from tao_ray.core import algorithms, microbatch, precision
from tao_ray.core.batch import RolloutBatch
from tao_ray.core.data_parallel import rank_denominators
from tao_ray.core.losses import reinforce_surrogate
from tao_ray.core.sequences import head_is_separable, pack, response_logprobs
from tao_ray.core.shared_prefix import SUPPORTED_ATTENTION, pack_shared, sharing_pays
from tao_ray.engine import distributed, lora


@dataclass(frozen=True)
class LearnerSpec:
    """Everything one learner rank is built with; the run builds it from the recipe (`from_recipe`)."""

    model_path: str
    dtype: str
    """The master weights' and optimizer state's dtype (model.dtype)."""
    training: TrainingSection
    device: str = "cpu"
    rank: int = 0
    world_size: int = 1
    num_threads: int = 1
    """Intra-op threads: the cores this rank owns (resources.learner_cpus), not the node's."""
    temperature: float = 1.0
    """The sampling temperature, applied to the learner's logits so that its log-probs are those of the
    distribution the samples came from."""

    @classmethod
    def from_recipe(cls, recipe: Recipe, model_path: str, rank: int) -> LearnerSpec:
        res = recipe.resources
        # Dr. GRPO's fixed length defaults to the longest answer the engines may give.
        training = dataclasses.replace(recipe.training, loss_norm_tokens=recipe.training.loss_norm_tokens
                                       or recipe.generation.max_tokens)
        return cls(model_path, recipe.model.dtype, training, res.device, rank, res.learners,
                   max(1, int(res.learner_cpus)), recipe.generation.temperature)


class PolicyLearner:
    def __init__(self, spec: LearnerSpec):
        self.model_path, self.dtype, self.training, self.device = (spec.model_path, spec.dtype, spec.training,
                                                                   spec.device)
        self.rank, self.world_size, self.num_threads = spec.rank, spec.world_size, spec.num_threads
        self.temperature = spec.temperature if spec.temperature > 0 else 1.0
        self.algorithm = algorithms.get(spec.training.algorithm)
        # Set by setup(): the DeepSpeed engine and what it was built with.
        self.engine = self.reference = self.torch_device = None
        self.compute_dtype, self.autocast = spec.dtype, None
        self.lora = self.uses_reference = self.chunked_head = self.shared_prefix = False
        self.pad_id, self.loaded_numel = 0, 0
        self._zero3_configs: list = []  # transformers refers to these weakly; they must outlive the models

    def setup(self, master_address: str, master_port: int) -> int:
        """Join the process group and build the DeepSpeed engine; every rank must call this concurrently.

        Under ZeRO-2 every rank loads the whole policy and a whole reference copy. Under ZeRO-3 neither is ever
        whole on one rank: both are loaded straight into their partitions, and the reference is a DeepSpeed
        engine without optimizer (a 70B model in bf16 is 141 GB, more than any one GPU)."""
        rank, device, dtype, training = self.rank, self.device, self.dtype, self.training
        distributed.join_process_group(rank, self.world_size, master_address, master_port, device)
        # The cores this actor owns, not the node's: intra-op threads beyond them only contend.
        torch.set_num_threads(max(1, self.num_threads))
        torch.manual_seed(training.seed + rank)
        torch_dtype = getattr(torch, dtype)
        bf16 = dtype == "bfloat16" and device != "cpu"
        zero3 = training.zero_stage == 3
        self.compute_dtype = precision.resolve(training.compute_dtype, device, dtype)
        self.autocast = None if self.compute_dtype == dtype or bf16 else self.compute_dtype
        ds_config = distributed.engine_config(training.micro_batch_size, training.max_grad_norm,
                                              training.zero_stage, bf16, self.autocast)
        if zero3:
            policy, keep_alive = distributed.load_partitioned(self.model_path, torch_dtype, ds_config)
            self._zero3_configs.append(keep_alive)
        else:
            policy = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch_dtype)
        self.loaded_numel = distributed.local_numel(policy)
        if training.gradient_checkpointing:
            policy.gradient_checkpointing_enable()
        self.pad_id = policy.config.pad_token_id if policy.config.pad_token_id is not None else 0
        self.lora = training.lora.r > 0
        self.uses_reference = algorithms.uses_reference(training)
        self.reference = None
        if self.lora:
            policy = lora.wrap(policy, training.lora.r, training.lora.alpha, training.lora.dropout,
                               training.lora.target_modules)
            # the reference is the policy with its adapter disabled: no second copy
        elif self.uses_reference:
            # The frozen reference is a second copy: the KL anchor must not move with the policy. Without a KL
            # term (kl_coef 0) it is neither loaded nor run.
            self.reference = self._frozen_reference(torch_dtype, bf16, zero3)
        self.engine = distributed.make_engine(policy, training.lr, training.weight_decay, ds_config)
        self.torch_device = self.engine.device
        # Under ZeRO-3 the plain path: recomputing a chunk of the output projection in the backward pass finds its
        # (partitioned, possibly tied) weight released.
        self.chunked_head = not zero3
        if self.chunked_head:
            self.chunked_head = head_is_separable(self.engine.module, self._causal_lm(), policy.config.vocab_size)
        attention = getattr(policy.config, "_attn_implementation", None)
        self.shared_prefix = training.shared_prefix and self.chunked_head and attention in SUPPORTED_ATTENTION
        if self.reference is not None and not zero3:
            self.reference.to(self.torch_device)
        return rank

    def _frozen_reference(self, torch_dtype, bf16: bool, zero3: bool):
        """The whole model on this rank (ZeRO-2), or, under ZeRO-3, an engine without optimizer over this rank's
        partition, loaded partitioned: a whole 70B reference would take 141 GB on every rank."""
        if not zero3:
            reference = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch_dtype).eval()
            reference.requires_grad_(False)
            return reference
        ref_config = distributed.reference_config(self.training.micro_batch_size, bf16, self.autocast)
        reference, keep_alive = distributed.load_partitioned(self.model_path, torch_dtype, ref_config)
        self._zero3_configs.append(keep_alive)
        reference.requires_grad_(False)
        return distributed.make_inference_engine(reference, ref_config)

    def _causal_lm(self):
        """The HF model inside the engine (under LoRA, inside the adapter wrapper): whose output projection the
        chunked log-probs swap out (core.sequences), or None where the plain path must run."""
        if not self.chunked_head:
            return None
        module = self.engine.module
        return module.get_base_model() if self.lora else module

    def _autocast(self, enabled: bool = True):
        """bf16 compute around every forward outside the engine (the reference's, the chunked head's); the engine's
        own forward autocasts by its torch_autocast config. `enabled=False`: the master weights' dtype."""
        if self.autocast is None or not enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.torch_device.type, dtype=getattr(torch, self.compute_dtype))

    def _logprobs(self, model, packed, autocast: bool = True):
        with self._autocast(autocast):
            return response_logprobs(model, packed, self.temperature, self._causal_lm(),
                                     self.training.logprob_chunk_tokens)

    def _reference_logprobs(self, packed, autocast: bool = True):
        if self.reference is not None:
            reference = getattr(self.reference, "module", self.reference)
            with self._autocast(autocast):
                return response_logprobs(self.reference, packed, self.temperature,
                                         reference if self.chunked_head else None,
                                         self.training.logprob_chunk_tokens)
        with self.engine.module.disable_adapter():
            return self._logprobs(self.engine.module, packed, autocast)

    def _prepare(self, shard: RolloutBatch, chunk: list[int], need_old: bool, version: int):
        """One micro-batch, packed, plus what its loss reads besides the current log-probs (algorithms.LossInputs).

        An empty chunk (this rank has fewer samples than micro-batches, or none) still runs a forward and backward,
        because ZeRO's gradient reduction is collective: it reuses a real row (or a one-token stand-in) with a zero
        mask, so it adds nothing to the gradient."""
        weight = 1.0 if chunk else 0.0
        unit = self.algorithm.rows_per_unit
        rows = chunk or (list(range(unit)) if len(shard) >= unit else [])
        stand_in = [[self.pad_id]] * unit
        prompts = [shard.prompt_token_ids[j] for j in rows] or stand_in
        packer = pack_shared if self.shared_prefix and sharing_pays(prompts) else pack
        packed = packer(prompts, [shard.response_token_ids[j] for j in rows] or stand_in,
                        self.pad_id).to(self.torch_device)
        packed.response_mask_BR *= weight
        advantages = [shard.advantages[j] for j in rows] or [0.0] * unit
        stale = [bool(shard.policy_versions) and shard.policy_versions[j] < version
                 and bool(shard.behaviour_logprobs[j]) for j in rows]
        behaviour_BR = stale_B = None
        if self.algorithm.policy_gradient and any(stale):
            behaviour_BR = torch.zeros_like(packed.response_mask_BR)
            for i, j in enumerate(rows):
                if stale[i]:
                    values = shard.behaviour_logprobs[j][:behaviour_BR.shape[1]]
                    behaviour_BR[i, :len(values)] = torch.tensor(values, dtype=behaviour_BR.dtype)
            stale_B = torch.tensor(stale, dtype=torch.float32, device=self.torch_device)
        with torch.no_grad():
            ref_BR = self._reference_logprobs(packed) if self.uses_reference else None
            old_BR = self._logprobs(self.engine.module, packed) if need_old else None
        return algorithms.LossInputs(None, ref_BR, old_BR, behaviour_BR, stale_B,
                                     torch.tensor(advantages, device=self.torch_device), packed.response_mask_BR,
                                     {}), packed

    def train(self, shard: RolloutBatch, micro_batches: int, denominators: dict[str, float] | None = None,
              version: int = 0) -> dict[str, float]:
        """One optimizer step per epoch over this rank's shard, in exactly `micro_batches` micro-batches on every
        rank (the driver picks the count so that no rank has more). `denominators`: this rank's share of the whole
        batch's tokens, rows and pairs (core.data_parallel.rank_denominators); None means this shard is the whole
        batch, as for a single rank. `version`: the policy version of the weights before this step; rows sampled
        on an older one are stale (run.max_staleness) and get the importance correction."""
        started = time.perf_counter()
        cfg = self.training
        size = len(shard)
        chunks = microbatch.split(shard.lengths(), micro_batches, self.algorithm.rows_per_unit,
                                  shard.group_ids if self.shared_prefix and shard.group_ids else None)
        total_tokens = sum(len(r) for r in shard.response_token_ids)
        if denominators is None:
            denominators = rank_denominators(total_tokens, size, size // 2, self.world_size)
        # The old log-probs (the policy before this step) anchor the ratio over several epochs; with one epoch they
        # are the training forward's own values, detached, and cost nothing.
        need_old = self.algorithm.policy_gradient and cfg.epochs > 1
        prepared = [self._prepare(shard, chunk, need_old, version) for chunk in chunks]
        self.engine.train()
        sums: dict[str, float] = {}
        objective = 0.0
        for _ in range(cfg.epochs):
            for i, (inputs, packed) in enumerate(prepared):
                inputs.logprobs_BR = self._logprobs(self.engine, packed)
                inputs.denominators = denominators
                loss, metrics = self.algorithm.loss(inputs, cfg)
                self.engine.set_gradient_accumulation_boundary(i == len(prepared) - 1)
                self.engine.backward(loss)
                self.engine.step()
                weight = 1.0 if chunks[i] else 0.0
                for name, value in metrics.items():
                    sums[name] = sums.get(name, 0.0) + value * weight
                # The objective this rank optimized: its share of the whole batch's loss (micro-batches add up;
                # a stand-in micro-batch adds nothing).
                objective += float(loss.detach()) * weight / cfg.epochs
        used = sum(1 for c in chunks if c) * cfg.epochs
        metrics = {name: total / max(used, 1) for name, total in sums.items()}
        metrics["loss"] = objective
        metrics.update(samples=float(size), tokens=float(total_tokens), seconds=time.perf_counter() - started,
                       grad_norm=_float_or_none(self.engine.get_global_grad_norm()))
        return metrics

    def loss_on(self, shard: RolloutBatch) -> float:
        """The objective on a batch, without updating: DPO's or RFT's own loss; for grpo/rloo the REINFORCE form
        (core.losses.reinforce_surrogate). One train step on the batch must lower it.

        Computed in the master weights' dtype, without the bf16 autocast: one step of lr 1e-5 moves most weights by
        less than bf16's resolution, so a bf16 measurement of the change would be mostly rounding."""
        packed = pack(shard.prompt_token_ids, shard.response_token_ids, self.pad_id).to(self.torch_device)
        mask_BR = packed.response_mask_BR
        # Under ZeRO-3 the reference is an engine that autocasts by its own config: the policy then keeps the
        # autocast too, so that both compute alike (their KL at the start is exactly 0).
        autocast = self.zero3
        with torch.no_grad():
            ref_BR = self._reference_logprobs(packed, autocast) if self.uses_reference else None
            logprobs_BR = self._logprobs(self.engine.module, packed, autocast)
            advantages_B = torch.tensor(shard.advantages, device=self.torch_device)
            if not self.algorithm.policy_gradient:
                denominators = {"tokens": float(mask_BR.sum()), "rows": len(shard), "pairs": len(shard) // 2}
                inputs = algorithms.LossInputs(logprobs_BR, ref_BR, None, None, None, advantages_B, mask_BR,
                                               denominators)
                return float(self.algorithm.loss(inputs, self.training)[0])
            return float(reinforce_surrogate(logprobs_BR, advantages_B, mask_BR, self.training.loss_aggregation,
                                             self.training.kl_coef, ref_BR, self.training.loss_norm_tokens))

    @property
    def zero3(self) -> bool:
        return self.training.zero_stage == 3

    def full_tensors(self):
        """(HF name, whole tensor) one at a time, each valid until the next is asked for; see distributed.full_tensors.
        Every rank must run it to its end under ZeRO-3."""
        return distributed.full_tensors(self.engine.module, self.zero3, self.lora)

    def rank0_tensors(self, copy: bool) -> dict:
        """Rank 0: every tensor by HF name in CPU memory; {} on other ranks. A ZeRO-3 tensor is released at the next
        step, so it is always copied (one at a time); without `copy`, ZeRO-2's on a CPU device are the live
        parameters themselves (views into DeepSpeed's flat buffer: use them at once, never send them through Ray)."""
        if self.rank != 0 and not self.zero3:
            return {}
        tensors = {}
        for name, tensor in self.full_tensors():
            if self.rank == 0:
                tensors[name] = tensor.to("cpu", copy=copy or self.zero3)
        return tensors

    def describe(self) -> dict:
        """The model's parameter count (whole, also under ZeRO-3) and this rank's device: what MFU needs."""
        parameters = sum(getattr(p, "ds_numel", p.numel()) for p in self.engine.module.parameters())
        device = torch.cuda.get_device_name(self.torch_device) if self.device == "cuda" else "cpu"
        return {"parameters": int(parameters), "device": device, "weights_dtype": self.dtype,
                "compute_dtype": self.compute_dtype, "reference": self.uses_reference,
                "chunked_logprobs": self.chunked_head, "shared_prefix": self.shared_prefix}

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.engine.module.parameters() if p.requires_grad)

    def apply_optimizer_settings(self, lr: float, weight_decay: float, max_grad_norm: float) -> dict[str, list[float]]:
        """Put the recipe's optimizer settings back after load_state, which restores the checkpoint's: the torch
        optimizer's param groups carry lr and weight_decay (a ZeRO optimizer exposes its wrapped optimizer's groups
        as `param_groups`), and ZeRO-1/2 and the bf16 optimizer also restore their clipping value `clip_grad`.
        Without ZeRO the engine clips with its config's `gradient_clipping`, so both are set.
        Returns {name: [restored, now]} for lr, weight_decay and max_grad_norm. Every rank calls it."""
        optimizer = self.engine.optimizer
        groups = optimizer.param_groups
        restored = {"lr": groups[0]["lr"], "weight_decay": groups[0]["weight_decay"],
                    "max_grad_norm": getattr(optimizer, "clip_grad", self.engine.gradient_clipping())}
        for group in groups:
            group["lr"], group["weight_decay"] = lr, weight_decay
        if hasattr(optimizer, "clip_grad"):
            optimizer.clip_grad = max_grad_norm
        self.engine._config.gradient_clipping = max_grad_norm  # no public setter; read by engine.gradient_clipping()
        self.training = dataclasses.replace(self.training, lr=lr, weight_decay=weight_decay,
                                            max_grad_norm=max_grad_norm)
        now = {"lr": groups[0]["lr"], "weight_decay": groups[0]["weight_decay"],
               "max_grad_norm": getattr(optimizer, "clip_grad", self.engine.gradient_clipping())}
        return {name: [float(restored[name]), float(now[name])] for name in restored}


def _float_or_none(value) -> float | None:
    """DeepSpeed reports the global gradient norm (before clipping) as a tensor, a float or None."""
    return None if value is None else float(value)
