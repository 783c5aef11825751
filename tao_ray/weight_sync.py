"""Weight sync from learner rank 0 to every generator engine, as one explicit protocol:

    metadata -> init -> update -> finish

- metadata: the (name, dtype, shape) of every tensor, so a receiver can check the sender's model matches its own.
- init:     set up the channel once (CPU: nothing; CUDA: an NCCL group of learner rank 0 + all generator workers).
- update:   move the tensors (CPU: in the engine's dtype, one safetensors file in the learner's shared memory when
            learner rank 0 and the generator share a node, else one safetensors payload through Ray's object store;
            reloaded in place. CUDA: one NCCL broadcast per tensor as the learner reads it, straight into the
            engine's reload).
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


# ---- CPU path: learner writes or packs, worker reloads in place from a file in shared memory ---------------------
#
# Same node (learner rank 0 and the generator on one raylet): the learner writes the safetensors layout straight into
# an anonymous shared-memory file it owns (memfd, mapped once and overwritten in place every sync) and sends only its
# path, /proc/<learner pid>/fd/<fd>; the engine's worker opens it. One copy of the weights on the way, no pickling,
# nothing left behind in /dev/shm should a process die (the file lives as long as the learner holds it).
# Other nodes: the same bytes travel through Ray's object store and are staged in a file on the receiving node.

_DTYPES = {"float64": "F64", "float32": "F32", "bfloat16": "BF16", "float16": "F16", "int64": "I64", "int32": "I32",
           "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}  # safetensors' names


def checksum(tensor: torch.Tensor) -> float:
    """The sum of a tensor's values, for comparing weights across processes: numpy's single-threaded pairwise sum in
    float64, so it does not depend on the thread count (torch's parallel sum does: 1 and 2 threads give different
    last bits, and an engine computes on more threads than a learner in a test)."""
    return float(tensor.detach().cpu().double().numpy().sum())


def cast(tensor: torch.Tensor, dtype: str | None) -> torch.Tensor:
    """The tensor in the engine's dtype (None: as it is), on the CPU, contiguous."""
    tensor = tensor.detach()
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(getattr(torch, dtype))
    return tensor.contiguous().cpu()


def pack(state_dict: dict[str, torch.Tensor], dtype: str | None = None) -> bytes:
    """Sender update step (CPU, other node): one contiguous safetensors buffer, which Ray ships without per-tensor
    pickling. `dtype`: convert floating-point tensors while packing (the engine's dtype; None keeps the learner's)."""
    from safetensors.torch import save

    return save({name: cast(t, dtype) for name, t in state_dict.items()})


def layout(state_dict: dict[str, torch.Tensor], dtype: str | None = None) -> tuple[bytes, list[tuple[int, int]]]:
    """The safetensors header (8-byte length + JSON, padded to 8 bytes) and each tensor's (start, end) byte offsets
    in the file, in `state_dict` order, as `safetensors.safe_open` reads them."""
    import json

    entries, offset, spans = {}, 0, []
    for name, t in state_dict.items():
        out = getattr(torch, dtype) if dtype is not None and t.is_floating_point() else t.dtype
        size = t.numel() * out.itemsize
        entries[name] = {"dtype": _DTYPES[str(out).removeprefix("torch.")], "shape": list(t.shape),
                         "data_offsets": [offset, offset + size]}
        spans.append((offset, offset + size))
        offset += size
    text = json.dumps(entries, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    header = len(text).to_bytes(8, "little") + text
    return header, [(len(header) + a, len(header) + b) for a, b in spans]


class SharedWeightsFile:
    """Sender update step (CPU, same node): an anonymous shared-memory file holding the safetensors layout. Other
    processes of the node open it as `path`; it is mapped once and rewritten in place (no page faults, no
    serialization): one copy per tensor, converting the dtype on the way."""

    def __init__(self):
        self.fd = os.memfd_create("tao-ray-weights")
        self.path = f"/proc/{os.getpid()}/fd/{self.fd}"
        self.mapped: torch.Tensor | None = None  # uint8 view of the whole file

    def write(self, state_dict: dict[str, torch.Tensor], dtype: str | None = None) -> int:
        """Returns the file's size in bytes."""
        header, spans = layout(state_dict, dtype)
        size = spans[-1][1] if spans else len(header)
        if self.mapped is None or self.mapped.numel() != size:
            self.mapped = None
            os.ftruncate(self.fd, size)
            storage = torch.UntypedStorage.from_file(self.path, shared=True, nbytes=size)
            self.mapped = torch.empty(0, dtype=torch.uint8).set_(storage)
        self.mapped[:len(header)].copy_(torch.frombuffer(bytearray(header), dtype=torch.uint8))
        for t, (start, end) in zip(state_dict.values(), spans, strict=True):
            out = getattr(torch, dtype) if dtype is not None and t.is_floating_point() else t.dtype
            if end == start:
                continue
            if start % out.itemsize == 0:
                self.mapped[start:end].view(out).view(t.shape).copy_(t.detach())
            else:  # safetensors packs tensors without padding: a misaligned one goes in as bytes
                self.mapped[start:end].copy_(cast(t, dtype).reshape(-1).view(torch.uint8))
        return size

    def close(self) -> None:
        self.mapped = None
        os.close(self.fd)


def stage_payload(payload: bytes) -> str:
    """Receiver side (CPU, other node): put the payload in a file the engine's worker process can open; /dev/shm
    keeps it in RAM."""
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
        return checksum(dict(self.model_runner.model.named_parameters())[name])

    def tao_parameter_names(self) -> list[str]:
        return [name for name, _ in self.model_runner.model.named_parameters()]


# ---- driver side: one object per run that walks the protocol across the actors ---------------------------------

class CpuInPlaceSync:
    """Learner rank 0 -> every generator, in the engines' dtype. A generator on learner rank 0's node opens the
    learner's shared-memory file (only its path is sent); any other gets one payload through Ray's object store.
    Every learner rank is asked to pack (ZeRO-3 gathers collectively); only rank 0 writes or returns anything.

    `shared_memory=False` sends everything through the object store (the cross-node path, also on one node);
    `engine_dtype=False` sends the learner's dtype (the engine converts as it loads)."""

    name = "cpu-inplace-reload"

    def __init__(self, learners: list, generators: list, shared_memory: bool = True, engine_dtype: bool = True):
        self.learners, self.generators = learners, generators
        self.shared_memory, self.engine_dtype = shared_memory, engine_dtype
        self.dtype: str | None = None
        self.channel: tuple[str, str] | None = None  # (learner rank 0's node id, path of its shared file)
        self.local: dict = {}  # generator handle (hashed by actor id) -> whether it opens the shared file

    def init(self) -> None:
        import ray

        names = ray.get([learner.weight_names.remote() for learner in self.learners])[0]
        ray.get([g.check_metadata.remote(names) for g in self.generators])
        if self.engine_dtype:
            dtypes = set(ray.get([g.weight_dtype.remote() for g in self.generators]))
            self.dtype = dtypes.pop() if len(dtypes) == 1 else None  # mixed engines: each converts on load
        if self.shared_memory:
            self.channel = ray.get(self.learners[0].weights_channel.remote())
        self.local = {}
        self._route(self.generators)

    def _route(self, generators: list) -> tuple[list, list]:
        """(same-node generators, the others). A generator is same-node when it runs on learner rank 0's node and
        can open the shared file there (checked once per generator actor)."""
        import ray

        if self.channel is None:
            return [], list(generators)
        node, path = self.channel
        unknown = [g for g in generators if g not in self.local]
        for g, opens in zip(unknown, ray.get([g.opens_channel.remote(node, path) for g in unknown]), strict=True):
            self.local[g] = opens
        local = [g for g in generators if self.local[g]]
        return local, [g for g in generators if not self.local[g]]

    def update(self, version: int, generators: list | None = None, timeout_s: float | None = None) -> float:
        """Send the learners' weights as policy `version` to `generators` (default: all). Returns the slowest
        generator's receive seconds (the wall time of the whole sync is measured by the caller)."""
        import ray

        local, remote = self._route(generators or self.generators)
        calls, packs = [], []
        if local:
            paths = [learner.pack_weights.remote(self.dtype, True) for learner in self.learners]
            calls += [g.receive_weights.remote(paths[0], version) for g in local]
            packs += paths[1:]
        if remote:
            payloads = [learner.pack_weights.remote(self.dtype) for learner in self.learners]
            calls += [g.receive_weights.remote(payloads[0], version) for g in remote]
            packs += payloads[1:]
        received = ray.get(calls, timeout=timeout_s)
        ray.get(packs, timeout=timeout_s)
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
              lora_adapter: bool = False, shared_memory: bool = True):
    if lora_adapter:
        return LoraAdapterSync(learners, generators)
    if device == "cpu":
        return CpuInPlaceSync(learners, generators, shared_memory=shared_memory)
    return NcclBroadcastSync(learners, generators, tensor_parallel_size)
