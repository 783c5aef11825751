from tao_ray.core import microbatch


def test_count_by_rows_and_by_tokens():
    assert microbatch.count([10] * 8, max_rows=4, max_tokens=None) == 2
    assert microbatch.count([100] * 8, max_rows=8, max_tokens=250) == 4  # 800 tokens / 250 -> 4
    assert microbatch.count([10] * 6, max_rows=3, max_tokens=None, unit=2) == 3  # pairs: 2 rows per micro-batch
    assert microbatch.count([], max_rows=4, max_tokens=100) == 1


def test_split_groups_rows_of_similar_length_and_keeps_every_row_once():
    lengths = [100, 10, 10, 10, 10, 100, 10, 10]
    chunks = microbatch.split(lengths, 2)
    assert sorted(i for c in chunks for i in c) == list(range(8))
    assert [len(c) for c in chunks] == [4, 4]  # never more rows than count() planned
    # Each micro-batch is padded to its longest row: 4x10 + 4x100 tokens computed, not 4x100 + 4x100.
    assert sorted(len(c) * max(lengths[i] for i in c) for c in chunks) == [40, 400]
    assert all(c == sorted(c) for c in chunks)


def test_split_keeps_pairs_whole_and_fills_every_part_when_possible():
    chunks = microbatch.split([5, 5, 50, 50, 5, 5], 3, unit=2)
    assert chunks == [[0, 1], [4, 5], [2, 3]]  # shortest pairs first
    assert microbatch.split([5, 50, 5, 50], 2, unit=2) == [[0, 1], [2, 3]]  # equal pairs keep batch order
    assert microbatch.split([5, 5], 3) == [[0], [1], []]


def test_split_with_groups_keeps_each_group_in_one_chunk():
    """Rows of a group (one prompt) are interleaved in the batch; with group ids each chunk takes whole groups,
    ordered by the group's tokens, so the shared-prompt packing computes each prompt once."""
    group_ids = [0, 1, 2, 3] * 4
    lengths = [10 + 5 * g for g in group_ids]
    chunks = microbatch.split(lengths, 2, 1, group_ids)
    assert sorted(j for c in chunks for j in c) == list(range(16))
    assert [sorted({group_ids[j] for j in c}) for c in chunks] == [[0, 1], [2, 3]]
