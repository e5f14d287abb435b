"""Document-level nDCG@10 as BEIR reports it (pytrec_eval's ndcg_cut_10), its ranx cross-check, and
chunk-to-document score aggregation: the scoring half of bench/retrieval.py."""
from __future__ import annotations

import math


def ndcg_at_10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> float:
    """Mean nDCG@10 over the judged queries, as pytrec_eval's ndcg_cut_10 (as BEIR reports it).

    Linear gains, log2 discounts, the ideal DCG from all judged relevance grades of the query;
    documents ranked by score, ties by document id descending (trec_eval's order); a judged query
    without results scores 0.
    """
    total = 0.0
    for qid, rels in qrels.items():
        ranked = sorted(run.get(qid, {}).items(), key=lambda kv: (-kv[1], _neg(kv[0])))[:10]
        dcg = sum(rels.get(doc, 0) / math.log2(i + 2) for i, (doc, _) in enumerate(ranked))
        ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:10]
        idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
        total += dcg / idcg if idcg > 0 else 0.0
    return total / len(qrels)


def _neg(doc_id: str) -> tuple:
    # Sort key for "document id descending" inside an ascending sort.
    return tuple(-ord(c) for c in doc_id) + (1,)


def untie(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The same rankings with distinct scores, in trec_eval's order (score desc, document id desc).

    ranx breaks ties its own way; on an untied run it must agree with :func:`ndcg_at_10` exactly.
    """
    out = {}
    for qid, docs in run.items():
        ranked = sorted(docs.items(), key=lambda kv: (-kv[1], _neg(kv[0])))
        out[qid] = {doc: float(len(ranked) - i) for i, (doc, _) in enumerate(ranked)}
    return out


def ranx_ndcg(qrels: dict, run: dict) -> float:
    from ranx import Qrels, Run, evaluate

    filled = {qid: (run.get(qid) or {"__none__": 0.0}) for qid in qrels}
    return float(evaluate(Qrels(qrels), Run(filled), "ndcg@10"))


def doc_scores(pairs) -> dict[str, float]:
    """Chunk (document_id, score) pairs -> {document_id: best score} (BEIR scores documents)."""
    docs: dict[str, float] = {}
    for doc, score in pairs:
        if doc not in docs or score > docs[doc]:
            docs[doc] = float(score)
    return docs
