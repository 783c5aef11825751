"""The engine (receiver) side of weight sync: methods mixed into vLLM's worker processes (`worker_extension_cls`) and
called through `LLM.collective_rpc`. On CPU weights are reloaded in place (`reload_weights`, which also handles CPU
weight prepacking; plain `model.load_weights` does not); on GPUs they arrive through vLLM's own weight-transfer
engine (actors/generator.py), so only the CPU path and the checks live here. It runs inside vLLM's workers, so it
imports neither Ray nor DeepSpeed."""

from __future__ import annotations

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

    def tao_parameter_sum(self, name: str) -> float:
        """Sum of one parameter as the engine holds it (use an unpacked one, e.g. the embedding), for checks."""
        return checksum(dict(self.model_runner.model.named_parameters())[name])

    def tao_parameter_names(self) -> list[str]:
        return [name for name, _ in self.model_runner.model.named_parameters()]

