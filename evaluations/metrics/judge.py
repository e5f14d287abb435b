"""LLM-judge metrics: faithfulness, answer relevance and correctness, through an injected judge.

The judge is any ``complete(prompt: str) -> str`` callable, so the engine stays free of provider
clients (the web layer wires one from its runtime; tests script one). Each judgment asks for JSON,
tolerates code fences and stray prose around it, validates the shape, and on a bad reply sends ONE
repair request (the bad reply plus what was wrong). A judge that still fails, or whose call raises,
becomes a ``JudgeError`` recorded on that case: ``per_case`` holds ``None``, ``errors`` the message,
and the aggregate is the mean over the scored cases (``covered``) - never NaN, never a silent skip.

``repeats=n`` asks the judge n times per case (LLM judges are noisy even at temperature 0); the case
score is the mean of the runs that produced a score, and ``details[case]`` keeps every run plus the
spread (sample ``std``, ``min``, ``max``) so a report can flag cases the judge cannot agree with itself on.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from evaluations.metrics.base import MetricResult, make_result
from evaluations.metrics.judge_prompts import (
    DEFAULT_RUBRIC,
    PROMPT_VERSION,
    JudgeOutputError,
    correctness_prompt,
    faithfulness_prompt,
    parse_json_object,
    relevance_prompt,
    repair_prompt,
    validate_claims,
    validate_rating,
)

Complete = Callable[[str], str]


class JudgeError(Exception):
    """The judge could not score a case: its call failed, or its reply was unusable after one repair.

    ``outputs`` are the judge's raw replies (first answer, then the repair answer) for debugging.
    """

    def __init__(self, message: str, outputs: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.outputs = list(outputs)


@dataclass(frozen=True)
class JudgeCase:
    """What the judge sees for one case. ``contexts`` feed faithfulness, ``expected`` correctness."""

    question: str
    answer: str | None
    contexts: Sequence[str] = ()
    expected: str | None = None


@dataclass(frozen=True)
class Verdict:
    """One judgment: a score in 0..1 (``None`` when undefined for this case) and what backs it."""

    score: float | None
    detail: dict[str, Any] = field(default_factory=dict)


def ask_json(complete: Complete, prompt: str, validate: Callable[[dict[str, Any]], Any]) -> Any:
    """Ask ``prompt``, parse and ``validate`` the JSON reply, with one repair retry; else ``JudgeError``."""
    outputs: list[str] = []
    current = prompt
    error = ""
    for _ in range(2):  # the first ask and exactly one repair
        try:
            output = complete(current)
        except Exception as exc:  # any provider failure belongs to this case, not to the whole run
            raise JudgeError(f"judge call failed: {type(exc).__name__}: {exc}", outputs) from exc
        outputs.append(output)
        try:
            if not isinstance(output, str):
                raise JudgeOutputError(f"reply is {type(output).__name__}, not text")
            return validate(parse_json_object(output))
        except JudgeOutputError as exc:
            error = str(exc)
        current = repair_prompt(prompt, str(output), error)
    raise JudgeError(f"invalid judge output after one repair: {error}", outputs)


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def judge_faithfulness(case: JudgeCase, complete: Complete) -> Verdict:
    """Share of the answer's claims that the retrieved contexts support.

    Undefined (``None``) for a blank answer or one the judge finds no claim in: there is nothing that
    could be unfaithful, and scoring it 1 or 0 would both be made up.
    """
    if _blank(case.answer):
        return Verdict(None, {"reason": "no answer: nothing to check"})
    claims = ask_json(complete, faithfulness_prompt(case.question, case.contexts, case.answer),
                      validate_claims)
    if not claims:
        return Verdict(None, {"claims": [], "reason": "the judge found no claims"})
    return Verdict(sum(c["supported"] for c in claims) / len(claims), {"claims": claims})


def judge_relevance(case: JudgeCase, complete: Complete) -> Verdict:
    """How well the answer addresses the question: judge's 1-5 mapped to 0..1. Blank answers score 0."""
    if _blank(case.answer):
        return Verdict(0.0, {"reason": "no answer"})
    score, reason = ask_json(complete, relevance_prompt(case.question, case.answer), validate_rating)
    return Verdict(score, {"reason": reason})


def judge_correctness(case: JudgeCase, complete: Complete, rubric: str = DEFAULT_RUBRIC) -> Verdict:
    """Agreement with the expected answer under ``rubric``: 1-5 mapped to 0..1. Blank answers score 0."""
    if case.expected is None:
        raise ValueError("correctness needs an expected answer")
    if _blank(case.answer):
        return Verdict(0.0, {"reason": "no answer"})
    prompt = correctness_prompt(case.question, case.expected, case.answer, rubric)
    score, reason = ask_json(complete, prompt, validate_rating)
    return Verdict(score, {"reason": reason})


def spread(scores: Sequence[float]) -> dict[str, Any]:
    """Mean and spread of repeated scores: sample std (0.0 for a single score), min, max."""
    if not scores:
        return {"scores": [], "mean": None, "std": None, "min": None, "max": None}
    return {
        "scores": list(scores),
        "mean": math.fsum(scores) / len(scores),
        "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        "min": min(scores),
        "max": max(scores),
    }


@dataclass
class CaseOutcome:
    """A case's score over its repeats, or the error that left it unscored."""

    score: float | None
    error: str | None
    details: dict[str, Any]
    failed_runs: int = 0


def score_case(judge: Callable[[JudgeCase, Complete], Verdict], case: JudgeCase, complete: Complete,
               repeats: int = 1) -> CaseOutcome:
    """Run ``judge`` ``repeats`` times on one case (for runners that schedule cases themselves)."""
    runs: list[dict[str, Any]] = []
    scores: list[float] = []
    failures: list[str] = []
    for _ in range(repeats):
        try:
            verdict = judge(case, complete)
        except JudgeError as exc:
            failures.append(exc.message)
            runs.append({"error": exc.message, "outputs": exc.outputs})
            continue
        runs.append({"score": verdict.score, **verdict.detail})
        if verdict.score is not None:
            scores.append(verdict.score)
    details = {"runs": runs, **spread(scores), "failed_runs": len(failures)}
    if scores:
        return CaseOutcome(details["mean"], None, details, len(failures))
    if failures:
        error = failures[0] if repeats == 1 else f"all scoring runs failed ({len(failures)}/{repeats}): {failures[-1]}"
        return CaseOutcome(None, error, details, len(failures))
    return CaseOutcome(None, None, details)  # undefined for this case (reason in runs), not a failure


def run_judge(name: str, judge: Callable[[JudgeCase, Complete], Verdict], cases: Mapping[str, JudgeCase],
              complete: Complete, *, repeats: int = 1, max_workers: int = 1) -> MetricResult:
    """Score every case with ``judge`` and aggregate; ``max_workers > 1`` judges cases in threads."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    ids = list(cases)

    def one(case_id: str) -> CaseOutcome:
        return score_case(judge, cases[case_id], complete, repeats)

    if max_workers > 1:
        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            outcomes = list(pool.map(one, ids))
    else:
        outcomes = [one(case_id) for case_id in ids]
    per_case = {case_id: o.score for case_id, o in zip(ids, outcomes, strict=True)}
    errors = {case_id: o.error for case_id, o in zip(ids, outcomes, strict=True) if o.error}
    details = {case_id: o.details for case_id, o in zip(ids, outcomes, strict=True)}
    stds = [o.details["std"] for o in outcomes if o.details["std"] is not None]
    summary = {
        "repeats": repeats,
        "covered": sum(1 for v in per_case.values() if v is not None),
        "errors": len(errors),
        "failed_runs": sum(o.failed_runs for o in outcomes),
        "mean_std": math.fsum(stds) / len(stds) if stds else None,
        "max_std": max(stds) if stds else None,
        "prompt_version": PROMPT_VERSION,
    }
    return make_result(name, per_case, errors=errors, details=details, summary=summary)


def faithfulness(cases: Mapping[str, JudgeCase], complete: Complete, *, repeats: int = 1,
                 max_workers: int = 1) -> MetricResult:
    """Faithfulness of each answer to its retrieved contexts (supported claims / claims)."""
    return run_judge("faithfulness", judge_faithfulness, cases, complete, repeats=repeats,
                     max_workers=max_workers)


def answer_relevance(cases: Mapping[str, JudgeCase], complete: Complete, *, repeats: int = 1,
                     max_workers: int = 1) -> MetricResult:
    """Relevance of each answer to its question, judged 1-5 and normalised to 0..1."""
    return run_judge("answer_relevance", judge_relevance, cases, complete, repeats=repeats,
                     max_workers=max_workers)


def correctness(cases: Mapping[str, JudgeCase], complete: Complete, *, rubric: str = DEFAULT_RUBRIC,
                repeats: int = 1, max_workers: int = 1) -> MetricResult:
    """Correctness against each case's expected answer under ``rubric``, 1-5 normalised to 0..1.

    Every case must have ``expected``; a missing one raises ``ValueError`` before any judge call.
    """
    missing = [case_id for case_id, case in cases.items() if case.expected is None]
    if missing:
        raise ValueError(f"correctness needs an expected answer; missing for {missing}")

    def judge(case: JudgeCase, complete: Complete) -> Verdict:
        return judge_correctness(case, complete, rubric)

    return run_judge("correctness", judge, cases, complete, repeats=repeats, max_workers=max_workers)
