"""Evaluations through the API over a really synced source: runs on the real job queue, metrics checked
against values computed by hand from what the retrieval returned, judges through a real HTTP fake LLM."""
import csv
import io
import json
import math

import pytest

from tests.conftest import wait_for
from tests.support.fake_llm import Reply, Sleep, Status

pytestmark = pytest.mark.slow

CASES = [
    {"input": "How long do refunds take?", "expected_sources": ["faq.txt"]},
    {"input": "When do parcels ship?", "expected_sources": ["shipping.md"]},
    {"input": "How often must passwords be rotated?", "expected_sources": [{"id": "security.md", "grade": 2}]},
    {"input": "Where is the annual report?", "expected_sources": ["report-2025.pdf"]},
]


def _tool(api, kind, body):
    res = api.post(f"/api/{kind}", json=body)
    assert res.status_code == 202, res.json
    tool = res.json["data"]
    assert wait_for(lambda: api.get(f"/api/{kind}/{tool['id']}").json["data"]["status"]["status"],
                    lambda s: s != "building") == "ready"
    return tool


@pytest.fixture
def retrieval_tool(api, synced):
    return _tool(api, "retrieval-tools", {"name": "kb search", "knowledge_source_id": synced["id"], "top_k": 3})


def _evaluation(api, **body):
    res = api.post("/api/evaluations", json=body)
    assert res.status_code == 201, res.json
    return res.json["data"]


def _run(api, evaluation_id, **body):
    res = api.post(f"/api/evaluations/{evaluation_id}/run", json=body)
    assert res.status_code == 202, res.json
    run = res.json["data"]
    assert run["status"] == "queued" and run["progress"] == {"done": 0, "total": run["progress"]["total"]}
    return wait_for(lambda: api.get(f"/api/evaluations/{evaluation_id}/runs/{run['id']}").json["data"],
                    lambda r: r["status"] not in ("queued", "running"))


def _results(api, evaluation_id, run_id=None):
    query = f"?limit=100&run_id={run_id}" if run_id else "?limit=100"
    res = api.get(f"/api/evaluations/{evaluation_id}/results{query}")
    assert res.status_code == 200, res.json
    return res.json["data"]


def _rank_of(retrieved: list[dict], source: str) -> int | None:
    """1-based rank of a document among the distinct documents retrieved, as qrels judge documents."""
    seen = []
    for hit in retrieved:
        if hit["external_id"] not in seen:
            seen.append(hit["external_id"])
    return seen.index(source) + 1 if source in seen else None


def test_retrieval_evaluation_scores_match_hand_computed_values(api, retrieval_tool):
    evaluation = _evaluation(api, name="kb suite", type="retrieval_tool", target_id=retrieval_tool["id"],
                             metrics=["hit@1", "recall@3", "mrr", "ndcg@3"], thresholds={"hit@1": 0.5},
                             test_cases=CASES)
    assert evaluation["test_case_count"] == 4 and evaluation["last_run"] is None
    run = _run(api, evaluation["id"])
    assert run["status"] == "completed", run
    assert run["progress"] == {"done": 4, "total": 4} and run["cases_failed"] == 0
    snapshot = run["target_snapshot"]
    assert snapshot["tool"]["chunk_size"] == retrieval_tool["chunk_size"]
    assert snapshot["indexes"][0]["status"] == "ready" and snapshot["embedding_model"]["provider"] == "local"

    data = _results(api, evaluation["id"])
    assert data["run"]["id"] == run["id"]
    by_input = {r["input"]: r for r in data["results"]}
    assert len(by_input) == 4
    expected: dict[str, list[float]] = {"hit@1": [], "recall@3": [], "mrr": [], "ndcg@3": []}
    for case in CASES:
        result = by_input[case["input"]]
        source = case["expected_sources"][0]
        source = source if isinstance(source, str) else source["id"]
        # The evaluation saw what the search endpoint returns for the same query.
        search = api.post(f"/api/retrieval-tools/{retrieval_tool['id']}/search",
                          json={"query": case["input"], "top_k": len(result["retrieved"])}).json["data"]
        assert [h["metadata"]["chunk_id"] for h in search["results"]] == [h["chunk_id"] for h in result["retrieved"]]
        rank = _rank_of(result["retrieved"], source)
        hand = {
            "hit@1": 1.0 if rank == 1 else 0.0,
            "recall@3": 1.0 if rank and rank <= 3 else 0.0,
            "mrr": 1.0 / rank if rank else 0.0,
            # one relevant document: DCG = gain / log2(rank + 1), ideal DCG = gain / log2(2)
            "ndcg@3": 1.0 / math.log2(rank + 1) if rank and rank <= 3 else 0.0,
        }
        for name, value in hand.items():
            assert result["scores"][name] == pytest.approx(value), (case["input"], name)
            expected[name].append(value)
    assert by_input["How long do refunds take?"]["scores"]["hit@1"] == 1.0  # the obvious one is found first
    missing = by_input["Where is the annual report?"]
    assert missing["warnings"] == ["expected source 'report-2025.pdf' matches no document of the target's "
                                   "knowledge sources"]
    for name, values in expected.items():
        aggregate = run["metrics"][name]
        assert aggregate["score"] == pytest.approx(sum(values) / 4)
        assert aggregate["covered"] == aggregate["total"] == 4
        assert aggregate["ci_low"] <= aggregate["score"] <= aggregate["ci_high"]
    assert run["thresholds"]["hit@1"] == {"threshold": 0.5, "score": pytest.approx(sum(expected["hit@1"]) / 4),
                                          "passed": sum(expected["hit@1"]) / 4 >= 0.5}
    assert run["passed"] is run["thresholds"]["hit@1"]["passed"]
    assert api.get(f"/api/evaluations/{evaluation['id']}").json["data"]["last_run"]["id"] == run["id"]
    listed = api.get(f"/api/evaluations/{evaluation['id']}/runs").json
    assert [r["id"] for r in listed["data"]] == [run["id"]] and listed["pagination"]["total"] == 1


def test_compare_two_runs_and_download_reports(api, retrieval_tool):
    evaluation = _evaluation(api, name="compare", type="retrieval_tool", target_id=retrieval_tool["id"],
                             metrics=["mrr", "hit@1"], test_cases=CASES[:3])
    base = _run(api, evaluation["id"])
    # A worse system: lexical retrieval of a single passage.
    api.put(f"/api/retrieval-tools/{retrieval_tool['id']}", json={"mode": "lexical", "top_k": 1})
    head = _run(api, evaluation["id"])
    assert head["target_snapshot"]["tool"]["retrieval"]["mode"] == "lexical"
    res = api.get(f"/api/evaluations/compare?base={base['id']}&head={head['id']}")
    assert res.status_code == 200, res.json
    comparison = res.json["data"]
    mrr = comparison["metrics"]["mrr"]
    base_cases = {r["case_id"]: r["scores"]["mrr"] for r in _results(api, evaluation["id"], base["id"])["results"]}
    head_cases = {r["case_id"]: r["scores"]["mrr"] for r in _results(api, evaluation["id"], head["id"])["results"]}
    deltas = {case: head_cases[case] - base_cases[case] for case in base_cases}
    assert mrr["n"] == 3
    assert mrr["delta"] == pytest.approx(sum(deltas.values()) / 3)
    assert mrr["wins"] == sum(d > 1e-9 for d in deltas.values())
    assert mrr["losses"] == sum(d < -1e-9 for d in deltas.values())
    assert mrr["wins"] + mrr["losses"] + mrr["ties"] == 3
    assert mrr["significant"] is False  # three cases cannot show significance at 0.05
    assert mrr["verdict"] == "no significant change"

    html = api.get(f"/api/evaluations/{evaluation['id']}/runs/{head['id']}/report?format=html&against={base['id']}")
    assert html.status_code == 200 and html.mimetype == "text/html"
    page = html.get_data(as_text=True)
    assert "compare" in page and head["id"] in page and base["id"] in page and "<svg" in page
    csv_res = api.get(f"/api/evaluations/{evaluation['id']}/runs/{head['id']}/report?format=csv")
    rows = list(csv.DictReader(io.StringIO(csv_res.get_data(as_text=True))))
    assert len(rows) == 3 and {"mrr", "hit@1", "input"} <= set(rows[0])
    as_json = json.loads(api.get(f"/api/evaluations/{evaluation['id']}/runs/{head['id']}/report?format=json")
                         .get_data(as_text=True))
    assert as_json["run"]["id"] == head["id"] and len(as_json["results"]) == 3

    other = _evaluation(api, name="other", type="retrieval_tool", target_id=retrieval_tool["id"],
                        metrics=["mrr"], test_cases=[{"input": "Who signs invoices?", "expected_sources": ["faq.txt"]}])
    other_run = _run(api, other["id"])
    mixed = api.get(f"/api/evaluations/compare?base={base['id']}&head={other_run['id']}")
    assert mixed.status_code == 422 and mixed.json["error"]["code"] == "no_matching_cases"
    assert api.get(f"/api/evaluations/compare?base={base['id']}&head=run_nope").status_code == 404


def test_import_test_cases_from_files_all_or_nothing(api, retrieval_tool):
    evaluation = _evaluation(api, name="imports", type="retrieval_tool", target_id=retrieval_tool["id"])
    assert [m["name"] for m in evaluation["metrics"]] == ["hit@10", "recall@10", "mrr@10", "ndcg@10"]
    path = f"/api/evaluations/{evaluation['id']}/test-cases"
    body = 'question,expected_sources\n"Refunds, how long?",faq.txt\nWhen do parcels ship?,shipping.md:2|faq.txt\n'
    res = api.post(path, data=body, headers={"Content-Type": "text/csv"})
    assert res.status_code == 201, res.json
    assert res.json["data"] == {"imported": 2, "total": 2, "format": "csv", "replaced": False}
    cases = api.get(path).json["data"]
    assert cases[0]["input"] == "Refunds, how long?"
    assert cases[1]["expected_sources"] == [{"id": "shipping.md", "grade": 2.0}, {"id": "faq.txt", "grade": 1.0}]

    jsonl = b'{"input": "ok one", "expected_sources": ["faq.txt"]}\n{"input": "broken"\n'
    res = api.post(path, data={"file": (io.BytesIO(jsonl), "cases.jsonl")}, content_type="multipart/form-data")
    assert res.status_code == 422 and res.json["error"]["code"] == "invalid_test_cases"
    assert res.json["error"]["details"]["errors"][0]["line"] == 2
    assert api.get(path).json["pagination"]["total"] == 2  # nothing of the bad file was added

    good = b'{"input": "Who rotates passwords?", "expected_sources": ["security.md"]}\n'
    res = api.post(path + "?replace=true", data={"file": (io.BytesIO(good), "cases.jsonl")},
                   content_type="multipart/form-data")
    assert res.status_code == 201 and res.json["data"]["total"] == 1


def test_bad_evaluations_are_refused_with_the_reason(api, retrieval_tool):
    target = retrieval_tool["id"]

    def refused(status, code=None, **body):
        res = api.post("/api/evaluations", json={"name": "bad", "type": "retrieval_tool", "target_id": target,
                                                 **body})
        assert res.status_code == status, res.json
        if code:
            assert res.json["error"]["code"] == code
        return res.json["error"]["message"]

    assert "unknown metric 'ndgc@10'" in refused(422, metrics=["ndgc@10"])
    assert "k must be between 1" in refused(422, metrics=["ndcg@0"])
    assert "needs a cut-off" in refused(422, metrics=["recall"])
    assert "a retrieval_tool target cannot feed it" in refused(422, metrics=["token_f1"])
    assert "not one of the suite's metrics" in refused(422, metrics=["mrr"], thresholds={"ndcg@10": 0.5})
    assert "no retrieval_tool has the id" in refused(422, target_id="ret_missing")
    assert "no agent has the id agent_missing" in refused(422, type="agent", target_id="agent_missing",
                                                          metrics=["token_f1"])
    agent = api.post("/api/agents", json={"name": "evaluated agent"}).json["data"]
    assert "cannot feed it" in refused(422, type="agent", target_id=agent["id"], metrics=["ndcg@10"])
    refused(422, "validation_failed", metrics=["mrr"], settings={"concurrency": 0})
    bad_case = refused(422, "invalid_test_cases", test_cases=[{"input": ""}, {"question": 3}])
    assert "test cases are invalid" in bad_case

    empty = _evaluation(api, name="empty", type="retrieval_tool", target_id=target, metrics=["mrr"])
    res = api.post(f"/api/evaluations/{empty['id']}/run", json={})
    assert res.status_code == 422 and res.json["error"]["code"] == "empty_test_set"
    res = api.post("/api/evaluations", json={"name": "empty", "type": "retrieval_tool", "target_id": target})
    assert res.status_code == 409 and res.json["error"]["code"] == "duplicate_name"
    assert api.get("/api/evaluations/eval_missing").status_code == 404
    assert api.post("/api/evaluations/eval_missing/run", json={}).status_code == 404
    assert api.get(f"/api/evaluations/{empty['id']}/results").json["error"]["code"] == "no_runs"


def _chat_model(api, llm):
    res = api.post("/api/models", json={
        "name": "fake-gpt", "provider": "openai_compatible", "model_id": "fake-model", "kind": "chat",
        "endpoint": llm.base_url, "api_key": "sk-test", "pricing": {"input_per_1k": 1.0, "output_per_1k": 2.0}})
    assert res.status_code == 201, res.json
    return res.json["data"]


def test_rag_evaluation_with_a_judge_keeps_failed_cases(api, synced, llm):
    model = _chat_model(api, llm)
    tool = _tool(api, "rag-tools", {"name": "helpdesk", "knowledge_source_id": synced["id"], "top_k": 2,
                                    "model_id": model["id"]})
    evaluation = _evaluation(
        api, name="rag suite", type="rag_tool", target_id=tool["id"],
        metrics=["token_f1", "faithfulness", "citation_precision"],
        settings={"concurrency": 1, "retries": 0, "judge_model_id": model["id"]},
        test_cases=[
            {"input": "How long do refunds take?", "expected_output": "fourteen days", "expected_sources": ["faq.txt"]},
            {"input": "When do parcels ship?", "expected_output": "within three working days"},
            {"input": "How often must passwords be rotated?", "expected_output": "every ninety days"},
        ])
    supported = json.dumps({"claims": [{"claim": "Refunds take fourteen days.", "supported": True},
                                       {"claim": "They are free.", "supported": False}]})
    llm.script(
        Reply("Refunds take fourteen days [1].", prompt_tokens=100, completion_tokens=10),  # case 1 answer
        Reply(supported, prompt_tokens=50, completion_tokens=20),  # case 1 judge
        Reply("Parcels ship within three working days [1].", prompt_tokens=100, completion_tokens=10),
        Reply("not json at all", prompt_tokens=50, completion_tokens=5),  # case 2 judge, then its repair
        Reply("still not json", prompt_tokens=50, completion_tokens=5),
        Status(400, "bad request from the provider"),  # case 3: the target itself fails
    )
    run = _run(api, evaluation["id"])
    assert run["status"] == "completed", run
    assert run["cases_failed"] == 1 and "1 of 3 cases failed" in run["message"]
    results = {r["ordinal"]: r for r in _results(api, evaluation["id"])["results"]}
    first, second, third = results[0], results[1], results[2]
    assert first["status"] == "ok" and first["answer"] == "Refunds take fourteen days [1]."
    # token F1 of "refunds take fourteen days 1" against "fourteen days": 2 shared tokens,
    # precision 2/5, recall 2/2 -> F1 = 2 * 0.4 * 1 / 1.4
    assert first["scores"]["token_f1"] == pytest.approx(2 * 0.4 * 1.0 / 1.4)
    assert first["scores"]["faithfulness"] == pytest.approx(0.5)  # one of two claims supported
    assert first["scores"]["citation_precision"] == 1.0  # it cited faq.txt, the expected source
    assert first["tokens"] == {"input": 150, "output": 30}
    assert first["cost"] == pytest.approx((150 * 1.0 + 30 * 2.0) / 1000)
    assert second["status"] == "ok" and second["scores"]["faithfulness"] is None
    assert "faithfulness" in second["metric_errors"]
    assert second["scores"]["citation_precision"] is None  # no expected sources: nothing to be precise about
    assert third["status"] == "error" and "HTTP 400" in third["error"] and third["scores"] == {}
    faith = run["metrics"]["faithfulness"]
    assert faith == {**faith, "score": pytest.approx(0.5), "covered": 1, "total": 3, "errors": 1}
    assert run["metrics"]["token_f1"]["covered"] == 2
    assert run["totals"]["errors"] == 1 and run["totals"]["tokens"]["input"] == 150 + 100 + 100
    assert run["target_snapshot"]["judge_model"]["id"] == model["id"]


def test_a_slow_case_times_out_is_retried_and_recorded(api, synced, llm):
    model = _chat_model(api, llm)
    tool = _tool(api, "rag-tools", {"name": "slow", "knowledge_source_id": synced["id"], "model_id": model["id"]})
    evaluation = _evaluation(api, name="slow suite", type="rag_tool", target_id=tool["id"], metrics=["token_f1"],
                             settings={"concurrency": 1, "retries": 1, "timeout_s": 1},
                             test_cases=[{"input": "refunds?", "expected_output": "fourteen days"}])
    llm.script(Sleep(3, Reply("late")), Sleep(3, Reply("late")))
    run = _run(api, evaluation["id"])
    [result] = _results(api, evaluation["id"])["results"]
    assert result["status"] == "timeout" and result["attempts"] == 2 and "within 1 s" in result["error"]
    assert run["status"] == "completed" and run["totals"]["timeouts"] == 1
    assert run["metrics"]["token_f1"]["score"] is None and run["metrics"]["token_f1"]["covered"] == 0


def test_cancel_keeps_the_scored_cases(api, synced, llm):
    model = _chat_model(api, llm)
    tool = _tool(api, "rag-tools", {"name": "sleepy", "knowledge_source_id": synced["id"], "model_id": model["id"]})
    cases = [{"input": f"question {i} about refunds", "expected_output": "fourteen days"} for i in range(6)]
    evaluation = _evaluation(api, name="long", type="rag_tool", target_id=tool["id"], metrics=["token_f1"],
                             settings={"concurrency": 1, "retries": 0}, test_cases=cases)
    llm.script(*[Sleep(0.4, Reply("fourteen days")) for _ in range(6)])
    run = api.post(f"/api/evaluations/{evaluation['id']}/run", json={}).json["data"]
    wait_for(lambda: api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}").json["data"],
             lambda r: r["progress"]["done"] >= 1, interval=0.05)
    res = api.post(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/cancel")
    assert res.status_code == 202 and res.json["data"]["cancel_requested"] is True
    ended = wait_for(lambda: api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}").json["data"],
                     lambda r: r["status"] not in ("queued", "running"))
    assert ended["status"] == "cancelled" and ended["passed"] is None
    assert 1 <= ended["progress"]["done"] < 6
    assert ended["metrics"]["token_f1"]["total"] == ended["progress"]["done"]
    assert api.post(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/cancel").status_code == 409



def test_an_interrupted_run_resumes_without_redoing_scored_cases(app, api, retrieval_tool):
    from app.extensions import db
    from app.models import EvaluationResult, EvaluationRun
    from app.services import eval_runs

    evaluation = _evaluation(api, name="resume", type="retrieval_tool", target_id=retrieval_tool["id"],
                             metrics=["mrr"], test_cases=CASES)
    finished = _run(api, evaluation["id"])
    first_results = {r.case_id: r.id for r in db.session.query(EvaluationResult).filter_by(run_id=finished["id"])}
    # Make it look like its worker died after scoring two cases: still 'running', no heartbeat.
    db.session.query(EvaluationResult).filter(EvaluationResult.run_id == finished["id"],
                                              EvaluationResult.ordinal >= 2).delete()
    row = db.session.get(EvaluationRun, finished["id"])
    row.status, row.cases_done, row.finished_at, row.heartbeat_at, row.metrics = "running", 2, None, None, {}
    db.session.commit()

    assert eval_runs.recover_interrupted_runs() == [finished["id"]]
    resumed = wait_for(lambda: api.get(f"/api/evaluations/{evaluation['id']}/runs/{finished['id']}").json["data"],
                       lambda r: r["status"] not in ("queued", "running"))
    assert resumed["status"] == "completed" and resumed["progress"] == {"done": 4, "total": 4}
    assert resumed["metrics"]["mrr"] == finished["metrics"]["mrr"]  # same cases, same scores
    db.session.expire_all()
    after = {r.case_id: r.id for r in db.session.query(EvaluationResult).filter_by(run_id=finished["id"])}
    assert set(after) == set(first_results)
    kept = [case for case, result_id in first_results.items() if after[case] == result_id]
    assert len(kept) == 2  # the two scored cases were not run again
