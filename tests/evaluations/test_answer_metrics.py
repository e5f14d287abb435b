"""Answer metrics on small examples whose values are worked out by hand in the comments."""
from __future__ import annotations

import numpy as np
import pytest

from evaluations.metrics import answer
from evaluations.metrics.answer import (
    contains_score,
    exact_match_score,
    normalize_answer,
    regex_match_score,
    rouge_l_score,
    token_f1_score,
)


def test_squad_normalisation():
    # lowercase -> punctuation removed -> articles removed -> whitespace collapsed
    assert normalize_answer("  The Cat, sat on A mat! ") == "cat sat on mat"
    assert normalize_answer("An apple") == "apple"
    assert normalize_answer("theatre") == "theatre"  # "the" only as a whole word


def test_exact_match():
    assert exact_match_score("The Cat sat!", "cat sat") == 1.0   # both normalise to "cat sat"
    assert exact_match_score("cat sat down", "cat sat") == 0.0
    assert exact_match_score("the cat sat", ["dog", "a cat sat"]) == 1.0  # any gold may match
    assert exact_match_score(None, "cat") == 0.0


def test_token_f1():
    # "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]; 2 tokens in common:
    # P = 2/2, R = 2/3, F1 = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
    assert token_f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)
    # "cat" vs "cat sat": P = 1, R = 1/2 -> F1 = 2/3; vs "dog": 0 -> max is 2/3
    assert token_f1_score("cat", ["dog", "cat sat"]) == pytest.approx(2 / 3)
    # Bag of tokens: "cat cat" vs "cat": common = min(2, 1) = 1 -> P = 1/2, R = 1 -> F1 = 2/3
    assert token_f1_score("cat cat", "cat") == pytest.approx(2 / 3)
    # SQuAD v2 empty rule: empty vs empty agree (1), empty vs something share nothing (0)
    assert token_f1_score(None, "") == 1.0
    assert token_f1_score("the", "cat") == 0.0  # "the" normalises to no tokens


def test_rouge_l():
    # rouge-score README example (target first, prediction second in their API):
    # target "The quick brown fox jumps over the lazy dog" (9 tokens),
    # prediction "The quick brown dog jumps on the log." (8 tokens);
    # LCS = the quick brown jumps the = 5 -> P = 5/8, R = 5/9, F = 2PR/(P+R) = 50/85 = 0.588235...
    pred = "The quick brown dog jumps on the log."
    target = "The quick brown fox jumps over the lazy dog"
    assert rouge_l_score(pred, target) == pytest.approx(50 / 85)
    # Order matters, unlike F1: "sat cat" vs "cat sat" has LCS 1 -> P = R = F = 1/2
    assert rouge_l_score("sat cat", "cat sat") == pytest.approx(0.5)
    # Multiple references: the best F wins; an empty side scores 0 as in rouge-score
    assert rouge_l_score("cat sat", ["dog", "cat sat"]) == 1.0
    assert rouge_l_score("", "cat") == 0.0
    # Tokenizer: anything outside [a-z0-9] separates ("don't" -> don, t)
    assert rouge_l_score("don't", "don t") == 1.0


def test_contains_and_regex():
    assert contains_score("Paris is the capital", "PARIS") == 1.0  # case-insensitive
    assert contains_score("Paris is the capital", "Lyon") == 0.0
    assert contains_score("Paris is the capital", ["Rome", "capital"]) == 1.0
    assert contains_score(None, "x") == 0.0
    assert regex_match_score("It was 1987.", r"\b19\d\d\b") == 1.0
    assert regex_match_score("It was 2001.", r"\b19\d\d\b") == 0.0
    with pytest.raises(ValueError, match="case 'c1'"):
        answer.regex_match({"c1": "x"}, {"c1": "("})


def test_aggregates_cover_the_expected_side():
    preds = {"a": "the cat sat", "b": "dog"}  # "c" crashed: no prediction
    refs = {"a": "a cat sat down", "b": "dog", "c": "fish"}
    f1 = answer.token_f1(preds, refs)
    # per case: a = 0.8 (above), b = 1.0, c = 0.0 (no answer) -> mean 1.8 / 3 = 0.6
    assert f1.per_case == {"a": pytest.approx(0.8), "b": 1.0, "c": 0.0}
    assert f1.score == pytest.approx(0.6) and f1.covered == 3
    assert answer.exact_match(preds, refs).score == pytest.approx(1 / 3)
    assert answer.rouge_l(preds, refs).name == "rouge_l"
    assert answer.contains(preds, refs).per_case == {"a": 0.0, "b": 1.0, "c": 0.0}


def test_no_answer_accuracy():
    expected = {"a": True, "b": True, "c": False, "d": False, "e": True, "f": True}
    preds = {
        "a": None,              # abstained as expected -> 1
        "b": "Paris",           # answered an unanswerable question -> 0
        "c": "   ",             # refused an answerable question -> 0
        "d": "Paris",           # answered as expected -> 1
        "e": "I don't know.",   # a configured refusal phrase -> 1
        "f": True,              # the tool's own no-answer flag -> 1
    }
    result = answer.no_answer_accuracy(preds, expected, phrases=["I don't know"])
    assert result.per_case == {"a": 1.0, "b": 0.0, "c": 0.0, "d": 1.0, "e": 1.0, "f": 1.0}
    assert result.score == pytest.approx(4 / 6)


def test_citation_precision_undefined_without_citations():
    cited = {"a": ["d1", "d2", "d1"], "b": [], "c": ["d3"]}  # "d" cites nothing at all
    expected = {"a": {"d1"}, "b": {"d1"}, "c": {"d3", "d4"}, "d": {"d1"}}
    result = answer.citation_precision(cited, expected)
    # a: distinct {d1, d2}, one expected -> 1/2; c: 1/1; b and d cited nothing -> None
    assert result.per_case == {"a": 0.5, "b": None, "c": 1.0, "d": None}
    # The mean excludes the undefined cases: (0.5 + 1.0) / 2 = 0.75, over 2 of 4 cases
    assert result.score == pytest.approx(0.75)
    assert (result.covered, result.total, result.coverage) == (2, 4, 0.5)
    assert result.summary["uncited"] == ["b", "d"]


class _TableEmbedder:
    """Hand-picked 2-d vectors, so cosines are known: cos(60 degrees) = 0.5, cos(90 degrees) = 0."""

    VECTORS = {"cat": [1.0, 0.0], "kitten": [0.5, np.sqrt(3) / 2], "car": [0.0, 1.0], "feline": [3.0, 0.0]}

    def __init__(self):
        self.calls = []

    def run(self, texts):
        self.calls.append(list(texts))
        return np.array([self.VECTORS[t] for t in texts], dtype=np.float32)


def test_semantic_similarity_with_known_vectors():
    emb = _TableEmbedder()
    preds = {"a": "cat", "b": "car", "c": "cat", "d": None, "e": "cat"}
    refs = {"a": "kitten", "b": "cat", "c": ["car", "kitten"], "d": "cat", "e": "feline"}
    result = answer.semantic_similarity(preds, refs, emb)
    # a: cos 60 = 0.5; b: 0; c: max(0, 0.5); d: no answer -> 0; e: "feline" is not unit length
    # (3, 0) and is renormalised -> cos = 1
    assert result.per_case == {"a": pytest.approx(0.5), "b": pytest.approx(0.0), "c": pytest.approx(0.5),
                               "d": 0.0, "e": pytest.approx(1.0)}
    assert len(emb.calls) == 1 and sorted(emb.calls[0]) == ["car", "cat", "feline", "kitten"]  # one batch
