"""An evaluation suite's metrics: parse what a user asked for, score one case, aggregate a run.

The runner (in the web service) calls a target once per case and hands what came back to
``score_case`` as a ``CaseOutput``; the per-case scores are stored, so a run can resume after a crash
and ``aggregate`` can be recomputed from them at any time. Nothing here knows about HTTP or databases.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaluations.metrics import answer as answer_metrics
from evaluations.metrics import judge as judges
from evaluations.metrics import retrieval as retrieval_metrics
from evaluations.stats import bootstrap_ci

RETRIEVAL = ("hit", "hit_rate", "recall", "precision", "mrr", "ndcg", "map")
ANSWER = ("exact_match", "token_f1", "rouge_l", "semantic_similarity", "contains", "regex",
          "no_answer_accuracy", "citation_precision")
JUDGE = ("faithfulness", "answer_relevance", "correctness")
KNOWN = RETRIEVAL + ANSWER + JUDGE
NEEDS_CUTOFF = ("hit", "hit_rate", "recall", "precision")
# Which metric families each target type can feed: a retrieval tool returns no answer, a prompt no passages.
FAMILIES_BY_TARGET = {
    "retrieval_tool": ("retrieval",),
    "rag_tool": ("retrieval", "answer", "judge"),
    "prompt_template": ("answer", "judge"),
    "agent": ("answer", "judge"),
}
DEFAULT_METRICS = {
    "retrieval_tool": ["hit@10", "recall@10", "mrr@10", "ndcg@10"],
    "rag_tool": ["hit@5", "ndcg@10", "token_f1", "no_answer_accuracy", "citation_precision"],
    "prompt_template": ["token_f1", "rouge_l"],
    "agent": ["token_f1", "rouge_l"],
}
MAX_CUTOFF = 1000
MAX_REPEATS = 10


class SuiteError(ValueError):
    """A metric list or threshold the suite cannot run; ``problems`` names each bad entry."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a suite: ``name`` as reported (``ndcg@10``), its family and parameters."""

    name: str
    base: str
    family: str
    k: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **({"k": self.k} if self.k is not None else {}), **dict(self.params)}


def _family(base: str) -> str:
    return "retrieval" if base in RETRIEVAL else "answer" if base in ANSWER else "judge"


def _parse_one(raw: Any) -> MetricSpec:
    params: dict[str, Any] = {}
    if isinstance(raw, Mapping):
        params = {k: v for k, v in raw.items() if k not in ("name", "k")}
        name = raw.get("name")
        if not isinstance(name, str):
            raise ValueError(f"{raw!r}: a metric object needs a string 'name'")
        if raw.get("k") is not None and "@" not in name:
            name = f"{name}@{raw['k']}"
    elif isinstance(raw, str):
        name = raw
    else:
        raise ValueError(f"{raw!r}: a metric is a name like 'ndcg@10' or an object with 'name'")
    name = name.strip().lower()
    base, at, k_text = name.partition("@")
    if base not in KNOWN:
        raise ValueError(f"unknown metric '{name}' (known: {', '.join(KNOWN)})")
    k = None
    if at:
        if base not in RETRIEVAL:
            raise ValueError(f"'{name}': only retrieval metrics take a cut-off @k")
        try:
            k = int(k_text)
        except ValueError:
            raise ValueError(f"'{name}': the cut-off after @ must be an integer") from None
        if not 1 <= k <= MAX_CUTOFF:
            raise ValueError(f"'{name}': k must be between 1 and {MAX_CUTOFF}")
    elif base in NEEDS_CUTOFF:
        raise ValueError(f"'{name}' needs a cut-off, e.g. {base}@10")
    family = _family(base)
    if family == "judge":
        repeats = params.get("repeats", 1)
        if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_REPEATS:
            raise ValueError(f"'{name}': repeats must be an integer from 1 to {MAX_REPEATS}")
        params["repeats"] = repeats
    unknown = set(params) - {"repeats", "model_id", "rubric", "phrases"}
    if unknown:
        raise ValueError(f"'{name}': unknown parameters {sorted(unknown)}")
    return MetricSpec(name=name, base=base, family=family, k=k, params=params)


def parse_metrics(raw: Sequence[Any], target_type: str) -> list[MetricSpec]:
    """Validate a suite's metric list for a target type; every problem is reported at once."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise SuiteError("metrics must be a list", ["metrics must be a list"])
    specs, problems = [], []
    for item in raw:
        try:
            spec = _parse_one(item)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if spec.family not in FAMILIES_BY_TARGET[target_type]:
            problems.append(f"'{spec.name}' is a {spec.family} metric; a {target_type} target cannot feed it")
        elif any(s.name == spec.name for s in specs):
            problems.append(f"'{spec.name}' is listed twice")
        else:
            specs.append(spec)
    if not raw:
        problems.append("list at least one metric")
    if problems:
        raise SuiteError("; ".join(problems), problems)
    return specs


def check_thresholds(thresholds: Mapping[str, Any], specs: Sequence[MetricSpec]) -> dict[str, float]:
    """Thresholds name metrics of the suite and are finite numbers."""
    names = {s.name for s in specs}
    problems, clean = [], {}
    for name, value in thresholds.items():
        key = str(name).strip().lower()
        if key not in names:
            problems.append(f"threshold for '{name}', which is not one of the suite's metrics ({', '.join(sorted(names))})")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"threshold for '{name}' must be a number")
        else:
            clean[key] = float(value)
    if problems:
        raise SuiteError("; ".join(problems), problems)
    return clean


def retrieval_depth(specs: Sequence[MetricSpec], configured_top_k: int) -> int:
    """How many passages to ask a retrieval target for: enough for the deepest cut-off (3x, because
    several chunks of one document collapse into one ranked document), never fewer than it returns."""
    cutoffs = [s.k or 100 for s in specs if s.family == "retrieval"]
    if not cutoffs:
        return configured_top_k
    return max(configured_top_k, min(MAX_CUTOFF, 3 * max(cutoffs)))


# --- one case -----------------------------------------------------------------------------------------


@dataclass
class Hit:
    """One retrieved passage, with every id an expected source may use for it."""

    keys: tuple[str, ...]  # chunk id, document id, external id (path / URL)
    score: float
    content: str = ""


@dataclass
class CaseOutput:
    """What a target returned for one case."""

    hits: list[Hit] = field(default_factory=list)
    answer: str | None = None
    no_answer: bool = False
    cited: list[tuple[str, ...]] = field(default_factory=list)  # the keys of each cited passage


@dataclass
class CaseInput:
    """What a test case expects."""

    input: str
    expected_output: str | list[str] | None = None
    expected_sources: list[dict] = field(default_factory=list)  # [{"id", "grade"}]
    expected_no_answer: bool = False


@dataclass
class CaseScores:
    scores: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # scoring was tried and failed (a judge broke)
    details: dict[str, Any] = field(default_factory=dict)
    # The case gives the metric nothing to score (no expected sources, no expected answer): not an error.
    not_applicable: dict[str, str] = field(default_factory=dict)


def document_ranking(hits: Sequence[Hit], expected_ids: Iterable[str]) -> dict[str, float]:
    """Rank what the qrels judge: each hit counts as the expected id it matches (document, path, URL or
    chunk), else as its own document; several chunks of one document count once, at the best rank."""
    expected = list(expected_ids)
    ranking: dict[str, float] = {}
    n = len(hits)
    for position, hit in enumerate(hits):
        key = next((e for e in expected if e in hit.keys), hit.keys[1] if len(hit.keys) > 1 else hit.keys[0])
        # Scores strictly decreasing with rank: the metric code re-sorts by score, and ties must not
        # reorder what the target ranked.
        ranking.setdefault(key, float(n - position))
    return ranking


def _grades(case: CaseInput) -> dict[str, float]:
    return {s["id"]: float(s.get("grade", 1)) for s in case.expected_sources}


def _retrieval_scores(spec: MetricSpec, case: CaseInput, output: CaseOutput, out: CaseScores) -> None:
    grades = _grades(case)
    if not grades:
        out.scores[spec.name] = None
        out.not_applicable[spec.name] = "the case lists no expected sources"
        return
    run = {"q": document_ranking(output.hits, grades)}
    result = retrieval_metrics.evaluate({"q": grades}, run, [spec.name])[spec.name]
    out.scores[spec.name] = result.per_case["q"]


def _golds(case: CaseInput) -> list[str]:
    value = case.expected_output
    return [value] if isinstance(value, str) else list(value or [])


def _answer_scores(spec: MetricSpec, case: CaseInput, output: CaseOutput, out: CaseScores,
                   embedder: answer_metrics.TextEmbedder | None) -> None:
    base = spec.base
    if base == "no_answer_accuracy":
        phrases = spec.params.get("phrases", ())
        said_no = output.no_answer or answer_metrics.is_no_answer(output.answer, phrases)
        out.scores[spec.name] = float(case.expected_no_answer == said_no)
        return
    if base == "citation_precision":
        expected = {source for source, grade in _grades(case).items() if grade > 0}
        if not expected:
            out.scores[spec.name] = None
            out.not_applicable[spec.name] = "the case lists no expected sources"
            return
        cited = [next((e for e in expected if e in keys), keys[0]) for keys in output.cited]
        result = answer_metrics.citation_precision({"q": cited}, {"q": expected})
        out.scores[spec.name] = result.per_case["q"]
        return
    golds = _golds(case)
    if not golds:
        out.scores[spec.name] = None
        out.not_applicable[spec.name] = "the case has no expected_output"
        return
    if base == "semantic_similarity":
        result = answer_metrics.semantic_similarity({"q": output.answer}, {"q": golds}, embedder)
        out.scores[spec.name] = result.per_case["q"]
        return
    scorer = {
        "exact_match": answer_metrics.exact_match_score,
        "token_f1": answer_metrics.token_f1_score,
        "rouge_l": answer_metrics.rouge_l_score,
        "contains": answer_metrics.contains_score,
        "regex": answer_metrics.regex_match_score,
    }[base]
    out.scores[spec.name] = float(scorer(output.answer, golds))


_JUDGES = {"faithfulness": judges.judge_faithfulness, "answer_relevance": judges.judge_relevance}


def _judge_scores(spec: MetricSpec, case: CaseInput, output: CaseOutput, out: CaseScores,
                  complete: judges.Complete | None) -> None:
    if complete is None:
        raise SuiteError(f"'{spec.name}' needs a judge model", [f"'{spec.name}' needs a judge model"])
    expected = (_golds(case) or [None])[0]
    if spec.base == "correctness" and expected is None:
        out.scores[spec.name] = None
        out.not_applicable[spec.name] = "correctness needs an expected_output"
        return
    judge_case = judges.JudgeCase(question=case.input, answer=output.answer,
                                  contexts=[h.content for h in output.hits], expected=expected)
    if spec.base == "correctness":
        rubric = spec.params.get("rubric") or judges.DEFAULT_RUBRIC

        def judge(c, fn):
            return judges.judge_correctness(c, fn, rubric)
    else:
        judge = _JUDGES[spec.base]
    outcome = judges.score_case(judge, judge_case, complete, spec.params.get("repeats", 1))
    out.scores[spec.name] = outcome.score
    out.details[spec.name] = outcome.details
    if outcome.error:
        out.errors[spec.name] = outcome.error


def score_case(specs: Sequence[MetricSpec], case: CaseInput, output: CaseOutput, *,
               embedder: answer_metrics.TextEmbedder | None = None,
               judge_for: Callable[[MetricSpec], judges.Complete | None] | None = None) -> CaseScores:
    """Every metric of the suite for one case. A metric that cannot score this case holds ``None`` and
    says why: in ``not_applicable`` when the case gives it nothing to score, in ``errors`` when scoring
    failed; it never raises for one case's data."""
    out = CaseScores()
    for spec in specs:
        if spec.family == "retrieval":
            _retrieval_scores(spec, case, output, out)
        elif spec.family == "answer":
            _answer_scores(spec, case, output, out, embedder)
        else:
            _judge_scores(spec, case, output, out, judge_for(spec) if judge_for else None)
    return out


# --- a run --------------------------------------------------------------------------------------------


def aggregate(specs: Sequence[MetricSpec], per_case: Mapping[str, Mapping[str, float | None]],
              errors: Mapping[str, Mapping[str, str]], *, not_applicable: Mapping[str, Mapping[str, str]] | None = None,
              seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per metric: mean over the scored cases with a 95% bootstrap CI, how many cases it covers, and the
    spread of the per-case scores (sample standard deviation).

    ``per_case`` maps case id -> {metric: score}; cases the target failed on have no scores and count in
    ``total`` but not in ``covered``, so a run that lost cases cannot look as good as one that did not.
    ``errors`` counts the cases whose scoring failed; ``not_applicable`` those that give the metric nothing
    to score (e.g. answer metrics on a case that expects no answer), which are no failure.
    """
    not_applicable = not_applicable or {}
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        values = {case: scores.get(spec.name) for case, scores in per_case.items()}
        scored = [float(v) for v in values.values() if v is not None]
        ci = bootstrap_ci(values, seed=seed) if scored else None
        out[spec.name] = {
            "score": ci.mean if ci else None,
            "ci_low": ci.low if ci else None,
            "ci_high": ci.high if ci else None,
            "covered": len(scored),
            "total": len(values),
            "errors": sum(1 for case_errors in errors.values() if spec.name in case_errors),
            "not_applicable": sum(1 for reasons in not_applicable.values() if spec.name in reasons),
            "spread": statistics.stdev(scored) if len(scored) > 1 else (0.0 if scored else None),
        }
    return out


def judge_thresholds(thresholds: Mapping[str, float], aggregates: Mapping[str, Mapping[str, Any]]) -> dict:
    """Each threshold against its aggregate; a metric with no score fails its threshold."""
    out = {}
    for name, threshold in thresholds.items():
        score = (aggregates.get(name) or {}).get("score")
        out[name] = {"threshold": threshold, "score": score, "passed": score is not None and score >= threshold}
    return out
