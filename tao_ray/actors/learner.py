"""LearnerActor: one DeepSpeed data-parallel rank that updates the policy from a RolloutBatch.

In: this rank's shard of the batch. Out: loss metrics; on rank 0 also the new weights (CPU: a safetensors payload;
CUDA: an NCCL broadcast) and checkpoints. Notation: B = sequences in a micro-batch, R = longest response.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

from tao_ray import algorithms
from tao_ray.actors import distributed, logs
from tao_ray.actors.background_writes import BackgroundWriter
from tao_ray.batch import RolloutBatch
from tao_ray.config import TrainingSection


class LearnerActor:
    def __init__(self, model_path: str, dtype: str, training: TrainingSection, device: str, rank: int,
                 world_size: int, num_threads: int, temperature: float = 1.0):
        """`dtype`: the master weights' (model.dtype); `temperature`: the sampling temperature, which the learner
        applies to its logits so that its log-probs are those of the distribution the samples came from."""
        logs.redirect_output()  # before the engine prints anything
        self.model_path, self.dtype, self.training, self.device = model_path, dtype, training, device
        self.rank, self.world_size, self.num_threads = rank, world_size, num_threads
        self.temperature = temperature if temperature > 0 else 1.0
        self.algorithm = algorithms.get(training.algorithm)
        self.writer = BackgroundWriter()  # checkpoint files written while training goes on

    def ping(self) -> int:
        """A liveness probe: answers at once unless the rank is dead or stuck."""
        return self.rank

    def rendezvous_address(self) -> tuple[str, int]:
        return distributed.rendezvous_address()

    def setup(self, master_address: str, master_port: int) -> int:
        """Join the process group and build the DeepSpeed engine; every rank must call this concurrently.

        Under ZeRO-2 every rank loads the whole policy and a whole reference copy. Under ZeRO-3 neither is ever
        whole on one rank: both are loaded straight into their partitions, and the reference is a DeepSpeed
        engine without optimizer (a 70B model in bf16 is 141 GB, more than any one GPU)."""
        rank, device, dtype, training = self.rank, self.device, self.dtype, self.training
        distributed.join_process_group(rank, self.world_size, master_address, master_port, device)
        import torch
        from transformers import AutoModelForCausalLM

        from tao_ray.core import precision
        from tao_ray.core.sequences import head_is_separable
        from tao_ray.core.shared_prefix import SUPPORTED_ATTENTION

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
        self._zero3_configs = []  # transformers refers to these weakly; they must outlive the models
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
            from tao_ray import lora

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
        self.sync_channel = None
        return rank

    def _frozen_reference(self, torch_dtype, bf16: bool, zero3: bool):
        """The whole model on this rank (ZeRO-2), or, under ZeRO-3, an engine without optimizer over this rank's
        partition, loaded partitioned: a whole 70B reference would take 141 GB on every rank."""
        if not zero3:
            from transformers import AutoModelForCausalLM

            reference = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch_dtype).eval()
            reference.requires_grad_(False)
            return reference
        ref_config = distributed.reference_config(self.training.micro_batch_size, bf16, self.autocast)
        reference, keep_alive = distributed.load_partitioned(self.model_path, torch_dtype, ref_config)
        self._zero3_configs.append(keep_alive)
        reference.requires_grad_(False)
        return distributed.make_inference_engine(reference, ref_config)

    def parameter_numels(self) -> dict[str, tuple[int, int]]:
        """(elements on this rank, elements in the whole model) of the policy as loaded, the policy now and the
        reference: under ZeRO-3 each rank holds about 1/world_size of every one."""
        numels = {"policy_loaded": self.loaded_numel, "policy": distributed.local_numel(self.engine.module)}
        if self.reference is not None:
            module = getattr(self.reference, "module", self.reference)  # the ZeRO-3 engine or the plain model
            numels["reference"] = distributed.local_numel(module)
        return numels

    def streaming_peak(self) -> int:
        """The most policy elements whole on this rank at any point while its weights are read out (every rank
        calls it): under ZeRO-3 one module's, plus the small parameters DeepSpeed keeps whole, never the model."""
        params = list(self.engine.module.parameters())
        peak = 0
        for _ in self._full_tensors():
            # A ZeRO-3 parameter not gathered holds an empty tensor; ZeRO-2's are all whole.
            peak = max(peak, sum(p.numel() for p in params))
        return peak

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
        import torch

        if self.autocast is None or not enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.torch_device.type, dtype=getattr(torch, self.compute_dtype))

    def _logprobs(self, model, packed, autocast: bool = True):
        from tao_ray.core.sequences import response_logprobs

        with self._autocast(autocast):
            return response_logprobs(model, packed, self.temperature, self._causal_lm(),
                                     self.training.logprob_chunk_tokens)

    def _reference_logprobs(self, packed, autocast: bool = True):
        if self.reference is not None:
            from tao_ray.core.sequences import response_logprobs

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
        import torch

        from tao_ray.core.sequences import pack
        from tao_ray.core.shared_prefix import pack_shared, sharing_pays

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
        from tao_ray.core import microbatch

        started = time.perf_counter()
        cfg = self.training
        size = len(shard)
        chunks = microbatch.split(shard.lengths(), micro_batches, self.algorithm.rows_per_unit,
                                  shard.group_ids if self.shared_prefix and shard.group_ids else None)
        total_tokens = sum(len(r) for r in shard.response_token_ids)
        if denominators is None:
            from tao_ray.core.data_parallel import rank_denominators

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
        -mean_tokens(A * logprob) + kl_coef * KL, whose gradient equals the clipped loss's at ratio 1 (the clipped
        loss's value is constant there). One train step on the batch must lower it.

        Computed in the master weights' dtype, without the bf16 autocast: one step of lr 1e-5 moves most weights by
        less than bf16's resolution, so a bf16 measurement of the change would be mostly rounding."""
        import torch

        from tao_ray.core.losses import aggregate, kl_k3
        from tao_ray.core.sequences import pack

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
            per_token_BR = -advantages_B.unsqueeze(1) * logprobs_BR
            if ref_BR is not None:
                per_token_BR = per_token_BR + self.training.kl_coef * kl_k3(logprobs_BR, ref_BR)
            return float(aggregate(per_token_BR, mask_BR, self.training.loss_aggregation))

    # ---- weights out: sync and checkpoints ----
    # ZeRO-2 keeps full parameters on every rank, so rank 0 alone can read them. ZeRO-3 partitions them, and
    # gathering is collective: every method below that reads weights is therefore called on every rank (the driver
    # and weight_sync do so), and ranks other than 0 take part in the gathers and keep nothing. Weights are read
    # one module at a time (_full_tensors), never the whole model at once: a 70B model whole is 141 GB.

    @property
    def zero3(self) -> bool:
        return self.training.zero_stage == 3

    def _full_tensors(self):
        """(HF name, whole tensor) one at a time, each valid until the next is asked for; see distributed.full_tensors.
        Every rank must run it to its end under ZeRO-3."""
        return distributed.full_tensors(self.engine.module, self.zero3, self.lora)

    def _rank0_tensors(self, copy: bool) -> dict:
        """Rank 0: every tensor by HF name in CPU memory; {} on other ranks. A ZeRO-3 tensor is released at the next
        step, so it is always copied (one at a time); without `copy`, ZeRO-2's on a CPU device are the live
        parameters themselves (views into DeepSpeed's flat buffer: use them at once, never send them through Ray)."""
        if self.rank != 0 and not self.zero3:
            return {}
        tensors = {}
        for name, tensor in self._full_tensors():
            if self.rank == 0:
                tensors[name] = tensor.to("cpu", copy=copy or self.zero3)
        return tensors

    def state_dict(self) -> dict:
        """Rank 0: a CPU copy of the parameters by HF name, each storage once (a tied lm_head is left out, as vLLM
        ties it itself); {} on other ranks."""
        return self._rank0_tensors(copy=True)

    def weights_digest(self) -> str:
        """sha256 of every parameter's bytes: equal digests mean bit-identical models. Every rank returns it."""
        import hashlib

        digest = hashlib.sha256()
        for name, tensor in self._full_tensors():
            digest.update(name.encode())
            digest.update(tensor.float().cpu().numpy().tobytes())
        return digest.hexdigest()

    def describe(self) -> dict:
        """The model's parameter count (whole, also under ZeRO-3) and this rank's device: what MFU needs."""
        import torch

        parameters = sum(getattr(p, "ds_numel", p.numel()) for p in self.engine.module.parameters())
        device = torch.cuda.get_device_name(self.torch_device) if self.device == "cuda" else "cpu"
        return {"parameters": int(parameters), "device": device, "weights_dtype": self.dtype,
                "compute_dtype": self.compute_dtype, "reference": self.uses_reference,
                "chunked_logprobs": self.chunked_head, "shared_prefix": self.shared_prefix}

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.engine.module.parameters() if p.requires_grad)

    def parameter_sum(self, name: str) -> float:
        from tao_ray.weight_sync import checksum

        total = None
        for tensor_name, tensor in self._full_tensors():
            if tensor_name == name:
                total = checksum(tensor)
        if total is None:
            raise KeyError(name)
        return total

    def scale_parameter(self, name: str, factor: float) -> None:
        """Multiply one parameter (plain HF name, no LoRA) in place: a known, visible weight change for sync checks.
        Under ZeRO-3 every rank calls it; rank 0's change reaches every partition."""
        import torch

        param = dict(self.engine.module.named_parameters())[name]
        with torch.no_grad(), distributed.gathered([param], self.zero3, modifier_rank=0):
            if self.rank == 0 or not self.zero3:
                param.data.mul_(factor)

    def weight_names(self) -> list[str]:
        return [name for name, _ in self._full_tensors()]

    def pack_weights(self, dtype: str | None = None, shared: bool = False) -> bytes | str:
        """CPU sync, update step: the whole model in `dtype` (the engine's; None: the learner's) as one safetensors
        payload, or with `shared` written into this rank's shared-memory file (see weights_channel), whose path is
        returned. Rank 0 only; b"" elsewhere."""
        from tao_ray import weight_sync

        started, clock = time.time(), time.perf_counter()
        state = self._rank0_tensors(copy=False)  # packed at once: ZeRO-2 needs no copy first
        if self.rank != 0:
            return b""
        if shared:
            self.weights_channel()
            self._shared_weights.write(state, dtype)
            out = self._shared_weights.path
        else:
            out = weight_sync.pack(state, dtype)
        self._last_pack = {"started": started, "seconds": time.perf_counter() - clock}
        return out

    def pack_adapter(self) -> dict[str, bytes]:
        """Adapter sync, update step: the LoRA adapter's files (a few MB instead of the whole model)."""
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="tao-ray-adapter-") as directory:
            self.engine.module.save_pretrained(directory)
            return {p.name: p.read_bytes() for p in Path(directory).iterdir() if p.is_file()}

    def init_broadcast_group(self, master_address: str, master_port: int, world_size: int) -> None:
        """CUDA sync, init step (GPU only)."""
        from tao_ray import weight_sync

        self.sync_channel = weight_sync.sender_broadcast_group(master_address, master_port, world_size,
                                                               self.torch_device)

    def broadcast_metadata(self) -> list[tuple[str, str, tuple[int, ...]]]:
        from tao_ray import weight_sync

        return [(m.name, m.dtype, m.shape) for m in weight_sync.metadata(self._full_tensors())]

    def broadcast_weights(self) -> None:
        """CUDA sync, update step (GPU only): rank 0 broadcasts each tensor as it is read (under ZeRO-3, as soon as
        it is gathered, then released); the generators receive in metadata order, which is the same walk."""
        from tao_ray import weight_sync

        if self.rank == 0:
            weight_sync.broadcast(self.sync_channel, self._full_tensors())
        elif self.zero3:
            for _ in self._full_tensors():  # take part in every gather
                pass

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
        state = self._rank0_tensors(copy=background)
        if self.rank == 0:
            model = self.engine.module.get_base_model() if self.lora else self.engine.module
            if background:
                self.writer.submit(lambda: model.save_pretrained(directory, state_dict=state,
                                                                    safe_serialization=True))
            else:
                model.save_pretrained(directory, state_dict=state, safe_serialization=True)
        if self.lora and (self.rank == 0 or self.zero3):
            from peft import get_peft_model_state_dict

            # peft saves the adapter (and, when an embedding is a LoRA target, that embedding) from the live
            # parameters: under ZeRO-3 exactly those are gathered, at once (a few MB, plus at most the embedding).
            module = self.engine.module
            saved = get_peft_model_state_dict(module, module.state_dict(keep_vars=True)) if self.zero3 else {}
            with distributed.gathered(list(saved.values()), self.zero3):
                if self.rank == 0:
                    module.save_pretrained(f"{directory}/adapter")

    def save_state(self, directory: str, background: bool = False) -> None:
        """DeepSpeed state for resume: weights, this rank's optimizer partition and its torch RNG state (dropout,
        if the model has any). Every rank calls it. `background`: copied now, written in the background."""
        import torch

        from tao_ray.actors.background_writes import background_checkpoint_engine

        engine = self.engine.checkpoint_engine
        if background:
            self.engine.checkpoint_engine = background_checkpoint_engine(self.writer, self.engine._config)
        try:
            self.engine.save_checkpoint(directory, tag="state", save_latest=False,
                                        client_state={"torch_rng_state": torch.get_rng_state()})
        finally:
            self.engine.checkpoint_engine = engine

    def load_state(self, directory: str) -> None:
        """Restore weights and optimizer state saved by save_state. Every rank calls it."""
        import torch

        path, client_state = self.engine.load_checkpoint(directory, tag="state", load_optimizer_states=True,
                                                         load_lr_scheduler_states=True)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed state under {directory}")
        torch.set_rng_state(client_state["torch_rng_state"])


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

    def weights_channel(self) -> tuple[str, str]:
        """CPU sync on one node: (this actor's Ray node id, path of its shared-memory weights file), created once;
        generators on the same node open the path instead of receiving the weights through the object store."""
        import ray

        from tao_ray import weight_sync

        if getattr(self, "_shared_weights", None) is None:
            self._shared_weights = weight_sync.SharedWeightsFile()
        return ray.get_runtime_context().get_node_id(), self._shared_weights.path

    def pack_timing(self) -> dict[str, float]:
        """The last pack_weights on this rank: its start (wall clock, seconds since the epoch) and duration."""
        return dict(getattr(self, "_last_pack", {}))


def _float_or_none(value) -> float | None:
    """DeepSpeed reports the global gradient norm (before clipping) as a tensor, a float or None."""
    return None if value is None else float(value)
