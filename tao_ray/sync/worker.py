"""The engine (receiver) side of weight sync: methods mixed into vLLM's worker processes (`worker_extension_cls`) and
called through `LLM.collective_rpc`. Both paths end in vLLM's in-place `reload_weights`, which also handles CPU weight
prepacking (plain `model.load_weights` does not). It runs inside vLLM's workers, so it imports neither Ray nor
DeepSpeed."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from tao_ray.sync.wire import checksum

WORKER_EXTENSION = "tao_ray.sync.worker.WorkerExtension"


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

