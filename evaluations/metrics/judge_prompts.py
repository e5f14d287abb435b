"""Prompts for the LLM-judge metrics and the parsing/validation of the judge's JSON replies.

Kept apart from ``judge.py`` so prompt wording can be reviewed (and versioned) on its own: a change here
changes every judged score, and reports record ``PROMPT_VERSION`` for that reason.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

PROMPT_VERSION = "1"

DEFAULT_RUBRIC = """\
5: fully correct and complete; agrees with the expected answer on every point that matters.
4: correct, with a minor omission or imprecision that would not mislead.
3: partly correct: the main point is right but something important is missing or wrong.
2: mostly incorrect; only a minor point agrees with the expected answer.
1: incorrect, contradicts the expected answer, or does not answer."""

_FAITHFULNESS = """\
You check whether an answer is supported by retrieved context.
Split the ANSWER into short, self-contained factual claims. For each claim decide whether the CONTEXT
alone supports it (true) or not (false). Do not use outside knowledge.

QUESTION:
{question}

CONTEXT:
{context}

ANSWER:
{answer}

Reply with JSON only, no prose, in exactly this shape:
{{"claims": [{{"claim": "<claim text>", "supported": true}}]}}"""

_RELEVANCE = """\
You rate how well an answer addresses a question (not whether it is true).
5 = answers the question directly and completely; 3 = partly on topic or incomplete;
1 = does not address the question.

QUESTION:
{question}

ANSWER:
{answer}

Reply with JSON only, no prose, in exactly this shape:
{{"score": <integer 1-5>, "reason": "<one sentence>"}}"""

_CORRECTNESS = """\
You grade an answer against the expected answer using this rubric:
{rubric}

QUESTION:
{question}

EXPECTED ANSWER:
{expected}

ANSWER TO GRADE:
{answer}

Reply with JSON only, no prose, in exactly this shape:
{{"score": <integer 1-5>, "reason": "<one sentence>"}}"""

_REPAIR = """\
{prompt}

Your previous reply could not be used: {error}
Previous reply:
{output}

Reply again with valid JSON only, in exactly the shape asked for above."""


def faithfulness_prompt(question: str, contexts: Sequence[str], answer: str) -> str:
    """Prompt asking the judge to list the answer's claims and mark each as supported or not."""
    context = "\n\n".join(f"[{i}] {c}" for i, c in enumerate(contexts, start=1)) or "(no context)"
    return _FAITHFULNESS.format(question=question, context=context, answer=answer)


def relevance_prompt(question: str, answer: str) -> str:
    """Prompt asking for a 1-5 rating of how well the answer addresses the question."""
    return _RELEVANCE.format(question=question, answer=answer)


def correctness_prompt(question: str, expected: str, answer: str, rubric: str = DEFAULT_RUBRIC) -> str:
    """Prompt asking for a 1-5 grade of the answer against the expected answer and a rubric."""
    return _CORRECTNESS.format(rubric=rubric, question=question, expected=expected, answer=answer)


def repair_prompt(prompt: str, output: str, error: str) -> str:
    """The one repair request: the original task, the unusable reply and what was wrong with it."""
    return _REPAIR.format(prompt=prompt, output=output, error=error)


class JudgeOutputError(ValueError):
    """The judge's reply is not the JSON that was asked for (message says what is wrong)."""


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def parse_json_object(output: str) -> dict[str, Any]:
    """The first JSON object in ``output``: inside a code fence if there is one, else the first ``{``.

    Models wrap JSON in fences or add a sentence before it even when told not to; both are harmless,
    so they are tolerated here instead of spending a repair round-trip on them.
    """
    fenced = _FENCE.search(output)
    text = fenced.group(1) if fenced else output
    start = text.find("{")
    if start < 0:
        raise JudgeOutputError("no JSON object found")
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise JudgeOutputError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JudgeOutputError("the JSON is not an object")
    return value


def validate_claims(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """``{"claims": [{"claim": str, "supported": bool}, ...]}`` -> the list of claims."""
    claims = obj.get("claims")
    if not isinstance(claims, list):
        raise JudgeOutputError('"claims" must be a list')
    out = []
    for i, item in enumerate(claims):
        if not isinstance(item, dict) or not isinstance(item.get("claim"), str):
            raise JudgeOutputError(f'claims[{i}] must be an object with a string "claim"')
        # Strict bool: a string "false" is truthy, and guessing would flip verdicts silently.
        if not isinstance(item.get("supported"), bool):
            raise JudgeOutputError(f'claims[{i}].supported must be true or false')
        out.append({"claim": item["claim"], "supported": item["supported"]})
    return out


def validate_rating(obj: dict[str, Any]) -> tuple[float, str | None]:
    """``{"score": 1-5, "reason": str}`` -> (score in 0..1, reason). Whole numbers only."""
    score = obj.get("score")
    whole = isinstance(score, int) or (isinstance(score, float) and score.is_integer())
    if isinstance(score, bool) or not whole:
        raise JudgeOutputError('"score" must be an integer from 1 to 5')
    if not 1 <= score <= 5:
        raise JudgeOutputError(f'"score" must be from 1 to 5, got {score}')
    reason = obj.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise JudgeOutputError('"reason" must be a string')
    return (float(score) - 1.0) / 4.0, reason
