"""Human review of evaluation runs over the real stack: a prompt-template suite answered and judged through
the fake LLM (so the judge's verdicts are known), review items, claims, grades, the human metric, and the
judge-human agreement checked against kappa and Spearman worked out by hand."""
import json
import math
import threading

import pytest

from tests.conftest import wait_for
from tests.support.fake_llm import Reply

pytestmark = pytest.mark.slow

# Per case: the judge's correctness rating (1-5, so 0..1 = (r - 1) / 4) and the human grade.
JUDGE_RATINGS = [5, 4, 1, 2, 5, 3, 5]  # -> 1, .75, 0, .25, 1, .5, 1; the judge passes from 0.5: T T F F T T T
HUMAN = [("pass", 5), ("fail", 2), ("fail", 1), ("pass", 4), ("pass", 4), ("pass", None)]  # case 6 never graded


@pytest.fixture
def judged_suite(api, chat_model, worker):
    template = api.post("/api/prompt-templates", json={
        "name": "qa", "type": "user", "template": "Answer briefly: {{question}}", "variables": ["question"]})
    assert template.status_code == 201, template.json
    res = api.post("/api/evaluations", json={
        "name": "judged", "type": "prompt_template", "target_id": template.json["data"]["id"],
        "metrics": ["correctness"],
        "settings": {"concurrency": 1, "retries": 0, "model_id": chat_model["id"], "judge_model_id": chat_model["id"]},
        "test_cases": [{"input": f"question {i}?", "expected_output": f"answer {i}"} for i in range(len(JUDGE_RATINGS))]})
    assert res.status_code == 201, res.json
    return res.json["data"]


def _run(api, llm, evaluation):
    script = []
    for i, rating in enumerate(JUDGE_RATINGS):  # concurrency 1: each case's answer, then its judgment
        script += [Reply(f"reply {i}"), Reply(json.dumps({"score": rating, "reason": "as scripted"}))]
    llm.script(*script)
    res = api.post(f"/api/evaluations/{evaluation['id']}/run", json={})
    assert res.status_code == 202, res.json
    run = wait_for(lambda: api.get(f"/api/evaluations/{evaluation['id']}/runs/{res.json['data']['id']}").json["data"],
                   lambda r: r["status"] not in ("queued", "running"))
    assert run["status"] == "completed", run
    return run


def _reviews(api, evaluation, run, **body):
    return api.post(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/reviews", json=body)


def _items(api, run):
    res = api.get(f"/api/review/items?run_id={run['id']}&limit=100&sort=ordinal&order=asc")
    assert res.status_code == 200, res.json
    return res.json["data"]


def _error(res, status, code=None):
    assert res.status_code == status, (res.status_code, res.json)
    assert res.json["success"] is False and res.json["error"]["message"]
    if code:
        assert res.json["error"]["code"] == code
    return res.json["error"]


def test_review_items_grades_human_metric_and_judge_agreement(api, llm, judged_suite, make_key):
    evaluation = judged_suite
    run = _run(api, llm, evaluation)
    assert run["human_review"] is None
    scores = {r["ordinal"]: r["scores"]["correctness"] for r in api.get(
        f"/api/evaluations/{evaluation['id']}/results?limit=100").json["data"]["results"]}
    assert scores == {i: (r - 1) / 4 for i, r in enumerate(JUDGE_RATINGS)}

    # A seeded sample is deterministic: asking again selects the same cases and creates nothing.
    sample = _reviews(api, evaluation, run, select="sample", n=3, seed=7)
    assert sample.status_code == 201, sample.json
    assert sample.json["data"]["created"] == 3 and sample.json["data"]["selected"] == 3
    again = _reviews(api, evaluation, run, select="sample", n=3, seed=7).json["data"]
    assert again["created"] == 0 and again["already_under_review"] == 3
    assert [i["case_id"] for i in again["items"]] == [i["case_id"] for i in sample.json["data"]["items"]]
    # Failing: the cases the judge scored under 0.5 (no threshold set): ordinals 2 and 3.
    failing = _reviews(api, evaluation, run, select="failing").json["data"]
    assert sorted(i["ordinal"] for i in failing["items"]) == [2, 3]
    everything = _reviews(api, evaluation, run, select="all").json["data"]
    assert everything["selected"] == 7 and everything["created"] == 7 - len(
        {i["case_id"] for i in sample.json["data"]["items"] + failing["items"]})
    items = _items(api, run)
    assert len(items) == 7 and {i["status"] for i in items} == {"PENDING"}
    assert len({i["case_id"] for i in items}) == 7  # never duplicated

    # What a reviewer sees.
    detail = api.get(f"/api/review/items/{items[0]['id']}").json["data"]
    assert detail["input"] == "question 0?" and detail["expected_output"] == "answer 0"
    assert detail["answer"] == "reply 0" and detail["citations"] == [] and detail["retrieved"] == []
    assert detail["result"]["scores"]["correctness"] == 1.0 and detail["grades"] == []

    # Claim, then someone else cannot grade it; the claimer can; a re-grade keeps the history.
    alice, bob = make_key("reviewer"), make_key("reviewer")
    # Reviewers find the items in their queue beside hand-off requests; viewers cannot reach them.
    queue = api.get("/api/review/tasks?kind=evaluation_review&status=PENDING&limit=100", key=alice)
    assert queue.status_code == 200, queue.json
    assert {i["id"] for i in queue.json["data"]} == {i["id"] for i in items}
    assert {(i["kind"], i["requester"]["type"], i["deadline_at"]) for i in queue.json["data"]} == {
        ("evaluation_review", "evaluation", None)}
    assert api.get("/api/review/tasks?overdue=true&kind=evaluation_review", key=alice).json["data"] == []
    _error(api.get("/api/review/items", key=make_key("viewer")), 403, "insufficient_role")
    first = items[1]["id"]
    claimed = api.post(f"/api/review/items/{first}/claim", key=alice)
    assert claimed.status_code == 200 and claimed.json["data"]["status"] == "IN_PROGRESS"
    assert claimed.json["data"]["claimed_by"] and claimed.json["data"]["claimed_at"].endswith("Z")
    assert api.post(f"/api/review/items/{first}/claim", key=alice).status_code == 200  # own claim again
    _error(api.post(f"/api/review/items/{first}/claim", key=bob), 409, "review_claimed")
    _error(api.post(f"/api/review/items/{first}/grade", key=bob, json={"verdict": "pass"}), 409, "review_claimed")
    graded = api.post(f"/api/review/items/{first}/grade", key=alice, json={"verdict": "pass", "score": 5})
    assert graded.status_code == 200 and graded.json["data"]["status"] == "COMPLETED"
    regraded = api.post(f"/api/review/items/{first}/grade", key=bob, json={"verdict": "fail", "score": 2,
                                                                          "comment": "misses the point"})
    data = regraded.json["data"]
    assert data["verdict"] == "fail" and data["score"] == 2 and data["comment"] == "misses the point"
    assert [(g["verdict"], g["score"]) for g in data["grades"]] == [("pass", 5), ("fail", 2)]
    _error(api.post(f"/api/review/items/{first}/claim", key=alice), 409, "review_completed")

    for item, (verdict, score) in zip(items, HUMAN, strict=False):
        body = {"verdict": verdict, **({"score": score} if score else {})}
        assert api.post(f"/api/review/items/{item['id']}/grade", key=alice, json=body).status_code == 200

    review = api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}").json["data"]["human_review"]
    assert review["items"] == {"PENDING": 1, "IN_PROGRESS": 0, "COMPLETED": 6}
    human = review["human"]
    assert human["score"] == pytest.approx(4 / 6) and human["covered"] == 6 and human["total"] == 7
    assert human["coverage"] == pytest.approx(6 / 7) and human["ci_low"] <= 4 / 6 <= human["ci_high"]
    assert human["score_mean"] == pytest.approx((5 + 2 + 1 + 4 + 4) / 5)

    # Kappa by hand over the 6 cases with a verdict. judge (>= 0.5) vs human:
    # pass/pass: cases 0, 4, 5 = 3; pass/fail: case 1 = 1; fail/pass: case 3 = 1; fail/fail: case 2 = 1.
    kappa = review["agreement"]["correctness"]["kappa"]
    assert kappa["table"] == {"pass_pass": 3, "pass_fail": 1, "fail_pass": 1, "fail_fail": 1} and kappa["n"] == 6
    p_o = (3 + 1) / 6
    p_e = (4 / 6) * (4 / 6) + (2 / 6) * (2 / 6)  # both pass 4 of 6
    assert kappa["kappa"] == pytest.approx((p_o - p_e) / (1 - p_e)) == pytest.approx(0.25)
    # Spearman by hand over the 5 cases with a score: judge 1, .75, 0, .25, 1 vs human 5, 2, 1, 4, 4.
    judge_ranks, human_ranks = [4.5, 3, 1, 2, 4.5], [5, 2, 1, 3.5, 3.5]  # ties share the average rank
    dj, dh = [r - 3 for r in judge_ranks], [r - 3 for r in human_ranks]
    rho = sum(a * b for a, b in zip(dj, dh, strict=True)) / math.sqrt(sum(a * a for a in dj) * sum(b * b for b in dh))
    spearman = review["agreement"]["correctness"]["spearman"]
    assert spearman["n"] == 5 and spearman["rho"] == pytest.approx(rho) == pytest.approx(7.25 / 9.5)

    # Filters and the summary route.
    assert len(api.get(f"/api/review/items?run_id={run['id']}&status=PENDING").json["data"]) == 1
    assert api.get(f"/api/review/items?evaluation_id={evaluation['id']}&limit=100").json["pagination"]["total"] == 7
    summary = api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/reviews").json["data"]
    assert summary["agreement"] == review["agreement"]

    # Grades live with the run, not the report: two renders show them; the HTML has the section.
    reports = [json.loads(api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/report?format=json").data)
               for _ in range(2)]
    assert reports[0] == reports[1]
    assert reports[0]["run"]["metrics"]["human"]["score"] == pytest.approx(4 / 6)
    by_ordinal = {r["ordinal"]: r for r in reports[0]["results"]}
    assert by_ordinal[1]["human_review"]["verdict"] == "fail" and by_ordinal[1]["scores"]["human"] == 0.0
    assert by_ordinal[1]["human_review"]["graded_at"].endswith("Z")
    results = api.get(f"/api/evaluations/{evaluation['id']}/results?limit=100&run_id={run['id']}").json["data"]
    assert [r["human_review"]["verdict"] if r["human_review"] else None for r in results["results"]] == [
        v for v, _ in HUMAN] + [None]
    assert by_ordinal[6]["human_review"] is None and by_ordinal[6]["scores"]["human"] is None
    html = api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/report?format=html").data.decode()
    assert 'id="human-review"' in html and "Cohen" in html and "0.250" in html
    csv_text = api.get(f"/api/evaluations/{evaluation['id']}/runs/{run['id']}/report?format=csv").data.decode()
    assert "human" in csv_text.splitlines()[0].split(",")

    # Compare: a second run, two cases graded there too; `human` compares over the cases graded in both.
    head = _run(api, llm, evaluation)
    _reviews(api, evaluation, head, select="all")
    head_items = _items(api, head)
    for item in head_items[:2]:  # case 0: pass (as before); case 1: pass (was fail)
        api.post(f"/api/review/items/{item['id']}/grade", json={"verdict": "pass"})
    comparison = api.get(f"/api/evaluations/compare?base={run['id']}&head={head['id']}").json["data"]
    assert comparison["metrics"]["human"]["n"] == 2
    assert comparison["metrics"]["human"]["delta"] == pytest.approx(((1 + 1) - (1 + 0)) / 2)
    assert "correctness" in comparison["metrics"]


def test_concurrent_claims_one_wins(app, api, llm, judged_suite, make_key):
    run = _run(api, llm, judged_suite)
    _reviews(api, judged_suite, run, select="sample", n=1, seed=1)
    [item] = _items(api, run)
    keys = [make_key("operator") for _ in range(6)]
    barrier = threading.Barrier(len(keys))
    statuses = []

    def claim(key):
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(f"/api/review/items/{item['id']}/claim", headers={"X-API-Key": key}).status_code)

    threads = [threading.Thread(target=claim, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * (len(keys) - 1)
    assert api.get(f"/api/review/items/{item['id']}").json["data"]["status"] == "IN_PROGRESS"


def test_bad_review_requests_get_the_error_envelope(api, llm, judged_suite):
    evaluation = judged_suite
    run = _run(api, llm, evaluation)
    _error(_reviews(api, evaluation, {"id": "run_unknown"}, select="all"), 404, "not_found")
    _error(_reviews(api, evaluation, run, select="sample", n=0), 422)
    _error(_reviews(api, evaluation, run, select="sample"), 422)
    _error(_reviews(api, evaluation, run, select="some"), 422)
    _reviews(api, evaluation, run, select="all")
    item = _items(api, run)[0]["id"]
    _error(api.post(f"/api/review/items/{item}/grade", json={"score": 6}), 422)
    _error(api.post(f"/api/review/items/{item}/grade", json={"verdict": "maybe"}), 422)
    _error(api.post(f"/api/review/items/{item}/grade", json={"comment": "no grade"}), 422)
    _error(api.post("/api/review/items/rvi_unknown/claim"), 404, "not_found")
    _error(api.post(f"/api/review/items/{item}/release"), 409, "review_not_claimed")
    assert api.post(f"/api/review/items/{item}/claim").status_code == 200
    released = api.post(f"/api/review/items/{item}/release")
    assert released.status_code == 200 and released.json["data"]["status"] == "PENDING"
    _error(api.get("/api/review/items?status=DONE"), 422)
    # Deleting the evaluation takes its review items with it.
    assert api.delete(f"/api/evaluations/{evaluation['id']}").status_code == 200
    assert api.get(f"/api/review/items?evaluation_id={evaluation['id']}").json["pagination"]["total"] == 0
