from tao_ray.batch import Generation, build_rollout_batch


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
    assert len(shards[0]) == 3 and len(shards[1]) == 3
    assert sorted(shards[0].advantages + shards[1].advantages) == sorted(batch.advantages)
