"""Per-GPU memory estimates, against numbers worked out by hand (and the ZeRO paper's own example)."""

import pytest

from tao_ray.core import memory
from tao_ray.core.memory import ModelShape

# Small dims keep the hand arithmetic readable; `parameters` is set independently of them.
SMALL = ModelShape(parameters=1e9, hidden=1000, intermediate=3000, layers=10, vocab=50_000, kv_heads=2, head_dim=100)
LLAMA_70B = ModelShape(parameters=70.55e9, hidden=8192, intermediate=28672, layers=80, vocab=128_256, kv_heads=8,
                       head_dim=128)


def learner(model=SMALL, **overrides) -> dict[str, float]:
    settings = dict(dtype="bfloat16", zero_stage=3, ranks=1, micro_batch_size=1, sequence_length=1000,
                    response_length=499, gradient_checkpointing=True, reference=False)
    return memory.learner_memory(model, **{**settings, **overrides})


def model_states(parts: dict[str, float]) -> float:
    return parts["weights"] + parts["gradients"] + parts["optimizer"]


@pytest.mark.parametrize(("stage", "gb"), [(0, 120.0), (1, 31.40625), (2, 16.640625), (3, 1.875)])
def test_zero_stages_reproduce_the_zero_papers_example(stage, gb):
    # ZeRO paper, figure 1: 7.5B parameters on 64 GPUs take 120, 31.4, 16.6 and 1.9 GB of model states.
    # 16 B/param whole = 120; stage 1: 2+2 whole + 12/64 = 30 + 1.40625; stage 2: 2 + 14/64 = 15 + 1.640625;
    # stage 3: 16/64 = 0.25 B/param = 1.875.
    parts = learner(ModelShape(7.5e9, 4096, 16384, 32, 32000, 32, 128), zero_stage=stage, ranks=64)
    assert model_states(parts) == pytest.approx(gb)


def test_float32_has_no_master_copy():
    # 1e9 params: weights 4 GB, gradients 4 GB, Adam m and v 8 GB (the weights are already fp32).
    parts = learner(dtype="float32", zero_stage=0)
    assert (parts["weights"], parts["gradients"], parts["optimizer"]) == pytest.approx((4.0, 4.0, 8.0))


def test_lora_trains_only_the_adapter():
    # 8e9 frozen + 4e7 adapter weights in bf16, whole under ZeRO-2: 8.04e9 x 2 B = 16.08 GB. Only the adapter has
    # gradients (4e7 x 2 / 4 ranks = 0.02 GB) and optimizer state (4e7 x 12 / 4 = 0.12 GB).
    parts = learner(ModelShape(8e9, 4096, 14336, 32, 128_256, 8, 128), zero_stage=2, ranks=4,
                    lora_parameters=4e7)
    assert (parts["weights"], parts["gradients"], parts["optimizer"]) == pytest.approx((16.08, 0.02, 0.12))
    assert parts["reference"] == 0.0


def test_the_reference_is_whole_below_zero3_and_partitioned_under_it():
    # bf16 copy of 1e9 params: 2 GB on each rank under ZeRO-2, 2/8 = 0.25 GB under ZeRO-3 over 8 ranks.
    assert learner(zero_stage=2, ranks=8, reference=True)["reference"] == pytest.approx(2.0)
    assert learner(zero_stage=3, ranks=8, reference=True)["reference"] == pytest.approx(0.25)


def test_activations_logits_and_gathered_modules():
    # One decoder layer saves (6 x 1000 + 2 x 2 x 100 + 4 x 3000) x 2 B = 36,800 B per token; 2 rows x 1000 tokens.
    # Checkpointed: 10 layer inputs of 2000 x 1000 x 2 B = 0.04 GB, plus one recomputed layer and its gradients,
    # 2 x 36,800 x 2000 = 0.1472 GB. Without: 10 layers + the gradients of one, 11 x 36,800 x 2000 = 0.8096 GB.
    assert learner(micro_batch_size=2)["activations"] == pytest.approx(0.1872)
    assert learner(micro_batch_size=2, gradient_checkpointing=False)["activations"] == pytest.approx(0.8096)
    # Logits at 499 + 1 response positions x 50,000 vocab x (2 + 4 + 4) B x 2 rows = 0.5 GB.
    assert learner(micro_batch_size=2)["logits"] == pytest.approx(0.5)
    # ZeRO-3 gathers the larger of a layer (1e9 / 10 = 1e8 params) and the embedding (5e7): two of them in bf16.
    assert learner()["gathered"] == pytest.approx(0.4)
    assert learner(zero_stage=2)["gathered"] == 0.0
    # CUDA context 1 GB, plus ZeRO's 5e8-element reduce bucket in bf16 (1 GB) from stage 2 on.
    assert learner()["runtime"] == pytest.approx(2.0)
    assert learner(zero_stage=1)["runtime"] == pytest.approx(1.0)


def test_generator_on_8_gpus_of_80_gb():
    parts = memory.generator_memory(LLAMA_70B, dtype="bfloat16", tensor_parallel_size=8, gpu_gb=80,
                                    gpu_memory_utilization=0.85)
    # 70.55e9 x 2 B / 8 = 17.6375 GB of weights.
    assert parts["weights"] == pytest.approx(17.6375)
    # 16,384 batched tokens x (2 x 8192 + (8192 + 2 x 1024 + 2 x 28672) / 8) x 2 B = 0.813694976 GB, plus
    # 1024 sequences x 128,256 vocab x 4 B of fp32 logits = 0.525336576 GB.
    assert parts["activations"] == pytest.approx(1.339031552)
    # The rest of 0.85 x 80 = 68 GB is KV cache.
    assert parts["kv_cache"] == pytest.approx(68 - 17.6375 - 1.339031552)
    # Two packed receive buffers of 256 MiB, each of which may run over by the largest tensor, the embedding
    # (128,256 x 8192 x 2 B = 2.101346304 GB): 2 x (0.268435456 + 2.101346304).
    assert parts["sync_buffer"] == pytest.approx(4.73956352)
    assert parts["embedder"] == 0.0
    assert memory.generator_memory(LLAMA_70B, dtype="bfloat16", tensor_parallel_size=8, gpu_gb=80,
                                   gpu_memory_utilization=0.85, embedder=True)["embedder"] == 0.2


def test_kv_bytes_per_token_shards_kv_heads_until_one_per_gpu():
    # K and V x 80 layers x (8 KV heads / 8 GPUs) x 128 dims x 2 B = 40,960 B; with 16 GPUs a head is replicated.
    assert memory.kv_bytes_per_token(LLAMA_70B, "bfloat16", 8) == 40_960
    assert memory.kv_bytes_per_token(LLAMA_70B, "bfloat16", 16) == 40_960
    assert memory.kv_bytes_per_token(LLAMA_70B, "bfloat16", 4) == 81_920
