"""DeepSpeed plumbing shared by the learners: join the process group, wrap a model in an engine.

The same code serves CPU (gloo, DeepSpeed's CPU accelerator) and GPU (nccl); only `device` differs.
"""

from __future__ import annotations

import os


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
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo" if device == "cpu" else "nccl", verbose=False)


def make_engine(model, lr: float, weight_decay: float, micro_batch_size: int, max_grad_norm: float, zero_stage: int,
                bf16: bool):
    """A DeepSpeed engine over the model's trainable parameters, with a torch AdamW client optimizer."""
    import deepspeed
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    config = {
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
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine
