"""Comparing runs of two evaluations with the same cases (one suite, two tool configurations): cases are
paired by their input and expectations, and the comparison says which were paired."""
import pytest

from tests.app.test_evaluations_api import CASES, _evaluation, _results, _run, _tool


def test_two_evaluations_with_identical_cases_compare_case_by_case(api, synced):
    hybrid = _tool(api, "retrieval-tools", {"name": "hybrid", "knowledge_source_id": synced["id"], "top_k": 3})
    lexical = _tool(api, "retrieval-tools", {"name": "lexical", "knowledge_source_id": synced["id"],
                                             "mode": "lexical", "top_k": 1})
    cases = CASES[:3]
    base_eval = _evaluation(api, name="suite on hybrid", type="retrieval_tool", target_id=hybrid["id"],
                            metrics=["mrr"], test_cases=cases)
    # The same cases in another order, with other metadata: still the same questions and expectations.
    head_eval = _evaluation(api, name="suite on lexical", type="retrieval_tool", target_id=lexical["id"],
                            metrics=["mrr"], test_cases=[{**c, "metadata": {"copy": True}} for c in reversed(cases)])
    base, head = _run(api, base_eval["id"]), _run(api, head_eval["id"])

    res = api.get("/api/evaluations/compare", query_string={"base": base["id"], "head": head["id"]})
    assert res.status_code == 200, res.json
    comparison = res.json["data"]
    base_scores = {r["input"]: (r["case_id"], r["scores"]["mrr"]) for r in _results(api, base_eval["id"])["results"]}
    head_scores = {r["input"]: (r["case_id"], r["scores"]["mrr"]) for r in _results(api, head_eval["id"])["results"]}
    matching = comparison["case_matching"]
    assert matching["matched"] == 3 and matching["unmatched_base_cases"] == matching["unmatched_head_cases"] == []
    assert {(p["base_case_id"], p["head_case_id"]) for p in matching["pairs"]} == {
        (base_scores[q][0], head_scores[q][0]) for q in base_scores}
    mrr = comparison["metrics"]["mrr"]
    assert mrr["n"] == 3 and comparison["head_evaluation_id"] == head_eval["id"]
    assert mrr["per_case_delta"] == pytest.approx(
        {base_scores[q][0]: head_scores[q][1] - base_scores[q][1] for q in base_scores})

    # Partly the same suite: only the shared cases are compared, and the rest are named.
    partial_eval = _evaluation(api, name="partial", type="retrieval_tool", target_id=lexical["id"],
                               metrics=["mrr"], test_cases=[cases[0], {**cases[1], "expected_sources": ["faq.txt"]}])
    partial = _run(api, partial_eval["id"])
    data = api.get("/api/evaluations/compare", query_string={"base": base["id"], "head": partial["id"]}).json["data"]
    assert data["case_matching"]["matched"] == 1 and data["metrics"]["mrr"]["n"] == 1
    assert len(data["case_matching"]["unmatched_base_cases"]) == 2
    assert len(data["case_matching"]["unmatched_head_cases"]) == 1
