"""The driver side of weight sync: one object per run that walks the protocol (wire.py) across the actors, with the
path that fits the run: shared memory or the object store on CPU, NCCL on CUDA, the adapter alone with LoRA."""

from __future__ import annotations

import time
from collections.abc import Callable

import ray

from tao_ray.core import memory

# How often a sync that waits checks whether its senders are still alive.
ABORT_POLL_S = 1.0


class SendersLost(RuntimeError):
    """A sync gave up waiting: a learner rank it needs died (the driver then restarts the learners)."""


def get_unless(refs: list, timeout_s: float | None, abort: Callable[[], str | None] | None = None) -> list:
    """ray.get(refs, timeout=timeout_s) that also ends, with SendersLost, as soon as `abort()` names a reason (a
    learner rank seen dead). A generator whose payload sat on a node that left waits in Ray's object fetch for up to
    ten minutes (fetch_fail_timeout_milliseconds) before its call fails; a dead rank is in Ray's actor table within
    seconds. The receivers' calls are not cancelled: Ray cancels an actor call still waiting for its arguments only
    by leaving a gap in the actor's call order, which then stalls every later call for half a minute."""
    if abort is None:
        return ray.get(refs, timeout=timeout_s)
    deadline = None if timeout_s is None else time.perf_counter() + timeout_s
    pending = list(refs)
    while pending:
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            break  # ray.get below raises GetTimeoutError, as without `abort`
        _, pending = ray.wait(pending, num_returns=len(pending),
                              timeout=ABORT_POLL_S if left is None else min(ABORT_POLL_S, left))
        if pending and (reason := abort()):
            raise SendersLost(f"weight sync abandoned: {reason}")
    return ray.get(refs, timeout=0 if pending else None)


def engines_dtype(generators: list, timeout_s: float | None) -> str | None:
    """The dtype every engine computes in, which the learner then sends; None for mixed engines (each converts on
    load)."""
    dtypes = set(ray.get([g.weight_dtype.remote() for g in generators], timeout=timeout_s))
    return dtypes.pop() if len(dtypes) == 1 else None


class CpuInPlaceSync:
    """Learner rank 0 -> every generator, in the engines' dtype. A generator on learner rank 0's node opens the
    learner's shared-memory file (only its path is sent); any other gets one payload through Ray's object store.
    Every learner rank is asked to pack (ZeRO-3 gathers collectively); only rank 0 writes or returns anything.

    `shared_memory=False` sends everything through the object store (the cross-node path, also on one node);
    `engine_dtype=False` sends the learner's dtype (the engine converts as it loads)."""

    name = "cpu-inplace-reload"
    restart_all_on_failure = False  # each generator receives on its own: only the failed ones are restarted

    def __init__(self, learners: list, generators: list, shared_memory: bool = True, engine_dtype: bool = True):
        self.learners, self.generators = learners, generators
        self.shared_memory, self.engine_dtype = shared_memory, engine_dtype
        self.dtype: str | None = None
        self.channel: tuple[str, str] | None = None  # (learner rank 0's node id, path of its shared file)
        self.local: dict = {}  # generator handle (hashed by actor id) -> whether it opens the shared file

    def init(self, timeout_s: float | None = None) -> None:
        names = ray.get([learner.weight_names.remote() for learner in self.learners], timeout=timeout_s)[0]
        ray.get([g.check_metadata.remote(names) for g in self.generators], timeout=timeout_s)
        if self.engine_dtype:
            self.dtype = engines_dtype(self.generators, timeout_s)
        if self.shared_memory:
            self.channel = ray.get(self.learners[0].weights_channel.remote(), timeout=timeout_s)
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

    def update(self, version: int, generators: list | None = None, timeout_s: float | None = None,
               abort: Callable[[], str | None] | None = None) -> float:
        """Send the learners' weights as policy `version` to `generators` (default: all). Returns the slowest
        generator's receive seconds (the wall time of the whole sync is measured by the caller). `abort`: see
        get_unless."""
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
        received = get_unless(calls, timeout_s, abort)
        get_unless(packs, timeout_s, abort)
        return max(received)

    def refit(self, generators: list, version: int, timeout_s: float | None = None) -> float:
        """Bring restarted generators to the current weights, straight from the learners."""
        return self.update(version, generators, timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        pass  # the shared file lives as long as learner rank 0


class NcclBroadcastSync:
    """Learner rank 0 broadcasts the weights to every generator worker over NCCL (GPU only), on vLLM's
    weight-transfer engine: packed into `buffers` buffers of `buffer_bytes` on both sides, in the engines' dtype,
    one group of 1 + G x T ranks (generator g's workers at 1 + g x T). tao-ray is the engines' client, not vLLM's
    Ray client, so that each engine gets its own ranks and every call has a deadline.

    NCCL has no timeout of its own: a receiver that dies leaves the others blocked in the broadcast, and the group is
    unusable after any failure (`restart_all_on_failure`: the driver restarts every generator, never leaving one
    half-received, and refits them through a fresh group)."""

    name = "nccl-packed"
    restart_all_on_failure = True
    # Each side holds BUFFERS of about BUFFER_BYTES outside vLLM's memory budget (core/memory.py counts them).
    BUFFER_BYTES = memory.TRANSFER_BUFFER_BYTES
    BUFFERS = memory.TRANSFER_BUFFERS

    def __init__(self, learners: list, generators: list, tensor_parallel_size: int):
        self.learners, self.generators, self.tp = learners, generators, tensor_parallel_size
        self.learner = learners[0]
        self.dtype: str | None = None
        self.metas: list = []
        self.open = False

    def init(self, timeout_s: float | None = None) -> None:
        """A new group (the previous one's communicators destroyed first) on a fresh port, and what each
        engine must expect: names, its own dtype, whole shapes (read without gathering)."""
        self.close(timeout_s)
        self.dtype = engines_dtype(self.generators, timeout_s)
        self.metas = ray.get([learner.broadcast_metadata.remote(self.dtype) for learner in self.learners],
                             timeout=timeout_s)[0]
        address, port = ray.get(self.learner.rendezvous_address.remote(), timeout=timeout_s)
        world_size = 1 + len(self.generators) * self.tp
        # Every member joins at once: the rendezvous waits for all of them.
        ray.get([learner.init_broadcast_group.remote(address, port, world_size) for learner in self.learners]
                + [g.init_broadcast_group.remote(address, port, 1 + i * self.tp, world_size, self.BUFFER_BYTES,
                                                 self.BUFFERS) for i, g in enumerate(self.generators)],
                timeout=timeout_s)
        self.open = True

    def update(self, version: int, generators: list | None = None, timeout_s: float | None = None,
               abort: Callable[[], str | None] | None = None) -> float:
        """Every generator worker is in the group, so every generator receives (`generators` is ignored)."""
        senders = [learner.broadcast_weights.remote(self.dtype, self.BUFFER_BYTES, self.BUFFERS)
                   for learner in self.learners]
        received = get_unless([g.receive_broadcast.remote(self.metas, version) for g in self.generators], timeout_s,
                              abort)
        get_unless(senders, timeout_s, abort)
        return max(received)

    def refit(self, generators: list, version: int, timeout_s: float | None = None) -> float:
        """A restarted generator's workers are not in the group: a fresh group with every generator, then the
        current weights to all of them."""
        self.init(timeout_s)
        return self.update(version, timeout_s=timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Destroy the group's communicators on every member that still answers (a dead one took its own)."""
        if not self.open:
            return
        self.open = False
        calls = [learner.close_broadcast_group.remote() for learner in self.learners] + \
            [g.close_broadcast_group.remote() for g in self.generators]
        ray.wait(calls, num_returns=len(calls), timeout=timeout_s)


class LoraAdapterSync:
    """LoRA runs: only the adapter moves (a few MB through Ray's object store, on CPU and GPU alike); each engine
    serves base + adapter through vLLM's LoRA support. metadata and init have nothing to do."""

    name = "lora-adapter"

    restart_all_on_failure = False

    def __init__(self, learners: list, generators: list):
        self.learners, self.generators = learners, generators

    def init(self, timeout_s: float | None = None) -> None:
        pass

    def close(self, timeout_s: float | None = None) -> None:
        pass

    def update(self, version: int, generators: list | None = None, timeout_s: float | None = None,
               abort: Callable[[], str | None] | None = None) -> float:
        files_ref = self.learners[0].pack_adapter.remote()
        return max(get_unless([g.receive_adapter.remote(files_ref, version) for g in generators or self.generators],
                              timeout_s, abort))

    def refit(self, generators: list, version: int, timeout_s: float | None = None) -> float:
        return self.update(version, generators, timeout_s)


def make_sync(device: str, learners: list, generators: list, tensor_parallel_size: int = 1,
              lora_adapter: bool = False, shared_memory: bool = True):
    if lora_adapter:
        return LoraAdapterSync(learners, generators)
    if device == "cpu":
        return CpuInPlaceSync(learners, generators, shared_memory=shared_memory)
    return NcclBroadcastSync(learners, generators, tensor_parallel_size)
