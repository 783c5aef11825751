"""The weight-sync wire format, shared by both ends: tensor metadata, checksums, the safetensors layout and the
shared-memory file the CPU path moves weights through.

The protocol, learner rank 0 -> every generator engine:

    metadata -> init -> update -> finish

- metadata: the (name, dtype, shape) of every tensor, so a receiver can check the sender's model matches its own.
- init:     set up the channel once (CPU: nothing; CUDA: an NCCL group of learner rank 0 + all generator workers).
- update:   move the tensors (CPU: in the engine's dtype, one safetensors file in the learner's shared memory when
            learner rank 0 and the generator share a node, else one safetensors payload through Ray's object store;
            reloaded in place. CUDA: one NCCL broadcast per tensor as the learner reads it, straight into the
            engine's reload).
- finish:   drop state derived from the old weights (the engines' prefix caches).

Here: the format (this module), the engine side (worker.py, inside vLLM's workers), the learner side (sender.py)
and the driver side (driver.py, the only part that talks to Ray). This module imports neither Ray, vLLM nor
DeepSpeed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

import torch


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

