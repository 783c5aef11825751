"""Read-outs of a PolicyLearner's weights for checks and memory figures: parameter counts, the peak of the streamed
read-out, digests and sums, and one known change for sync tests. Under ZeRO-3 reading weights is collective, so
every rank calls each of these."""

from __future__ import annotations

import hashlib

import torch

from tao_ray.engine import distributed
from tao_ray.engine.learner import PolicyLearner
from tao_ray.sync.wire import checksum


def parameter_numels(learner: PolicyLearner) -> dict[str, tuple[int, int]]:
    """(elements on this rank, elements in the whole model) of the policy as loaded, the policy now and the
    reference: under ZeRO-3 each rank holds about 1/world_size of every one."""
    numels = {"policy_loaded": learner.loaded_numel, "policy": distributed.local_numel(learner.engine.module)}
    if learner.reference is not None:
        module = getattr(learner.reference, "module", learner.reference)  # the ZeRO-3 engine or the plain model
        numels["reference"] = distributed.local_numel(module)
    return numels


def streaming_peak(learner: PolicyLearner) -> int:
    """The most policy elements whole on this rank at any point while its weights are read out (every rank
    calls it): under ZeRO-3 one module's, plus the small parameters DeepSpeed keeps whole, never the model."""
    params = list(learner.engine.module.parameters())
    peak = 0
    for _ in learner.full_tensors():
        # A ZeRO-3 parameter not gathered holds an empty tensor; ZeRO-2's are all whole.
        peak = max(peak, sum(p.numel() for p in params))
    return peak


def state_dict(learner: PolicyLearner) -> dict:
    """Rank 0: a CPU copy of the parameters by HF name, each storage once (a tied lm_head is left out, as vLLM
    ties it itself); {} on other ranks."""
    return learner.rank0_tensors(copy=True)


def weights_digest(learner: PolicyLearner) -> str:
    """sha256 of every parameter's bytes: equal digests mean bit-identical models. Every rank returns it."""
    digest = hashlib.sha256()
    for name, tensor in learner.full_tensors():
        digest.update(name.encode())
        digest.update(tensor.float().cpu().numpy().tobytes())
    return digest.hexdigest()


def parameter_sum(learner: PolicyLearner, name: str) -> float:
    total = None
    for tensor_name, tensor in learner.full_tensors():
        if tensor_name == name:
            total = checksum(tensor)
    if total is None:
        raise KeyError(name)
    return total


def scale_parameter(learner: PolicyLearner, name: str, factor: float) -> None:
    """Multiply one parameter (plain HF name, no LoRA) in place: a known, visible weight change for sync checks.
    Under ZeRO-3 every rank calls it; rank 0's change reaches every partition."""
    param = dict(learner.engine.module.named_parameters())[name]
    with torch.no_grad(), distributed.gathered([param], learner.zero3, modifier_rank=0):
        if learner.rank == 0 or not learner.zero3:
            param.data.mul_(factor)


def weight_names(learner: PolicyLearner) -> list[str]:
    return [name for name, _ in learner.full_tensors()]
