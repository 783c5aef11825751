"""The learner (sender) side of weight sync: what learner rank 0 sends, in the format of wire.py. On CUDA rank 0 joins
the NCCL group of every generator worker as the sender of vLLM's weight-transfer engine (packed, multi-buffered
broadcasts: vllm.distributed.weight_transfer) and streams the tensors in metadata order, one module at a time under
ZeRO-3. No Ray, and vLLM only where a GPU sync runs."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from tao_ray.engine.distributed import tensor_metadata
from tao_ray.engine.learner import PolicyLearner
from tao_ray.sync.wire import SharedWeightsFile, pack


class WeightSender:
    """A PolicyLearner's side of every sync path: the weight names (metadata), the whole model packed in the engine's
    dtype or written into a shared-memory file (CPU), the adapter alone (LoRA), or a broadcast over NCCL (CUDA).
    Under ZeRO-3 reading weights is collective: every rank calls the packing and broadcasting methods."""

    def __init__(self, learner: PolicyLearner):
        self.learner = learner
        self.sync_channel = None  # the NCCL communicator (CUDA), once init_broadcast_group ran
        self._shared_weights: SharedWeightsFile | None = None  # created on the first same-node sync
        self._last_pack: dict[str, float] = {}

    def weight_names(self) -> list[str]:
        return [name for name, _, _ in self.broadcast_metadata()]

    def pack_weights(self, dtype: str | None = None, shared: bool = False) -> bytes | str:
        """CPU sync, update step: the whole model in `dtype` (the engine's; None: the learner's) as one safetensors
        payload, or with `shared` written into this rank's shared-memory file (see shared_file), whose path is
        returned. Rank 0 only; b"" elsewhere."""
        started, clock = time.time(), time.perf_counter()
        state = self.learner.rank0_tensors(copy=False)  # packed at once: ZeRO-2 needs no copy first
        if self.learner.rank != 0:
            return b""
        if shared:
            self.shared_file()
            self._shared_weights.write(state, dtype)
            out = self._shared_weights.path
        else:
            out = pack(state, dtype)
        self._last_pack = {"started": started, "seconds": time.perf_counter() - clock}
        return out

    def pack_adapter(self) -> dict[str, bytes]:
        """Adapter sync, update step: the LoRA adapter's files (a few MB instead of the whole model)."""
        with tempfile.TemporaryDirectory(prefix="tao-ray-adapter-") as directory:
            self.learner.engine.module.save_pretrained(directory)
            return {p.name: p.read_bytes() for p in Path(directory).iterdir() if p.is_file()}

    def init_broadcast_group(self, master_address: str, master_port: int, world_size: int) -> None:
        """CUDA sync, init step: rank 0 joins as rank 0 of the group of every generator worker (an earlier group's
        communicator is destroyed first); other ranks have nothing to do."""
        self.close_broadcast_group()
        if self.learner.rank != 0:
            return
        from vllm.distributed.weight_transfer import nccl_common  # a GPU sync's import: plain processes skip it

        torch.cuda.set_device(self.learner.torch_device)
        self.sync_channel = nccl_common.trainer_init({"master_address": master_address, "master_port": master_port,
                                                      "world_size": world_size}, rank=0)

    def broadcast_metadata(self, dtype: str | None = None) -> list[tuple[str, str, tuple[int, ...]]]:
        """(name, dtype, shape) of every tensor sent, in sending order, read without gathering any weight. `dtype`:
        floating-point tensors go out in it (the engines'), so a receiver never holds a float32 copy."""
        return [(name, dtype if dtype is not None and _floating(kind) else kind, shape)
                for name, kind, shape in tensor_metadata(self.learner.engine.module, self.learner.lora)]

    def broadcast_weights(self, dtype: str | None, buffer_bytes: int, buffers: int) -> None:
        """CUDA sync, update step: rank 0 packs the tensors into `buffers` buffers of about `buffer_bytes` and
        broadcasts them (vLLM's packed producer) while the engines receive; every rank walks the weights, so ZeRO-3's
        gathers stay collective. Each tensor is copied on the way (into `dtype`): the packer holds its tensors
        until a buffer is full, and ZeRO-3 releases a module's gathered weights when the next is asked for."""
        if self.learner.rank != 0:
            if self.learner.zero3:
                for _ in self.learner.full_tensors():  # take part in every gather
                    pass
            return
        from vllm.distributed.weight_transfer.packed_tensor import packed_nccl_broadcast_producer

        target = getattr(torch, dtype) if dtype is not None else None
        packed_nccl_broadcast_producer(
            iterator=self.learner.full_tensors(), group=self.sync_channel, src=0,
            post_iter_func=lambda item: (item[1].to(target, copy=True)
                                         if target is not None and item[1].is_floating_point() else item[1].clone()),
            buffer_size_bytes=buffer_bytes, num_buffers=buffers)
        torch.cuda.synchronize()

    def close_broadcast_group(self) -> None:
        """Destroy rank 0's communicator (on a refit, before a new group, and when the run ends)."""
        if self.sync_channel is not None:
            channel, self.sync_channel = self.sync_channel, None
            channel.destroy()

    def shared_file(self) -> str:
        """CPU sync on one node: the path of this rank's shared-memory weights file, created once; generators on the
        same node open it instead of receiving the weights through the object store."""
        if self._shared_weights is None:
            self._shared_weights = SharedWeightsFile()
        return self._shared_weights.path

    def pack_timing(self) -> dict[str, float]:
        """The last pack_weights on this rank: its start (wall clock, seconds since the epoch) and duration."""
        return dict(self._last_pack)


def _floating(dtype: str) -> bool:
    return dtype in ("float32", "float16", "bfloat16", "float64")
