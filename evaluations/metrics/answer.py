"""Answer metrics: compare generated answers with expected ones, case by case.

Every metric takes mappings keyed by case id and returns a ``MetricResult``. The cases are those of the
expected side (``references``, ``expected_*``); a case missing from ``predictions`` is scored as if the
system answered nothing (``None``), so a crashed case lowers the mean instead of disappearing from it.

Per-case scalar functions (``exact_match_score``, ``token_f1_score``, ``rouge_l_score``...) are public
too, for callers that score one answer at a time.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from evaluations.metrics.base import MetricResult, make_result

Answer = str | None
Golds = str | Sequence[str]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def _golds(golds: Golds) -> list[str]:
    return [golds] if isinstance(golds, str) else list(golds)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation, drop articles a/an/the, collapse whitespace.

    The order matters and is SQuAD's (``evaluate-v2.0.py``): punctuation goes before articles are
    matched, so "the-cat" becomes "thecat" and keeps no article.
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_score(prediction: Answer, golds: Golds) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction or "")
    return 1.0 if any(pred == normalize_answer(g) for g in _golds(golds)) else 0.0


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        # SQuAD v2: two empty answers agree (F1 1), one empty answer shares nothing (F1 0).
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    p, r = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * p * r / (p + r)


def token_f1_score(prediction: Answer, golds: Golds) -> float:
    """SQuAD token F1 (bag of normalised tokens), the best over the gold answers."""
    pred = normalize_answer(prediction or "").split()
    return max((_f1(pred, normalize_answer(g).split()) for g in _golds(golds)), default=0.0)


def _rouge_tokens(text: str) -> list[str]:
    # rouge-score's default tokenizer (no stemming): lowercase, anything outside [a-z0-9] separates.
    # Kept byte-for-byte so numbers stay comparable with published ROUGE-L figures; note that this
    # tokenizer drops non-ASCII letters, exactly as rouge-score does.
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def _lcs_length(a: list[str], b: list[str]) -> int:
    # Classic O(len(a)*len(b)) dynamic programme, one row at a time: answers are short.
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_score(prediction: Answer, golds: Golds) -> float:
    """ROUGE-L F-measure (beta = 1) on tokens, as rouge-score's ``rougeL``; the best over the golds."""
    pred = _rouge_tokens(prediction or "")
    best = 0.0
    for gold in _golds(golds):
        target = _rouge_tokens(gold)
        if not pred or not target:
            continue  # rouge-score scores an empty side 0
        lcs = _lcs_length(target, pred)
        p, r = lcs / len(pred), lcs / len(target)
        best = max(best, 2 * p * r / (p + r) if p + r > 0 else 0.0)
    return best


def contains_score(prediction: Answer, golds: Golds) -> float:
    """1.0 when any gold string occurs in the prediction, ignoring case (``casefold``)."""
    pred = (prediction or "").casefold()
    return 1.0 if any(g.casefold() in pred for g in _golds(golds) if g) else 0.0


def regex_match_score(prediction: Answer, patterns: Golds) -> float:
    """1.0 when any pattern is found (``re.search``) in the prediction."""
    return 1.0 if any(re.search(p, prediction or "") for p in _golds(patterns)) else 0.0


def _per_case(name: str, fn: Callable[[Answer, Any], float], predictions: Mapping[str, Answer],
              references: Mapping[str, Any]) -> MetricResult:
    return make_result(name, {case: fn(predictions.get(case), ref) for case, ref in references.items()})


def exact_match(predictions: Mapping[str, Answer], references: Mapping[str, Golds]) -> MetricResult:
    """SQuAD exact match over the cases of ``references`` (several golds per case: any may match)."""
    return _per_case("exact_match", exact_match_score, predictions, references)


def token_f1(predictions: Mapping[str, Answer], references: Mapping[str, Golds]) -> MetricResult:
    """SQuAD token F1, the max over each case's gold answers."""
    return _per_case("token_f1", token_f1_score, predictions, references)


def rouge_l(predictions: Mapping[str, Answer], references: Mapping[str, Golds]) -> MetricResult:
    """ROUGE-L F-measure, the max over each case's gold answers."""
    return _per_case("rouge_l", rouge_l_score, predictions, references)


def contains(predictions: Mapping[str, Answer], references: Mapping[str, Golds]) -> MetricResult:
    """Case-insensitive substring match of any expected string."""
    return _per_case("contains", contains_score, predictions, references)


def regex_match(predictions: Mapping[str, Answer], patterns: Mapping[str, Golds]) -> MetricResult:
    """Regex search of any of each case's patterns. Invalid patterns raise ``ValueError`` up front,
    naming the case: a typo in a suite is the author's to fix, not a silent 0 on every run."""
    for case, pats in patterns.items():
        for p in _golds(pats):
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"case {case!r}: invalid regex {p!r}: {exc}") from None
    return _per_case("regex_match", regex_match_score, predictions, patterns)


def is_no_answer(prediction: Answer | bool, phrases: Collection[str] = ()) -> bool:
    """Whether a returned answer is a refusal: ``True``/``None``/blank, or equal (after SQuAD
    normalisation) to one of ``phrases`` such as "I don't know". A ``bool`` is taken as the flag a
    RAG tool reports itself."""
    if isinstance(prediction, bool):
        return prediction
    if prediction is None or not prediction.strip():
        return True
    norm = normalize_answer(prediction)
    return any(norm == normalize_answer(p) for p in phrases)


def no_answer_accuracy(predictions: Mapping[str, Answer | bool], expected_no_answer: Mapping[str, bool],
                       phrases: Collection[str] = ()) -> MetricResult:
    """1.0 per case when "should abstain" equals "did abstain" (both ways count: answering an
    unanswerable question and refusing an answerable one are both errors)."""
    per_case = {
        case: float(bool(expected) == is_no_answer(predictions.get(case), phrases))
        for case, expected in expected_no_answer.items()
    }
    return make_result("no_answer_accuracy", per_case)


def citation_precision(cited: Mapping[str, Sequence[str]],
                       expected_sources: Mapping[str, Collection[str]]) -> MetricResult:
    """Share of the distinct cited ids that are expected sources, per case.

    Undefined (``None``) when a case cites nothing: precision of an empty set has no value, and 0 would
    conflate "cited nothing" with "cited wrongly". Those cases are excluded from the mean and show as
    ``covered < total``; ``summary["uncited"]`` lists them.
    """
    per_case: dict[str, float | None] = {}
    for case, expected in expected_sources.items():
        ids = list(dict.fromkeys(cited.get(case) or ()))  # citing a source twice is one citation
        expected_set = set(expected)
        per_case[case] = sum(1 for i in ids if i in expected_set) / len(ids) if ids else None
    uncited = [case for case, v in per_case.items() if v is None]
    return make_result("citation_precision", per_case, summary={"uncited": uncited})


class TextEmbedder(Protocol):
    """What semantic similarity needs: ``run(texts)`` -> array of unit vectors, one row per text."""

    def run(self, texts: Sequence[str]) -> np.ndarray: ...


def semantic_similarity(predictions: Mapping[str, Answer], references: Mapping[str, Golds],
                        embedder: TextEmbedder) -> MetricResult:
    """Cosine similarity of answer and gold embeddings, the max over each case's golds.

    All distinct texts go to the embedder in one batch. A missing or blank answer scores 0.0 rather
    than the similarity of an empty string, which carries no meaning but is rarely 0.
    """
    texts: dict[str, int] = {}
    for case, golds in references.items():
        pred = predictions.get(case)
        for t in ([pred] if pred and pred.strip() else []) + _golds(golds):
            texts.setdefault(t, len(texts))
    vectors = np.asarray(embedder.run(list(texts)), dtype=np.float64) if texts else np.empty((0, 0))
    if len(vectors):
        # Renormalise: cheap, and a non-normalising embedder would otherwise give dot products > 1.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1.0, norms)
    per_case: dict[str, float | None] = {}
    for case, golds in references.items():
        pred = predictions.get(case)
        if not pred or not pred.strip() or not _golds(golds):
            per_case[case] = 0.0
            continue
        sims = [float(vectors[texts[pred]] @ vectors[texts[g]]) for g in _golds(golds)]
        per_case[case] = max(sims)
    return make_result("semantic_similarity", per_case)
