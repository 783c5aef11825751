"""LearnerActor: one DeepSpeed data-parallel rank that updates the policy from a RolloutBatch, as a Ray actor.

A thin shell: the rank is an engine.learner.PolicyLearner (build, train step, objective), its checkpoint files an
engine.checkpoint_io.CheckpointIO and its weights out a sync.sender.WeightSender; this class only gives them to Ray
(remote methods, output into the run's log files, the node id for same-node sync).
In: this rank's shard of the batch. Out: loss metrics; on rank 0 also the new weights (CPU: a safetensors payload or
a shared-memory file; CUDA: an NCCL broadcast) and checkpoints.
"""

from __future__ import annotations

import ray

from tao_ray.actors import logs
from tao_ray.core.batch import RolloutBatch
from tao_ray.engine import diagnostics, distributed
from tao_ray.engine.checkpoint_io import CheckpointIO
from tao_ray.engine.learner import LearnerSpec, PolicyLearner
from tao_ray.sync.sender import WeightSender


class LearnerActor:
    def __init__(self, spec: LearnerSpec):
        logs.redirect_output()  # before the engine prints anything
        self.rank = spec.rank
        self.learner = PolicyLearner(spec)
        self.checkpoints = CheckpointIO(self.learner)
        self.sender = WeightSender(self.learner)

    def ping(self) -> int:
        """A liveness probe: answers at once unless the rank is dead or stuck."""
        return self.rank

    def rendezvous_address(self) -> tuple[str, int]:
        return distributed.rendezvous_address()

    def setup(self, master_address: str, master_port: int) -> int:
        """Join the process group and build the engine; every rank must call this concurrently."""
        return self.learner.setup(master_address, master_port)

    # ---- learning ----

    def train(self, shard: RolloutBatch, micro_batches: int, denominators: dict[str, float] | None = None,
              version: int = 0) -> dict[str, float]:
        return self.learner.train(shard, micro_batches, denominators, version)

    def loss_on(self, shard: RolloutBatch) -> float:
        return self.learner.loss_on(shard)

    def apply_optimizer_settings(self, lr: float, weight_decay: float, max_grad_norm: float) -> dict[str, list[float]]:
        return self.learner.apply_optimizer_settings(lr, weight_decay, max_grad_norm)

    def describe(self) -> dict:
        return self.learner.describe()

    def trainable_parameters(self) -> int:
        return self.learner.trainable_parameters()

    # ---- checkpoints (engine/checkpoint_io.py) ----

    def save_checkpoint(self, directory: str, full: bool) -> float:
        return self.checkpoints.save_checkpoint(directory, full)

    def writes_done(self) -> bool:
        return self.checkpoints.writes_done()

    def wait_for_writes(self) -> float:
        return self.checkpoints.wait_for_writes()

    def save_model(self, directory: str, background: bool = False) -> None:
        self.checkpoints.save_model(directory, background)

    def save_state(self, directory: str, background: bool = False) -> None:
        self.checkpoints.save_state(directory, background)

    def load_state(self, directory: str) -> None:
        self.checkpoints.load_state(directory)

    # ---- weights out to the generators (sync/sender.py) ----

    def weight_names(self) -> list[str]:
        return self.sender.weight_names()

    def pack_weights(self, dtype: str | None = None, shared: bool = False) -> bytes | str:
        return self.sender.pack_weights(dtype, shared)

    def pack_adapter(self) -> dict[str, bytes]:
        return self.sender.pack_adapter()

    def weights_channel(self) -> tuple[str, str]:
        """(this actor's Ray node id, path of its shared-memory weights file): generators on the same node open it."""
        return ray.get_runtime_context().get_node_id(), self.sender.shared_file()

    def pack_timing(self) -> dict[str, float]:
        return self.sender.pack_timing()

    def init_broadcast_group(self, master_address: str, master_port: int, world_size: int) -> None:
        self.sender.init_broadcast_group(master_address, master_port, world_size)

    def broadcast_metadata(self, dtype: str | None = None) -> list[tuple[str, str, tuple[int, ...]]]:
        return self.sender.broadcast_metadata(dtype)

    def broadcast_weights(self, dtype: str | None, buffer_bytes: int, buffers: int) -> None:
        self.sender.broadcast_weights(dtype, buffer_bytes, buffers)

    def close_broadcast_group(self) -> None:
        self.sender.close_broadcast_group()

    # ---- read-outs for checks (engine/diagnostics.py) ----

    def parameter_numels(self) -> dict[str, tuple[int, int]]:
        return diagnostics.parameter_numels(self.learner)

    def streaming_peak(self) -> int:
        return diagnostics.streaming_peak(self.learner)

    def state_dict(self) -> dict:
        return diagnostics.state_dict(self.learner)

    def weights_digest(self) -> str:
        return diagnostics.weights_digest(self.learner)

    def parameter_sum(self, name: str) -> float:
        return diagnostics.parameter_sum(self.learner, name)

    def scale_parameter(self, name: str, factor: float) -> None:
        diagnostics.scale_parameter(self.learner, name, factor)
