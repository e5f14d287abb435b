"""LLM-judge metrics driven by a scripted fake ``complete`` callable."""
from __future__ import annotations

import json
import threading
from collections import deque

import pytest

from evaluations.metrics import judge
from evaluations.metrics.judge import JudgeCase, JudgeError, ask_json
from evaluations.metrics.judge_prompts import parse_json_object, validate_rating


class Scripted:
    """Replies in order (an Exception instance is raised instead) and records every prompt."""

    def __init__(self, *replies):
        self.replies = deque(replies)
        self.prompts = []
        self._lock = threading.Lock()

    def __call__(self, prompt: str) -> str:
        with self._lock:
            self.prompts.append(prompt)
            reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply


def rating(score, reason="because"):
    return json.dumps({"score": score, "reason": reason})


CASE = JudgeCase(question="Where is the Eiffel Tower?", answer="In Paris, built in 1889.",
                 contexts=["The Eiffel Tower is in Paris."], expected="Paris")


def test_faithfulness_counts_supported_claims():
    claims = {"claims": [{"claim": "It is in Paris", "supported": True},
                         {"claim": "It was built in 1889", "supported": False},
                         {"claim": "It is a tower", "supported": True}]}
    fake = Scripted(json.dumps(claims))
    result = judge.faithfulness({"c1": CASE}, fake)
    assert result.per_case == {"c1": pytest.approx(2 / 3)}  # 2 of 3 claims supported
    assert result.score == pytest.approx(2 / 3) and result.errors == {}
    assert result.details["c1"]["runs"][0]["claims"][1]["supported"] is False
    assert "The Eiffel Tower is in Paris." in fake.prompts[0] and CASE.answer in fake.prompts[0]


def test_fenced_json_and_surrounding_prose_are_accepted():
    fake = Scripted("```json\n" + rating(4, "mostly") + "\n```", "Sure, here it is: " + rating(2) + " Thanks!")
    result = judge.answer_relevance({"a": CASE, "b": CASE}, fake)
    # 1-5 maps to 0..1 as (score - 1) / 4: 4 -> 0.75, 2 -> 0.25
    assert result.per_case == {"a": 0.75, "b": 0.25}
    assert result.details["a"]["runs"][0]["reason"] == "mostly"
    assert len(fake.prompts) == 2  # no repair was needed


def test_invalid_output_is_repaired_once():
    fake = Scripted("I think it deserves a 4.", rating(5))
    result = judge.answer_relevance({"c": CASE}, fake)
    assert result.per_case == {"c": 1.0} and result.errors == {}
    original, repair = fake.prompts
    assert repair.startswith(original)  # the task is repeated...
    assert "I think it deserves a 4." in repair  # ...with the bad reply...
    assert "no JSON object found" in repair  # ...and what was wrong with it


def test_wrong_shape_is_repaired_too():
    fake = Scripted(rating(7), json.dumps({"score": "4"}), rating(3))
    # first case: out of range, then a string score -> still invalid after the one repair
    result = judge.correctness({"c": CASE}, fake)
    assert result.per_case == {"c": None}
    assert "integer from 1 to 5" in result.errors["c"]
    assert fake.replies == deque([rating(3)])  # exactly two calls were spent on the case


def test_invalid_twice_is_an_error_counted_not_nan():
    fake = Scripted("nope", "still nope", rating(5), rating(1))
    result = judge.answer_relevance({"bad": CASE, "good": CASE, "low": CASE}, fake)
    assert result.per_case == {"bad": None, "good": 1.0, "low": 0.0}
    assert result.errors["bad"].startswith("invalid judge output after one repair")
    assert result.details["bad"]["runs"][0]["outputs"] == ["nope", "still nope"]
    # the aggregate is over the 2 scored cases, and says so
    assert result.score == pytest.approx(0.5)
    assert (result.covered, result.total) == (2, 3)
    assert result.summary["errors"] == 1 and result.summary["covered"] == 2


def test_a_failing_call_is_recorded_without_repair():
    fake = Scripted(TimeoutError("judge timed out"))
    result = judge.answer_relevance({"c": CASE}, fake)
    assert result.per_case == {"c": None} and result.score is None
    assert result.errors["c"] == "judge call failed: TimeoutError: judge timed out"
    assert len(fake.prompts) == 1


def test_ask_json_raises_judge_error_with_outputs():
    with pytest.raises(JudgeError) as info:
        ask_json(Scripted("[1, 2]", "{bad json"), "prompt", validate_rating)
    assert info.value.outputs == ["[1, 2]", "{bad json"]
    assert "invalid JSON" in info.value.message


def test_repeats_report_mean_and_spread():
    fake = Scripted(rating(5), rating(3), rating(4))
    result = judge.answer_relevance({"c": CASE}, fake, repeats=3)
    d = result.details["c"]
    # scores 1.0, 0.5, 0.75: mean 0.75; sample std = sqrt(((.25)^2 + (.25)^2 + 0) / 2) = 0.25
    assert d["scores"] == [1.0, 0.5, 0.75]
    assert (d["mean"], d["std"], d["min"], d["max"]) == (pytest.approx(0.75), pytest.approx(0.25), 0.5, 1.0)
    assert result.per_case["c"] == pytest.approx(0.75)
    assert result.summary["repeats"] == 3 and result.summary["mean_std"] == pytest.approx(0.25)


def test_repeats_with_a_failed_run_use_the_others_and_say_so():
    fake = Scripted(rating(5), "x", "y", rating(3))
    result = judge.answer_relevance({"c": CASE}, fake, repeats=3)  # the 2nd run fails twice
    assert result.per_case["c"] == pytest.approx(0.75)  # mean of 1.0 and 0.5
    assert result.details["c"]["failed_runs"] == 1 and result.summary["failed_runs"] == 1
    assert result.errors == {}


def test_all_repeats_failing_is_an_error():
    fake = Scripted("a", "b", "c", "d")
    result = judge.answer_relevance({"c": CASE}, fake, repeats=2)
    assert result.per_case == {"c": None}
    assert result.errors["c"].startswith("all scoring runs failed (2/2)")


def test_correctness_uses_the_rubric_and_needs_expected():
    fake = Scripted(rating(4))
    result = judge.correctness({"c": CASE}, fake, rubric="5: perfect\n1: wrong")
    assert result.per_case == {"c": 0.75}
    assert "5: perfect" in fake.prompts[0] and "EXPECTED ANSWER:\nParis" in fake.prompts[0]
    with pytest.raises(ValueError, match="expected answer"):
        judge.correctness({"x": JudgeCase("q", "a")}, Scripted())


def test_undefined_faithfulness_is_none_without_an_error():
    fake = Scripted(json.dumps({"claims": []}))
    cases = {"blank": JudgeCase("q", "  "), "no_claims": JudgeCase("q", "Hmm.")}
    result = judge.faithfulness(cases, fake)
    assert result.per_case == {"blank": None, "no_claims": None} and result.errors == {}
    assert result.score is None
    assert len(fake.prompts) == 1  # a blank answer is not sent to the judge
    assert result.details["no_claims"]["runs"][0]["reason"] == "the judge found no claims"


def test_blank_answers_score_zero_for_relevance():
    result = judge.answer_relevance({"c": JudgeCase("q", None)}, Scripted())
    assert result.per_case == {"c": 0.0}


def test_cases_can_be_judged_concurrently():
    def complete(prompt: str) -> str:
        return rating(5 if "good answer" in prompt else 1)

    cases = {f"c{i}": JudgeCase("q", "good answer" if i % 2 else "bad answer") for i in range(20)}
    result = judge.answer_relevance(cases, complete, max_workers=4)
    assert list(result.per_case) == list(cases)  # order of the input kept
    assert result.score == pytest.approx(0.5)


def test_parse_json_object_variants():
    assert parse_json_object('```\n{"a": 1}\n```') == {"a": 1}
    assert parse_json_object('Answer: {"a": {"b": 2}} trailing') == {"a": {"b": 2}}
    with pytest.raises(ValueError):
        parse_json_object("[]")


def test_repeats_must_be_positive():
    with pytest.raises(ValueError, match="repeats"):
        judge.answer_relevance({"c": CASE}, Scripted(), repeats=0)
