import pytest

from tao_ray.rewards.judge import (
    DEFAULT_PAIRWISE_RUBRIC,
    DEFAULT_RUBRIC,
    pairwise_messages,
    pairwise_score,
    parse_pairwise,
    parse_pointwise,
    pointwise_messages,
    render_conversation,
    truncate_head,
)

PROMPT = [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": "Name a colour. Use only lowercase letters."}]


# ---- pointwise parsing ----

@pytest.mark.parametrize("text, score", [
    ("Score: 7", 7),
    ("The response follows the instruction.\nScore: 8", 8),
    ("**Score:** 7", 7),
    ("**Score: 9**", 9),
    ("Score: **6**", 6),
    ("### Final score: 4", 4),
    ("score: 5", 5),
    ("SCORE:10", 10),
    ("Score = 7", 7),
    ("Rating: 3", 3),
    ("Rating: [[8]]", 8),
    ("Overall Grade: 2", 2),
    ("Score (1-10): 9", 9),
    ("Score: 7.5", 7.5),
    ("Score: 1", 1),
    ("Score: 7/10", 7),
    ("Score: 7 out of 10.", 7),
    ("Score: 7. The response could be shorter, but it follows the rules.", 7),
    ("Score: 7, because it is correct.", 7),
    ("Score: 7 (good)", 7),
    ("7/10", 7),
    ("I would rate this response 8/10 overall.", 8),
    ("It gets 6.5 out of 10.", 6.5),
])
def test_pointwise_reads_score_markers(text, score):
    assert parse_pointwise(text) == pytest.approx((score - 1) / 9)


def test_pointwise_seven_out_of_ten_is_two_thirds():
    assert parse_pointwise("7/10") == pytest.approx(2 / 3)


def test_pointwise_last_marker_wins():
    text = "First impression: Score: 3\nOn reflection the answer is correct.\nScore: 9"
    assert parse_pointwise(text) == pytest.approx(8 / 9)
    assert parse_pointwise("Score: 9\n\nScore: 11") is None  # the final verdict decides, even when it is broken


def test_pointwise_explicit_marker_beats_fractions_in_prose():
    assert parse_pointwise("It meets 3/10 of the style goals.\nScore: 6") == pytest.approx(5 / 9)
    assert parse_pointwise("Score: 6\nIt meets 3/10 of the style goals.") == pytest.approx(5 / 9)


def test_pointwise_ignores_text_after_the_score_line():
    assert parse_pointwise("Reasoning: fine.\nScore: 8\n\nNote: the user asked for lowercase.") == pytest.approx(7 / 9)


@pytest.mark.parametrize("text", [
    "Score: 11",
    "Score: 0",
    "Score: -3",
    "Score: 75",
    "11/10",
    "Score: 7/5",      # another scale: not guessed
    "Score: 70%",
    "Score: 7-8",      # a range is not one score
    "Score: 7 or 8",
    "Score: 7 to 8",
    "Score: N",        # the template parroted back
    "I'd give it a 7",
    "The response has 3 bullet points and 2 paragraphs.",
    "This is a good answer overall",
    "",
    "   \n  ",
])
def test_pointwise_refuses_to_invent(text):
    assert parse_pointwise(text) is None


def test_pointwise_accepts_a_bare_final_number_only():
    assert parse_pointwise("The response is correct and brief.\n8") == pytest.approx(7 / 9)
    assert parse_pointwise("**9**") == pytest.approx(8 / 9)
    assert parse_pointwise("7.") == pytest.approx(2 / 3)
    assert parse_pointwise("The response is correct.\n12") is None
    assert parse_pointwise("8\nThe response is correct.") is None  # the number is not the final line


def test_pointwise_scores_are_normalized_to_the_unit_interval():
    assert parse_pointwise("Score: 1") == 0.0
    assert parse_pointwise("Score: 10") == 1.0


# ---- pairwise parsing ----

@pytest.mark.parametrize("text, verdict", [
    ("Winner: A", 1.0),
    ("Winner: B", 0.0),
    ("Winner: tie", 0.5),
    ("winner: TIE", 0.5),
    ("Winner: draw", 0.5),
    ("Winner: equal", 0.5),
    ("Winner: a tie", 0.5),
    ("Winner: Both are equally good", 0.5),
    ("**Winner:** B", 0.0),
    ("**Winner: A**", 1.0),
    ("Winner: **Response A**", 1.0),
    ("Winner: Response B", 0.0),
    ("Winner: Assistant A", 1.0),
    ("Winner: [[B]]", 0.0),
    ("Final verdict: [[A]]", 1.0),
    ("[[B]]", 0.0),
    ("Better: B", 0.0),
    ("Better response: A", 1.0),
    ("Winner: A (Response B ignores the lowercase rule)", 1.0),
    ("Winner: A.", 1.0),
    ("winner: b", 0.0),
    ("Response B uses uppercase letters.\nWinner: A", 1.0),
    ("Winner: A\nOn second thought, A missed the rule.\nWinner: B", 0.0),
    ("Both responses are fine, but A is shorter.\nA", 1.0),
    ("Tie", 0.5),
])
def test_pairwise_reads_verdicts(text, verdict):
    assert parse_pairwise(text) == verdict


@pytest.mark.parametrize("text", [
    "Winner: A or B",
    "Winner: A/B",
    "Winner: Neither",
    "Winner: a close call",
    "Response A is better.",
    "I prefer the first response.",
    "Winner: A\nWinner: A and B",
    "",
])
def test_pairwise_unreadable_or_ambiguous_is_none(text):
    assert parse_pairwise(text) is None


def test_pairwise_both_letters_with_a_tie_word_is_a_tie():
    assert parse_pairwise("Winner: A and B are equal") == 0.5


# ---- position-bias control ----

@pytest.mark.parametrize("first, second, expected", [
    (1.0, 0.0, 1.0),    # candidate wins in both orders
    (0.0, 1.0, 0.0),    # reference wins in both orders
    (1.0, 1.0, 0.5),    # the judge always picks A: position bias cancels out
    (0.0, 0.0, 0.5),    # always B
    (0.5, 0.5, 0.5),
    (1.0, 0.5, 0.75),
    (1.0, None, 1.0),
    (None, 0.0, 1.0),
    (None, 1.0, 0.0),
    (None, None, None),
])
def test_pairwise_score_combines_both_orders(first, second, expected):
    assert pairwise_score(first, second) == expected


# ---- message builders ----

def test_pointwise_messages_hold_rubric_conversation_response_and_end_with_the_format():
    messages = pointwise_messages(DEFAULT_RUBRIC, PROMPT, "blue")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == DEFAULT_RUBRIC and "Score: N" in DEFAULT_RUBRIC
    user = messages[1]["content"]
    assert "System: Be brief." in user and "User: Name a colour." in user
    assert "[Response to grade]\nblue\n[End of response]" in user
    assert user.rstrip().splitlines()[-1].startswith("End with a line exactly: Score: N")


def test_pairwise_messages_hold_both_responses_in_order_and_end_with_the_format():
    messages = pairwise_messages(DEFAULT_PAIRWISE_RUBRIC, PROMPT, "blue", "RED")
    assert messages[0]["content"] == DEFAULT_PAIRWISE_RUBRIC and "Winner: tie" in DEFAULT_PAIRWISE_RUBRIC
    user = messages[1]["content"]
    assert user.index("[Response A]\nblue") < user.index("[Response B]\nRED")
    assert user.rstrip().endswith("Winner: A, Winner: B or Winner: tie")


def test_custom_rubric_is_used_verbatim():
    assert pointwise_messages("Grade the SQL.", PROMPT, "x")[0]["content"] == "Grade the SQL."


def test_prior_turns_are_rendered_as_user_and_assistant_text():
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
             {"role": "user", "content": "Now in French."}]
    assert render_conversation(turns) == "User: Hi\n\nAssistant: Hello!\n\nUser: Now in French."


def test_caps_keep_the_response_head_and_both_ends_of_the_conversation():
    response = "start " + "x" * 5000
    assert truncate_head(response, 100).startswith("start ") and len(truncate_head(response, 100)) < 130
    assert truncate_head("short", 100) == "short"
    long_prompt = [{"role": "user", "content": "Instructions first. " + "y" * 5000 + " The question?"}]
    user = pointwise_messages(DEFAULT_RUBRIC, long_prompt, response, 200)[1]["content"]
    assert "Instructions first." in user and "The question?" in user and "start " in user
    assert len(user) < 1000 and user.rstrip().endswith("(N is an integer from 1 to 10).")
