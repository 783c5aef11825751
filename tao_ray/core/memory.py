"""Per-GPU memory estimates for a recipe's learner ranks and generator engines, before any GPU is rented.

In: the model's size and shape (`ModelShape`) and the recipe's numbers. Out: a breakdown {part: GB} for one GPU;
its sum is the estimate. GB = 10^9 bytes. Pure arithmetic, no imports: the recipe tests check every GPU recipe's
header against it.

Learner accounting is the standard mixed-precision one (ZeRO paper, Rajbhandari et al. 2020): per trained parameter,
weights 2 B + gradients 2 B in bf16, and an optimizer state of 12 B (fp32 master copy 4 B, Adam m and v 4 B each).
ZeRO-1 partitions the optimizer state over the ranks, ZeRO-2 the gradients too, ZeRO-3 the weights too (and, in
tao-ray, the frozen reference). In float32 there is no master copy: weights 4 B, gradients 4 B, Adam 8 B.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9
BYTES_PER_ELEMENT = {"bfloat16": 2, "float16": 2, "float32": 4}
CUDA_CONTEXT_GB = 1.0
"""CUDA context, cuBLAS workspaces and NCCL buffers of one process: about 0.5-1 GB on recent GPUs."""
ZERO_REDUCE_BUCKET = 5e8
"""Elements in DeepSpeed's gradient reduce bucket (`reduce_bucket_size`, its default for stages 2 and 3)."""
EMBEDDER_GB = 0.2
"""The generator's sentence embedder on the GPU (all-MiniLM-L6-v2: 23M parameters in fp32, and its activations)."""
TRANSFER_BUFFERS = 2
TRANSFER_BUFFER_BYTES = 256 * 2**20
"""vLLM's packed weight transfer as tao-ray sets it up (sync/driver.py NcclBroadcastSync): this many buffers of
about this size on each side, a buffer overrunning by up to one tensor."""
VLLM_BATCHED_TOKENS = 16384
VLLM_MAX_SEQUENCES = 1024
"""vLLM's defaults for offline engines on GPUs of 70 GiB or more (`max_num_batched_tokens`, `max_num_seqs`)."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a decoder-only transformer (values from its config.json)."""

    parameters: float
    hidden: int
    intermediate: int
    """The MLP's inner width (SwiGLU: gate and up project to it)."""
    layers: int
    vocab: int
    kv_heads: int
    head_dim: int


def layer_activation_bytes_per_token(model: ModelShape, element_bytes: int) -> float:
    """What one decoder layer saves for its backward, per token: the residual and normed inputs of attention and
    MLP (4 hidden), q, k and v, the attention output (hidden), and the MLP's gate, up, silu(gate) and their product
    (4 intermediate). Fused attention (SDPA / flash) keeps no T x T score matrix."""
    kv_width = model.kv_heads * model.head_dim
    return (6 * model.hidden + 2 * kv_width + 4 * model.intermediate) * element_bytes


def learner_memory(model: ModelShape, *, dtype: str, zero_stage: int, ranks: int, micro_batch_size: int,
                   sequence_length: int, response_length: int, gradient_checkpointing: bool, reference: bool,
                   lora_parameters: float = 0.0) -> dict[str, float]:
    """One learner rank's GPU memory, in GB, by part.

    sequence_length: prompt + response tokens of one row (the longest the recipe allows: model.max_model_len).
    response_length: response tokens of one row (generation.max_tokens); the learner computes logits only there.
    reference: a frozen reference copy is held (tao_ray.core.algorithms.uses_reference, and no LoRA: its reference is
    the policy with the adapter off); ZeRO-3 partitions it like the policy, the
    other stages keep it whole on every rank.
    lora_parameters: adapter parameters when training LoRA (0: every weight is trained). The frozen base then has
    weights only, no gradients or optimizer state.

    Assumes the largest micro-batch is full: micro_batch_size rows of sequence_length tokens.
    """
    b = BYTES_PER_ELEMENT[dtype]
    master = 4 if b < 4 else 0  # mixed precision keeps an fp32 copy of each trained weight for the optimizer
    trained = lora_parameters or model.parameters
    weights = model.parameters + lora_parameters
    weight_split = ranks if zero_stage >= 3 else 1
    gradient_split = ranks if zero_stage >= 2 else 1
    optimizer_split = ranks if zero_stage >= 1 else 1
    tokens = micro_batch_size * sequence_length
    per_layer = layer_activation_bytes_per_token(model, b) * tokens
    if gradient_checkpointing:
        # Each layer's input is kept; in the backward one layer at a time is recomputed: its activations and
        # their gradients.
        layer_activations = model.layers * tokens * model.hidden * b + 2 * per_layer
    else:
        layer_activations = model.layers * per_layer + per_layer
    # Logits of the response positions only (logits_to_keep), in the weights' dtype, their fp32 copy for the
    # log-softmax and that copy's fp32 gradient.
    logits = micro_batch_size * (response_length + 1) * model.vocab * (b + 4 + 4)
    parts = {
        "weights": weights * b / weight_split,
        "gradients": trained * b / gradient_split,
        "optimizer": trained * (master + 8) / optimizer_split,
        "reference": model.parameters * b / weight_split if reference else 0.0,
        # ZeRO-3 gathers each module's full weights just before use: the one running plus the one prefetched.
        # The largest modules are a decoder layer and the (untied) embedding / lm_head.
        "gathered": (2 * max(model.parameters / model.layers, model.vocab * model.hidden) * b
                     if zero_stage >= 3 else 0.0),
        "activations": layer_activations,
        "logits": logits,
        "runtime": CUDA_CONTEXT_GB * GB + (ZERO_REDUCE_BUCKET * b if zero_stage >= 2 else 0.0),
    }
    return {part: value / GB for part, value in parts.items()}


def kv_bytes_per_token(model: ModelShape, dtype: str, tensor_parallel_size: int) -> float:
    """KV cache per token on one GPU: keys and values of every layer, for this GPU's share of the KV heads (a KV
    head is replicated when there are more GPUs than KV heads)."""
    heads_per_gpu = max(1.0, model.kv_heads / tensor_parallel_size)
    return 2 * model.layers * heads_per_gpu * model.head_dim * BYTES_PER_ELEMENT[dtype]


def generator_memory(model: ModelShape, *, dtype: str, tensor_parallel_size: int, gpu_gb: float,
                     gpu_memory_utilization: float, batched_tokens: int = VLLM_BATCHED_TOKENS,
                     max_sequences: int = VLLM_MAX_SEQUENCES, embedder: bool = False) -> dict[str, float]:
    """One GPU of a tensor-parallel vLLM engine, in GB, by part.

    vLLM takes gpu_memory_utilization x gpu_gb for itself: weights (1/tensor_parallel_size each), the activation
    peak of its profiling run, and the rest as KV cache. Outside that budget: the process's CUDA context and NCCL
    buffers, the weight sync's receive buffers (packed buffers, each of which may run over by one whole tensor,
    the largest being the embedding or lm_head, in the engine's dtype: every tensor-parallel worker receives whole
    tensors before loading its shard), and the sentence embedder (`embedder`: generation.distance is embedding).
    A negative "kv_cache" means the weights do not fit.
    """
    b = BYTES_PER_ELEMENT[dtype]
    t = tensor_parallel_size
    weights = model.parameters * b / t
    # One prefill chunk through one layer: residual and normed hidden states, this GPU's q/k/v and gate/up
    # outputs; plus the sampler's fp32 logits over the whole vocabulary for every running sequence.
    kv_width = model.kv_heads * model.head_dim
    per_token = (2 * model.hidden + (model.hidden + 2 * kv_width + 2 * model.intermediate) / t) * b
    activations = batched_tokens * per_token + max_sequences * model.vocab * 4
    budget = gpu_memory_utilization * gpu_gb * GB
    parts = {
        "weights": weights,
        "activations": activations,
        "kv_cache": budget - weights - activations,
        "sync_buffer": TRANSFER_BUFFERS * (TRANSFER_BUFFER_BYTES + model.vocab * model.hidden * b),
        "embedder": EMBEDDER_GB * GB if embedder else 0.0,
        "runtime": CUDA_CONTEXT_GB * GB,
    }
    return {part: value / GB for part, value in parts.items()}
