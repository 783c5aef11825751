"""The scorer's composition and isolation, with real components (no Ray: ScorerActor is a plain class underneath)."""

import dataclasses
import time

import pytest

from tao_ray.actors.scorer import ScorerActor
from tao_ray.config import ScoringSection


def scoring(**changes) -> dict:
    section = dataclasses.asdict(ScoringSection())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = section
        for part in parents:
            node = node[part]
        node[leaf] = value
    return section


RECORD = {"id": "p", "messages": [{"role": "user", "content": "hi"}], "constraints": [{"type": "lowercase"}],
          "metadata": {}, "answer": None, "reference_sql": None, "reference_response": None}


def test_weighted_sum_logs_each_component():
    scorer = ScorerActor("0.5*constraints + 2*function",
                         scoring(function__target="tests.rewards.sample_rewards:length_reward"))
    scores = scorer.score([RECORD], [["abc", "ABC" * 10]])
    # constraints: 1, 0; length/100: 0.03, 0.30 -> 0.5*1 + 2*0.03 = 0.56; 0.5*0 + 2*0.3 = 0.6
    assert scores.raw[0] == pytest.approx([0.56, 0.6]) and scores.failed == 0
    assert scores.learning == scores.raw  # no normalization: advantages see the raw scores
    assert scores.components == {"constraints": [[1.0, 0.0]], "function": [[pytest.approx(0.03), pytest.approx(0.3)]]}
    stats = scorer.take_stats()
    assert stats["reward/constraints"] == pytest.approx(0.5) and stats["reward/function"] == pytest.approx(0.165)
    assert stats["scoring/failed"] == 0 and scorer.take_stats()["reward/constraints"] is None  # taken: reset


def test_a_hanging_sample_is_excluded_counted_and_the_rest_scored():
    scorer = ScorerActor("function", scoring(function__target="tests.rewards.isolation_targets:behave",
                                             timeout_s=0.5))
    started = time.perf_counter()
    scores = scorer.score([RECORD, RECORD], [["ok", "sleep"], ["raise", "ok"]])
    assert scores.raw == [[1.0, None], [None, 1.0]] and scores.failed == 2
    assert time.perf_counter() - started < 30
    reasons = scorer.take_stats()["scoring/failure_reasons"]
    assert any("timed out" in r for r in reasons) and any("ValueError: bad" in r for r in reasons)


def test_group_normalization_puts_components_on_one_scale_and_keeps_raw_scores():
    scorer = ScorerActor("0.5*constraints + 2*function",
                         scoring(function__target="tests.rewards.sample_rewards:length_reward"), normalize=True)
    scores = scorer.score([RECORD], [["a" * 10, "A" * 30]])
    # constraints 1, 0 -> z: 1, -1; length/100 0.1, 0.3 -> z: -1, 1. learning: 0.5*1 + 2*(-1) = -1.5 and 1.5;
    # raw: 0.5*1 + 2*0.1 = 0.7 and 0.5*0 + 2*0.3 = 0.6 (what thresholds and the reported means compare)
    assert scores.learning == [[pytest.approx(-1.5), pytest.approx(1.5)]]
    assert scores.raw == [[pytest.approx(0.7), pytest.approx(0.6)]]


def test_a_service_that_is_down_loses_only_its_batch():
    scorer = ScorerActor("constraints + http", scoring(http__url="http://127.0.0.1:9/score", http__retries=0,
                                                       http__timeout_s=0.5))
    scores = scorer.score([RECORD], [["abc", "def"]])
    assert scores.raw == scores.learning == [[None, None]] and scores.failed == 2
    assert "http: batch of 2: RewardServiceError" in scorer.take_stats()["scoring/failure_reasons"][0]


def test_sql_scorer_through_the_composition(tmp_path):
    import sqlite3

    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE items (name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [("pen", 1.5), ("book", 12.0)])
    before = database.read_bytes()
    record = {**RECORD, "reference_sql": "SELECT name FROM items WHERE price > 5"}
    scorer = ScorerActor("sql", scoring(sql__database=str(database)))
    scores = scorer.score([record], [["```sql\nSELECT name FROM items WHERE price > 10\n```",
                                              "SELECT name FROM items", "DROP TABLE items"]])
    assert scores.raw == [[1.0, 0.25, 0.0]] and scores.failed == 0
    assert database.read_bytes() == before


def test_adaptive_sampling_normalizes_over_the_whole_group():
    """The generator's adaptive flow without Ray: the sampler scores parts of a group as it grows; the group is
    normalized once it is whole, with the scorer's own composition."""
    from tao_ray.core.composition import z_normalize
    from tao_ray.core.sampling import Sample, Sampler, SamplingPlan, whole_group_scores

    texts = iter(["a" * 10, "a" * 30, "a" * 20, "a" * 40])
    draw = lambda requests: [[Sample(next(texts), [1]) for _ in range(count)] for _, count in requests]  # noqa: E731
    scorer = ScorerActor("function", scoring(function__target="tests.rewards.sample_rewards:length_reward"),
                         normalize=True)
    plan = SamplingPlan("adaptive", n=4, max_draws=4, settle_after=2)
    (group,) = Sampler(plan, draw, score=lambda indices, parts: scorer.score([RECORD] * len(parts), parts)).run(
        [RECORD["messages"]])
    assert group.drawn == 4 and group.scores == pytest.approx([0.1, 0.3, 0.2, 0.4])  # raw: what settling compares
    final = whole_group_scores([group], scorer.get_composition())
    assert final.raw == [pytest.approx([0.1, 0.3, 0.2, 0.4])]
    # z over all four (mean 0.25), not per call: per call, (0.1, 0.3) and (0.2, 0.4) would both become (-1, 1)
    assert final.learning == [pytest.approx(z_normalize([[0.1, 0.3, 0.2, 0.4]])[0])]
    assert final.learning[0][0] == pytest.approx(-0.15 / 0.0125 ** 0.5)
