from tao_ray.core.batch import Generation, build_rollout_batch


def gen(index, n):
    return Generation(index, [1, 2], [f"r{i}" for i in range(n)], [[10 + i] for i in range(n)])


def test_flat_groups_and_failed_samples_are_dropped():
    generations = [gen(0, 2), gen(1, 2), gen(2, 3), gen(3, 2)]
    rewards = [[0.0, 1.0],        # signal: advantages -1, +1
               [0.5, 0.5],        # flat: dropped
               [1.0, None, 0.0],  # the failed sample is excluded; the rest still compare
               [None, 1.0]]       # one sample left: dropped
    batch = build_rollout_batch(generations, rewards, "grpo")
    assert batch.group_ids == [0, 0, 2, 2]
    assert [round(a, 4) for a in batch.advantages] == [-1.0, 1.0, 1.0, -1.0]
    assert batch.response_token_ids == [[10], [11], [10], [12]]
    assert batch.rewards == [0.0, 1.0, 1.0, 0.0]


def test_flat_groups_kept_when_asked_and_rloo():
    batch = build_rollout_batch([gen(0, 2)], [[0.5, 0.5]], "grpo", skip_flat_groups=False)
    assert batch.advantages == [0.0, 0.0]
    batch = build_rollout_batch([gen(0, 3)], [[1.0, 2.0, 3.0]], "rloo")
    assert batch.advantages == [-1.5, 0.0, 1.5]


def test_shards_partition_the_batch():
    batch = build_rollout_batch([gen(i, 2) for i in range(3)], [[0.0, 1.0]] * 3, "grpo")
    shards = [batch.shard(r, 2) for r in range(2)]
    assert len(shards[0]) == 4 and len(shards[1]) == 2  # groups 0 and 2 | group 1
    assert sorted(shards[0].advantages + shards[1].advantages) == sorted(batch.advantages)


def test_preference_pairs_best_and_worst_above_margin():
    from tao_ray.core.batch import build_preference_batch

    generations = [gen(0, 3), gen(1, 3), gen(2, 2)]
    rewards = [[0.5, 1.0, 0.0], [0.5, 0.6, 0.55], [None, 1.0]]
    batch = build_preference_batch(generations, rewards, min_margin=0.2)
    # group 0: chosen sample 1 (1.0), rejected sample 2 (0.0); group 1: gap 0.1 <= 0.2, no pair; group 2: one left
    assert batch.response_token_ids == [[11], [12]] and batch.advantages == [1.0, -1.0]
    assert batch.group_ids == [0, 0]


def test_best_of_n_takes_the_top_sample_above_threshold():
    from tao_ray.core.batch import build_best_of_n_batch

    batch = build_best_of_n_batch([gen(0, 3), gen(1, 2)], [[0.2, 0.9, 0.9], [0.1, 0.3]], min_score=0.5)
    assert batch.response_token_ids == [[11]] and batch.rewards == [0.9] and batch.group_ids == [0]


def test_shards_keep_groups_whole():
    from tao_ray.core.batch import build_preference_batch

    batch = build_preference_batch([gen(i, 2) for i in range(5)], [[0.0, 1.0]] * 5, min_margin=0.0)
    shards = [batch.shard(r, 2) for r in range(2)]
    assert [len(s) for s in shards] == [6, 4]
    for shard in shards:
        assert shard.group_ids[0::2] == shard.group_ids[1::2] and shard.advantages[0::2] == [1.0] * (len(shard) // 2)


# With scoring.normalize=group, learning scores are z-normalized per group while raw scores keep the scale the
# thresholds are written in. Here group 0's raw scores are (0.9, 0.2) and group 1's are (0.3, 0.25): normalized,
# both become (+1, -1), so only the raw scores can tell them apart.
RAW = [[0.9, 0.2], [0.3, 0.25]]
LEARNING = [[1.0, -1.0], [1.0, -1.0]]


def test_dpo_pairs_by_raw_margin():
    from tao_ray.core.batch import build_preference_batch

    batch = build_preference_batch([gen(0, 2), gen(1, 2)], RAW, min_margin=0.1)
    # group 0: raw gap 0.7 > 0.1, a pair; group 1: raw gap 0.05 <= 0.1, no pair (its normalized gap would be 2)
    assert batch.group_ids == [0, 0] and batch.rewards == [0.9, 0.2] and batch.advantages == [1.0, -1.0]


def test_rft_threshold_compares_raw_scores():
    from tao_ray.core.batch import build_best_of_n_batch

    batch = build_best_of_n_batch([gen(0, 2), gen(1, 2)], RAW, min_score=0.5)
    # group 1's best is 0.3 raw (< 0.5) even though its normalized score is +1
    assert batch.group_ids == [0] and batch.rewards == [0.9]


def test_rollout_advantages_from_learning_scores_rewards_stay_raw():
    batch = build_rollout_batch([gen(0, 2), gen(1, 2)], RAW, "rloo", learning_rewards=LEARNING)
    # rloo on (1, -1): 1 - (-1) = 2 and -1 - 1 = -2 for both groups; the batch records the raw scores
    assert batch.advantages == [2.0, -2.0, 2.0, -2.0]
    assert batch.rewards == [0.9, 0.2, 0.3, 0.25]
    # "flat" is judged on the scores the advantages come from: equal raw scores, unequal learning ones, kept
    assert build_rollout_batch([gen(0, 2)], [[0.5, 0.5]], "grpo", learning_rewards=[[1.0, -1.0]]).group_ids == [0, 0]
