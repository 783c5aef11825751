"""The driver side of weight sync: one object per run that walks the protocol (wire.py) across the actors, with the
path that fits the run: shared memory or the object store on CPU, NCCL on CUDA, the adapter alone with LoRA."""

from __future__ import annotations

import ray


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
        self.metas = ray.get([learner.broadcast_metadata.remote() for learner in self.learners])[0]
        address, port = ray.get(self.learner.rendezvous_address.remote())
        world_size = 1 + len(self.generators) * self.tp
        ray.get([self.learner.init_broadcast_group.remote(address, port, world_size)]
                + [g.init_broadcast_group.remote(address, port, 1 + i * self.tp, world_size)
                   for i, g in enumerate(self.generators)])

    def update(self, version: int, generators: list | None = None, timeout_s: float | None = None) -> float:
        """Every generator worker is in the NCCL group, so every generator receives (`generators` is ignored)."""
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
