"""Retrieval metrics: cross-checked against ranx on random graded qrels/runs, plus hand-worked cases.

ranx breaks score ties with an unstable argsort, so it is fed our trec_eval ranking (score desc, doc id
desc) as strictly decreasing scores; the tie order itself is checked by hand below.
"""
from __future__ import annotations

import math
import random

import pytest
from ranx import Qrels, Run
from ranx import evaluate as ranx_evaluate

from evaluations.metrics import retrieval
from evaluations.metrics.retrieval import evaluate, rank, to_doc_run
from knowledge.types import Hit

METRICS = [
    "hit@1", "hit@3", "hits@3", "hits@10", "recall@1", "recall@5", "recall@10",
    "precision@1", "precision@5", "precision@10", "mrr", "mrr@3",
    "ndcg@1", "ndcg@3", "ndcg@10", "ndcg", "map", "map@5",
]
RANX_NAME = {m: m.replace("hit@", "hit_rate@") for m in METRICS}  # ranx calls binary hit "hit_rate"


def _random_case(seed: int):
    """Graded qrels (0-3) and a run with many score ties, short runs, a missing query, an unjudged one."""
    rng = random.Random(seed)
    docs = [f"d{i:02d}" for i in range(25)]
    qrels, run = {}, {}
    for q in range(15):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 8))
        qrels[qid] = {d: rng.choice([0, 0, 1, 2, 3]) for d in judged}
        retrieved = rng.sample(docs, rng.randint(0, 14))  # often fewer results than k
        # One decimal only: plenty of exact score ties to exercise the tie rule.
        run[qid] = {d: round(rng.uniform(0, 1), 1) for d in retrieved}
    qrels["q_all_zero"] = {"d01": 0, "d02": 0}  # judged, nothing relevant: 0 everywhere
    run["q_all_zero"] = {"d01": 0.5}
    qrels["q_missing"] = {"d03": 2}  # no run at all: 0 everywhere
    qrels["q_unjudged"] = {}  # not evaluated
    run["q_unjudged"] = {"d04": 1.0}
    run["q_run_only"] = {"d05": 1.0}  # ignored
    return qrels, run


def _ranx_scores(qrels, run):
    judged = {q: g for q, g in qrels.items() if g}
    # Strictly decreasing scores in our trec_eval order, so ranx cannot reorder ties.
    ranx_run = {q: {d: float(100 - i) for i, d in enumerate(rank(run.get(q, {})))} for q in judged}
    r = Run.from_dict(ranx_run)
    ranx_evaluate(Qrels.from_dict(judged), r, list(RANX_NAME.values()))
    return r.scores


@pytest.mark.parametrize("seed", range(6))
def test_every_metric_matches_ranx(seed):
    qrels, run = _random_case(seed)
    ours = evaluate(qrels, run, METRICS)
    theirs = _ranx_scores(qrels, run)
    for name in METRICS:
        result = ours[name]
        assert result.name == name
        assert result.per_case["q_unjudged"] is None and "q_run_only" not in result.per_case
        assert result.covered == len(qrels) - 1
        for qid, expected in theirs[RANX_NAME[name]].items():
            assert result.per_case[qid] == pytest.approx(expected, abs=1e-9), (name, qid)
        mean = sum(theirs[RANX_NAME[name]].values()) / len(theirs[RANX_NAME[name]])
        assert result.score == pytest.approx(mean, abs=1e-9), name


def test_ranked_lists_equal_score_dicts_without_ties():
    qrels, run = _random_case(42)
    as_lists = {q: rank(scores) for q, scores in run.items()}
    for name in METRICS:
        assert evaluate(qrels, as_lists, [name])[name].per_case == evaluate(qrels, run, [name])[name].per_case


# A worked example. Judgments: a=3, b=1, d=2 relevant (R = 3), c judged non-relevant.
# Run scores x 0.9, a 0.8, b 0.8, d 0.1: a and b tie, trec_eval puts the larger doc id first,
# so the ranking is x, b, a, d (relevant at ranks 2, 3, 4).
QRELS = {"q": {"a": 3, "b": 1, "c": 0, "d": 2}}
RUN = {"q": {"x": 0.9, "a": 0.8, "b": 0.8, "d": 0.1}}


def test_ties_are_broken_by_doc_id_descending():
    assert rank(RUN["q"]) == ["x", "b", "a", "d"]
    assert rank({"d1": 1.0, "d10": 1.0, "d2": 1.0}) == ["d2", "d10", "d1"]  # string order, like strcmp
    # trec_eval keeps scores as C floats: equal in single precision means tied, then doc id decides
    assert rank({"a": 0.1 + 1e-12, "b": 0.1}) == ["b", "a"]
    assert rank(["b", "a", "b", "c"]) == ["b", "a", "c"]  # a ranked list keeps its order, deduplicated


@pytest.mark.parametrize(("name", "expected"), [
    ("hit@1", 0.0),                      # x is not relevant
    ("hit@2", 1.0),                      # b at rank 2
    ("hits@3", 2.0),                     # b, a
    ("recall@3", 2 / 3),                 # 2 of R = 3
    ("precision@3", 2 / 3),
    ("precision@10", 3 / 10),            # divided by k although only 4 results came back
    ("mrr", 1 / 2),                      # first relevant at rank 2
    ("mrr@1", 0.0),
    # DCG@3 = 0/log2(2) + 1/log2(3) + 3/log2(4); ideal gains 3, 2, 1 -> 3/1 + 2/log2(3) + 1/log2(4)
    ("ndcg@3", (1 / math.log2(3) + 3 / 2) / (3 + 2 / math.log2(3) + 1 / 2)),
    # AP = (P@2 + P@3 + P@4) / R = (1/2 + 2/3 + 3/4) / 3
    ("map", (1 / 2 + 2 / 3 + 3 / 4) / 3),
    ("map@2", (1 / 2) / 3),              # only rank 2 is within the cut, still divided by R = 3
])
def test_worked_example(name, expected):
    assert evaluate(QRELS, RUN, [name])[name].score == pytest.approx(expected, abs=1e-12)


def test_tie_order_changes_ndcg():
    # Had a (grade 3) come before b (grade 1), DCG@3 would be 3/log2(3) + 1/2: the tie rule matters.
    other = (3 / math.log2(3) + 1 / 2) / (3 + 2 / math.log2(3) + 1 / 2)
    assert retrieval.ndcg(QRELS, RUN, 3).score != pytest.approx(other)
    assert retrieval.ndcg(QRELS, {"q": ["x", "a", "b", "d"]}, 3).score == pytest.approx(other)


def test_query_conventions():
    qrels = {"judged": {"a": 1}, "no_relevant": {"a": 0}, "unjudged": {}, "not_run": {"a": 1}}
    run = {"judged": {"a": 1.0}, "no_relevant": {"a": 1.0}, "unjudged": {"a": 1.0}, "extra": {"a": 1.0}}
    result = retrieval.recall(qrels, run, 5)
    assert result.per_case == {"judged": 1.0, "no_relevant": 0.0, "unjudged": None, "not_run": 0.0}
    assert (result.covered, result.total, result.score) == (3, 4, pytest.approx(1 / 3))


def test_no_scored_query_gives_none_not_nan():
    result = retrieval.mrr({"q": {}}, {"q": ["a"]})
    assert result.score is None and result.per_case == {"q": None}


def test_evaluate_rejects_bad_names():
    with pytest.raises(ValueError, match="unknown"):
        evaluate(QRELS, RUN, ["bleu"])
    with pytest.raises(ValueError, match="cut-off"):
        evaluate(QRELS, RUN, ["recall"])
    with pytest.raises(ValueError, match="k must be"):
        evaluate(QRELS, RUN, ["ndcg@0"])
    assert evaluate(QRELS, RUN, ["hit_rate@2"])["hit_rate@2"].name == "hit_rate@2"


def test_to_doc_run_collapses_chunks_by_max_score():
    hits = [
        Hit("doc1:0", "t", 0.9, metadata={"document_id": "doc1", "path": "a.md"}),
        Hit("doc2:3", "t", 0.7, metadata={"document_id": "doc2", "path": "b.md"}),
        Hit("doc1:4", "t", 0.95, metadata={"document_id": "doc1", "path": "a.md"}),
        Hit("orphan:0", "t", 0.99, metadata={}),  # no document id: cannot match, dropped
    ]
    assert to_doc_run(hits) == {"doc1": 0.95, "doc2": 0.7}
    assert to_doc_run(hits, "path") == {"a.md": 0.95, "b.md": 0.7}
    assert to_doc_run(hits, "chunk_id") == {"doc1:0": 0.9, "doc2:3": 0.7, "doc1:4": 0.95, "orphan:0": 0.99}
    assert to_doc_run(hits, lambda h: h.chunk_id.split(":")[0]) == {"doc1": 0.95, "doc2": 0.7, "orphan": 0.99}
    as_dicts = [{"chunk_id": h.chunk_id, "score": h.score, "metadata": h.metadata} for h in hits]
    assert to_doc_run(as_dicts) == {"doc1": 0.95, "doc2": 0.7}
    assert to_doc_run(as_dicts, "chunk_id")["doc1:4"] == 0.95


def test_to_doc_run_feeds_the_metrics():
    hits = [Hit("d1:0", "t", 0.5, metadata={"document_id": "d1"}),
            Hit("d2:0", "t", 0.8, metadata={"document_id": "d2"})]
    result = retrieval.mrr({"q": {"d1": 1}}, {"q": to_doc_run(hits)})
    assert result.score == pytest.approx(0.5)
