"""What a run's results and report say per case: metrics a case gives nothing to score are "not applicable"
(never errors), the spread column is filled, the retrieved column lists each document once and marks the
expected ones, and every result carries its case's metadata."""
import re

import pytest

from tests.app.test_evaluations_api import _evaluation, _results, _run, _tool

CASES = [
    {"input": "How long do refunds take?", "expected_output": "fourteen days", "expected_sources": ["faq.txt"],
     "metadata": {"query_id": "q-1"}},
    {"input": "When do parcels ship and what does express cost?", "expected_output": "three working days",
     "expected_sources": ["shipping.md"], "metadata": {"query_id": "q-2"}},
    {"input": "What is the airspeed of an unladen swallow?", "expected_no_answer": True,
     "metadata": {"query_id": "q-3"}},
]


@pytest.fixture
def small_chunks(api, synced):
    # 16-token chunks: shipping.md and security.md become two chunks each, so hits repeat documents.
    return _tool(api, "rag-tools", {"name": "small", "knowledge_source_id": synced["id"], "chunk_size": 16,
                                    "chunk_overlap": 0, "answer_mode": "extractive", "top_k": 3})


def test_results_and_report_per_case(api, small_chunks):
    evaluation = _evaluation(api, name="per case", type="rag_tool", target_id=small_chunks["id"],
                             metrics=["hit@3", "token_f1", "no_answer_accuracy"], test_cases=CASES)
    run = _run(api, evaluation["id"])
    assert run["status"] == "completed", run
    for metric in ("hit@3", "token_f1"):
        aggregate = run["metrics"][metric]
        assert aggregate["errors"] == 0 and aggregate["not_applicable"] == 1 and aggregate["covered"] == 2
    results = {r["metadata"]["query_id"]: r for r in _results(api, evaluation["id"])["results"]}
    assert set(results) == {"q-1", "q-2", "q-3"}
    no_answer = results["q-3"]
    assert no_answer["metric_errors"] == {}
    assert set(no_answer["not_applicable"]) == {"hit@3", "token_f1"}
    assert no_answer["scores"]["no_answer_accuracy"] is not None
    scored = [results[q]["scores"]["token_f1"] for q in ("q-1", "q-2")]
    mean = sum(scored) / 2
    assert run["metrics"]["token_f1"]["spread"] == pytest.approx(
        (sum((s - mean) ** 2 for s in scored) / 1) ** 0.5)

    page = api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/report?format=html").get_data(as_text=True)
    row = re.search(r"<tr><td>token_f1</td>(.*?)</tr>", page).group(1)
    cells = re.findall(r"<td class='num'>([^<]*)</td>", row)
    # score, scored / cases, errors, not applicable, spread: nothing reads as an error, and spread is a number
    assert cells[-3:] == ["0", "1", f"{run['metrics']['token_f1']['spread']:.3f}"]
    case_row = re.search(r'<tr data-case-id="' + no_answer["case_id"] + r'">(.*?)</tr>', page).group(1)
    assert "n/a" in case_row and ">error<" not in case_row and "q-3" in case_row

    shipping = results["q-2"]
    names = [h["external_id"] for h in shipping["retrieved"]]
    assert len(names) > len(set(names))  # several chunks of one document were retrieved...
    shipping_row = re.search(r'<tr data-case-id="' + shipping["case_id"] + r'">(.*?)</tr>', page).group(1)
    retrieved_cell = re.findall(r"<td>([^<]*(?:<(?!/td>)[^<]*)*)</td>", shipping_row)
    listed = [c for c in retrieved_cell if "shipping.md" in c][0]
    assert listed.count("shipping.md") == 1  # ...but each document is listed once
    assert "data-relevant='true'>✓ shipping.md</b>" in listed
    assert "✓ faq.txt" not in listed

    csv_text = api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/report?format=csv").get_data(as_text=True)
    assert '{""query_id"": ""q-3""}' in csv_text
