"""DeepSpeed plumbing shared by the learners: join the process group, load a model (partitioned under ZeRO-3),
wrap it in an engine, read its whole weights back one module at a time.

The same code serves CPU (gloo, DeepSpeed's CPU accelerator) and GPU (nccl); only `device` differs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tao_ray.engine import lora as lora_lib
from tao_ray.engine.build_locks import clear_stale_shm_op_lock

if TYPE_CHECKING:
    import torch


def rendezvous_address() -> tuple[str, int]:
    """A free port on this node: rank 0 names the torch.distributed rendezvous, so ranks can span nodes."""
    import socket

    import ray

    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    return ray.util.get_node_ip_address(), port


def join_process_group(rank: int, world_size: int, master_address: str, master_port: int, device: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": "0",
                       "MASTER_ADDR": master_address, "MASTER_PORT": str(master_port)})
    if device == "cpu":
        os.environ["DS_ACCELERATOR"] = "cpu"  # must precede the first deepspeed import

        clear_stale_shm_op_lock()
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo" if device == "cpu" else "nccl", verbose=False)


def engine_config(micro_batch_size: int, max_grad_norm: float, zero_stage: int, bf16: bool,
                  autocast: str | None = None) -> dict:
    """The DeepSpeed config of the policy engine. Under ZeRO-3 the same dict must also be given to
    `load_partitioned` before the model is loaded, so that loading and training partition alike.
    `autocast` (e.g. "bfloat16"): the forward runs under torch.autocast in that dtype while the master weights,
    gradients and optimizer state keep theirs (DeepSpeed's torch_autocast; linear layers' gradients are also
    reduced across ranks in it)."""
    return {
        "torch_autocast": {"enabled": autocast is not None, "dtype": autocast or "bfloat16"},
        "train_micro_batch_size_per_gpu": micro_batch_size,
        # Accumulation is driven explicitly (set_gradient_accumulation_boundary), because the number of samples
        # varies per step; DeepSpeed's own counter assumes a fixed count.
        "gradient_accumulation_steps": 1,
        "gradient_clipping": max_grad_norm,
        "zero_optimization": {"stage": zero_stage},
        "bf16": {"enabled": bf16},
        # DeepSpeed's fused optimizers need a GPU; torch's AdamW runs everywhere.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
    }


def reference_config(micro_batch_size: int, bf16: bool, autocast: str | None = None) -> dict:
    """A ZeRO-3 config for the frozen reference: no optimizer, parameters partitioned like the policy's, so each
    rank holds 1/world_size of it instead of a whole copy. `autocast` as in `engine_config`: the reference must
    compute like the policy, or their KL measures rounding."""
    return {
        "torch_autocast": {"enabled": autocast is not None, "dtype": autocast or "bfloat16"},
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "zero_optimization": {"stage": 3},
        "bf16": {"enabled": bf16},
        "steps_per_print": 2**31 - 1,
    }


def load_partitioned(model_path: str, torch_dtype, config: dict):
    """Load an HF causal LM already partitioned across the ranks (ZeRO-3), never whole on one rank.

    While an `HfDeepSpeedConfig` of a ZeRO-3 config is alive, `from_pretrained` builds the model under
    `deepspeed.zero.Init` and fills each rank's partition from the checkpoint. transformers holds only a weak
    reference to it, so the caller must keep the returned config alive as long as the model lives."""
    from transformers import AutoModelForCausalLM
    from transformers.integrations import HfDeepSpeedConfig

    keep_alive = HfDeepSpeedConfig(config)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
    return model, keep_alive


def make_engine(model, lr: float, weight_decay: float, config: dict):
    """A DeepSpeed engine over the model's trainable parameters, with a torch AdamW client optimizer."""
    import deepspeed
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine


def make_inference_engine(model, config: dict):
    """A DeepSpeed engine without optimizer (the ZeRO-3 reference): it only gathers parameters for forwards."""
    import deepspeed

    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine


def local_numel(model) -> tuple[int, int]:
    """(elements this rank holds, elements of the whole model). A ZeRO-3 parameter keeps its partition in
    `ds_tensor` (padded to a multiple of the world size) and its full size in `ds_numel`."""
    local = full = 0
    for p in model.parameters():
        local += p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel()
        full += getattr(p, "ds_numel", p.numel())
    return local, full


def gathered(params: list, zero3: bool, modifier_rank: int | None = None):
    """A context in which `params` are whole on this rank. Under ZeRO-3 opening it is collective (every rank opens
    the same gathers in the same order) and, with `modifier_rank`, that rank's changes reach every partition on
    exit. Under ZeRO-2 parameters are always whole: nothing to do."""
    import contextlib

    if not zero3:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=modifier_rank)


def full_tensors(model, zero3: bool, lora: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, whole tensor) of every parameter and persistent buffer, in `state_dict` order, each parameter once:
    a tied lm_head is the embedding again and is left out (vLLM and `save_pretrained` tie it themselves).

    Under ZeRO-3 one module's own parameters are gathered at a time and released when the next tensor is asked
    for, so peak extra memory is one module's parameters (a 70B model whole would be 141 GB on every rank). A
    yielded tensor is valid only until then: copy it to keep it. Gathers are collective, so every rank must run
    the iteration to its end. Under ZeRO-2 nothing is gathered or copied: the tensors are the live parameters.

    lora: `model` is a peft model; its names are the base model's, and each LoRA layer comes out as its base
    layer's tensors with the adapter folded in. Such a layer is gathered whole (base weight and adapter, one
    module), because the merge needs both."""
    for prefix, module, adapted, params, buffers in _tensor_groups(model, lora):
        if adapted:
            with gathered(list(module.parameters()), zero3):
                for name, tensor in lora_lib.merged_layer(module):
                    yield lora_lib.hf_name(f"{prefix}.{name}"), tensor
            continue
        with gathered([p for _, p in params], zero3):
            for name, tensor in params + buffers:
                full_name = f"{prefix}.{name}" if prefix else name
                yield (lora_lib.hf_name(full_name) if lora else full_name), tensor.detach()


def tensor_metadata(model, lora: bool = False) -> list[tuple[str, str, tuple[int, ...]]]:
    """(HF name, dtype, shape) of every tensor `full_tensors` yields, in the same order, read from each tensor's
    whole shape (ZeRO-3's `ds_shape`) without gathering anything: what a receiver checks and allocates. A 70B model
    gathered whole only to read its shapes would take 141 GB on every rank."""
    def describe(name: str, tensor) -> tuple[str, str, tuple[int, ...]]:
        return name, str(tensor.dtype).removeprefix("torch."), tuple(getattr(tensor, "ds_shape", tensor.shape))

    found = []
    for prefix, module, adapted, params, buffers in _tensor_groups(model, lora):
        if adapted:  # merged into its base layer's tensors, named as the base model names them
            base = module.base_layer
            tensors = list(base.named_parameters()) + [(name, b) for name, b in base.named_buffers()
                                                       if name not in base._non_persistent_buffers_set]
            found += [describe(lora_lib.hf_name(f"{prefix}.base_layer.{name}"), t) for name, t in tensors]
            continue
        for name, tensor in params + buffers:
            full_name = f"{prefix}.{name}" if prefix else name
            found.append(describe(lora_lib.hf_name(full_name) if lora else full_name, tensor))
    return found


def _tensor_groups(model, lora: bool):
    """(prefix, module, adapted, its own parameters, its persistent buffers) per module that holds tensors, in
    `state_dict` order, each tensor once (a tied lm_head is the embedding again). An adapted LoRA layer is one group:
    its submodules (base layer, adapter) are not visited again."""
    seen: set[int] = set()
    done_under = None  # prefix of the LoRA layer just visited: its submodules are done
    for prefix, module in model.named_modules():
        if done_under is not None and prefix.startswith(done_under):
            continue
        if lora and lora_lib.is_adapted(module):
            done_under = prefix + "."
            seen.update(id(p) for p in module.parameters())
            yield prefix, module, True, [], []
            continue
        params = [(name, p) for name, p in module.named_parameters(recurse=False) if id(p) not in seen]
        buffers = [(name, b) for name, b in module.named_buffers(recurse=False)
                   if name not in module._non_persistent_buffers_set and id(b) not in seen]
        if not params and not buffers:
            continue
        seen.update(id(t) for _, t in params + buffers)
        yield prefix, module, False, params, buffers
