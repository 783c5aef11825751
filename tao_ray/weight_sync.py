"""Weight sync from learner rank 0 to every generator engine, as one explicit protocol:

    metadata -> init -> update -> finish

- metadata: the (name, dtype, shape) of every tensor, so a receiver can check the sender's model matches its own.
- init:     set up the channel once (CPU: nothing; CUDA: an NCCL group of learner rank 0 + all generator workers).
- update:   move the tensors (CPU: one safetensors payload through Ray's object store, reloaded in place;
            CUDA: one NCCL broadcast per tensor as the learner reads it, straight into the engine's reload).
- finish:   drop state derived from the old weights (the engines' prefix caches).

Both paths end in vLLM's in-place `reload_weights`, which also handles CPU weight prepacking (plain
`model.load_weights` does not). `WorkerExtension` runs inside vLLM's worker processes, so this module imports
neither Ray nor DeepSpeed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

WORKER_EXTENSION = "tao_ray.weight_sync.WorkerExtension"


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: str
    shape: tuple[int, ...]


def metadata(tensors: Iterable[tuple[str, torch.Tensor]]) -> list[TensorMeta]:
    """From (name, tensor) pairs in sending order, e.g. `state_dict.items()`."""
    return [TensorMeta(name, str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in tensors]


# ---- CPU path: learner packs, generator writes to shared memory, worker reloads in place -------------------------

def pack(state_dict: dict[str, torch.Tensor]) -> bytes:
    """Sender update step (CPU): one contiguous safetensors buffer, which Ray ships without per-tensor pickling."""
    from safetensors.torch import save

    return save({name: t.detach().contiguous().cpu() for name, t in state_dict.items()})


def stage_payload(payload: bytes) -> str:
    """Receiver side (CPU): put the payload in a file the engine's worker process can open; /dev/shm keeps it in RAM."""
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="tao-ray-weights-", suffix=".safetensors", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    return path


# ---- CUDA path: NCCL broadcast from learner rank 0 (GPU only) -----------------------------------------------------

def sender_broadcast_group(master_address: str, master_port: int, world_size: int, device: torch.device):
    """Sender init step (CUDA): learner rank 0 joins as rank 0 of a group that spans the generator workers."""
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


class WorkerExtension:
    """Mixed into vLLM's worker (`worker_extension_cls`); called through `LLM.collective_rpc`."""

    def tao_reload_from_file(self, path: str) -> int:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            names = list(f.keys())
            self.model_runner.reload_weights(weights_iterator=((name, f.get_tensor(name)) for name in names))
        return len(names)

    def tao_init_broadcast_group(self, master_address: str, master_port: int, rank_offset: int,
                                 world_size: int) -> None:
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.parallel_state import get_world_group
        from vllm.distributed.utils import StatelessProcessGroup

        rank = get_world_group().rank + rank_offset
        group = StatelessProcessGroup.create(host=master_address, port=master_port, rank=rank, world_size=world_size)
        self._tao_communicator = PyNcclCommunicator(group, device=self.device)

    def tao_receive_broadcast(self, metas: list[tuple[str, str, tuple[int, ...]]]) -> int:
        def received() -> Iterator[tuple[str, torch.Tensor]]:
            for name, dtype, shape in metas:
                tensor = torch.empty(tuple(shape), dtype=getattr(torch, dtype), device=self.device)
                self._tao_communicator.broadcast(tensor, src=0, stream=torch.cuda.current_stream())
                yield name, tensor

        self.model_runner.reload_weights(weights_iterator=received())
        return len(metas)

    def tao_parameter_sum(self, name: str) -> float:
        """Sum of one parameter as the engine holds it (use an unpacked one, e.g. the embedding), for checks."""
        return float(dict(self.model_runner.model.named_parameters())[name].double().sum())

    def tao_parameter_names(self) -> list[str]:
        return [name for name, _ in self.model_runner.model.named_parameters()]


# ---- driver side: one object per run that walks the protocol across the actors ---------------------------------

class CpuInPlaceSync:
    """Learner rank 0 -> every generator: one payload in Ray's object store, read by all generators.
    Every learner rank is asked to pack (ZeRO-3 gathers collectively); only rank 0's payload is non-empty."""

    name = "cpu-inplace-reload"

    def __init__(self, learners: list, generators: list):
        self.learners, self.generators = learners, generators

    def init(self) -> None:
        import ray

        names = ray.get([learner.weight_names.remote() for learner in self.learners])[0]
        ray.get([g.check_metadata.remote(names) for g in self.generators])

    def update(self, version: int, generators: list | None = None, timeout_s: float | None = None) -> float:
        """Send the learners' weights as policy `version` to `generators` (default: all). Returns the slowest
        generator's receive seconds (the wall time of the whole sync is measured by the caller)."""
        import ray

        payload_refs = [learner.pack_weights.remote() for learner in self.learners]
        received = ray.get([g.receive_weights.remote(payload_refs[0], version)
                            for g in generators or self.generators], timeout=timeout_s)
        ray.get(payload_refs[1:], timeout=timeout_s)
        return max(received)

    def refit(self, generators: list, version: int, timeout_s: float | None = None) -> float:
        """Bring restarted generators to the current weights, straight from the learners."""
        return self.update(version, generators, timeout_s)


class NcclBroadcastSync:
    """Learner rank 0 broadcasts each tensor to every generator worker over NCCL (GPU only)."""

    name = "nccl-broadcast"

    def __init__(self, learners: list, generators: list, tensor_parallel_size: int):
        self.learners, self.generators, self.tp = learners, generators, tensor_parallel_size
        self.learner = learners[0]
        self.metas: list = []

    def init(self) -> None:
        import ray

        self.metas = ray.get([learner.broadcast_metadata.remote() for learner in self.learners])[0]
        address, port = ray.get(self.learner.rendezvous_address.remote())
        world_size = 1 + len(self.generators) * self.tp
        ray.get([self.learner.init_broadcast_group.remote(address, port, world_size)]
                + [g.init_broadcast_group.remote(address, port, 1 + i * self.tp, world_size)
                   for i, g in enumerate(self.generators)])

    def update(self, version: int, generators: list | None = None, timeout_s: float | None = None) -> float:
        """Every generator worker is in the NCCL group, so every generator receives (`generators` is ignored)."""
        import ray

        senders = [learner.broadcast_weights.remote() for learner in self.learners]
        received = ray.get([g.receive_broadcast.remote(self.metas, version) for g in self.generators],
                           timeout=timeout_s)
        ray.get(senders, timeout=timeout_s)
        return max(received)

    def refit(self, generators: list, version: int, timeout_s: float | None = None) -> float:
        """A restarted generator's workers are not in the NCCL group: build a fresh group with every generator,
        then broadcast the current weights to all of them."""
        self.init()
        return self.update(version, timeout_s=timeout_s)


class LoraAdapterSync:
    """LoRA runs: only the adapter moves (a few MB through Ray's object store, on CPU and GPU alike); each engine
    serves base + adapter through vLLM's LoRA support. metadata and init have nothing to do."""

    name = "lora-adapter"

    def __init__(self, learners: list, generators: list):
        self.learners, self.generators = learners, generators

    def init(self) -> None:
        pass

    def update(self, version: int, generators: list | None = None, timeout_s: float | None = None) -> float:
        import ray

        files_ref = self.learners[0].pack_adapter.remote()
        return max(ray.get([g.receive_adapter.remote(files_ref, version) for g in generators or self.generators],
                           timeout=timeout_s))

    def refit(self, generators: list, version: int, timeout_s: float | None = None) -> float:
        return self.update(version, generators, timeout_s)


def make_sync(device: str, learners: list, generators: list, tensor_parallel_size: int = 1,
              lora_adapter: bool = False):
    if lora_adapter:
        return LoraAdapterSync(learners, generators)
    if device == "cpu":
        return CpuInPlaceSync(learners, generators)
    return NcclBroadcastSync(learners, generators, tensor_parallel_size)
