"""The learner (sender) side of weight sync: what learner rank 0 sends, in the format of wire.py. On CUDA it joins an
NCCL group that spans every generator worker and broadcasts the tensors in metadata order. No Ray: the actor passes
in its node id."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch

from tao_ray.engine.distributed import tensor_metadata
from tao_ray.engine.learner import PolicyLearner
from tao_ray.sync.wire import SharedWeightsFile, pack


def broadcast_group(master_address: str, master_port: int, world_size: int, device: torch.device):
    """Sender init step (CUDA): learner rank 0 joins as rank 0 of a group that spans the generator workers."""
    # vLLM is imported here, not at the top: a plain process (a bare GPU box, CPU runs) has no use for it.
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    group = StatelessProcessGroup.create(host=master_address, port=master_port, rank=0, world_size=world_size)
    return PyNcclCommunicator(group, device=device)


def broadcast(communicator, tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Sender update step (CUDA): (name, tensor) pairs go out one by one in metadata order, which the receivers
    follow. `tensors` may be a stream whose tensors are released once the next is taken (a ZeRO-3 learner's gathered
    parameters): each is broadcast before the next is asked for, and its memory is freed on the same stream, after
    the broadcast."""
    for _, tensor in tensors:
        communicator.broadcast(tensor.contiguous(), src=0, stream=torch.cuda.current_stream())
    torch.cuda.synchronize()


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
        """CUDA sync, init step (GPU only)."""
        self.sync_channel = broadcast_group(master_address, master_port, world_size, self.learner.torch_device)

    def broadcast_metadata(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """(name, dtype, shape) of every tensor sent, in sending order, read without gathering any weight."""
        return tensor_metadata(self.learner.engine.module, self.learner.lora)

    def broadcast_weights(self) -> None:
        """CUDA sync, update step (GPU only): rank 0 broadcasts each tensor as it is read (under ZeRO-3, as soon as
        it is gathered, then released); the generators receive in metadata order, which is the same walk."""
        if self.learner.rank == 0:
            broadcast(self.sync_channel, self.learner.full_tensors())
        elif self.learner.zero3:
            for _ in self.learner.full_tensors():  # take part in every gather
                pass

    def shared_file(self) -> str:
        """CPU sync on one node: the path of this rank's shared-memory weights file, created once; generators on the
        same node open it instead of receiving the weights through the object store."""
        if self._shared_weights is None:
            self._shared_weights = SharedWeightsFile()
        return self._shared_weights.path

    def pack_timing(self) -> dict[str, float]:
        """The last pack_weights on this rank: its start (wall clock, seconds since the epoch) and duration."""
        return dict(self._last_pack)
