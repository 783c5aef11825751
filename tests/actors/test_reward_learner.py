"""train-rm's learner on the real stack, LoRA variant (the full fine-tuning path runs in tests/e2e): only the
adapters and the new scalar head train, and the merged export loads as a plain reward model."""

import pytest
import ray

from tao_ray.actors.reward_learner import RewardLearnerActor
from tao_ray.data.preferences import load_pairs
from tao_ray.rewards.reward_model import RewardModel
from tao_ray.runtime.launch import join_ranks

pytestmark = pytest.mark.integration


def test_lora_reward_learner_trains_adapters_and_exports_a_loadable_model(ray_cluster, model_dir, tmp_path):
    pairs = [(p.messages, p.chosen, p.rejected) for p in load_pairs("prompts/preferences/topic-pairs.jsonl")[:16]]
    cls = ray.remote(num_cpus=1)(RewardLearnerActor)
    (learner,), (trainable,) = join_ranks(lambda: [cls.remote(model_dir, "cpu", 8, 16.0, 1e-3, 8, 96, 0, 1)])
    assert 0 < trainable < 10_000_000  # adapters + the 576-wide scalar head, not the 135M backbone
    first = ray.get(learner.train_epoch.remote(pairs, 0))
    second = ray.get(learner.train_epoch.remote(pairs, 1))
    assert second["loss"] < first["loss"]
    ray.get(learner.save.remote(str(tmp_path / "rm")))
    ray.kill(learner)
    model = RewardModel(str(tmp_path / "rm"))
    assert model.model.config.num_labels == 1 and not any("lora" in n for n, _ in model.model.named_parameters())
    scores = model.score([{"messages": m} for m, _, _ in pairs[:2]], [c for _, c, _ in pairs[:2]])
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
