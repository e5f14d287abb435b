"""An index's counts come from what it holds: a sync fills the source's index directly, so a run's target
snapshot, a tool's status and the index itself must not say 0 documents for an index that holds them."""
from tests.app.test_evaluations_api import _evaluation, _run, _tool


def test_counts_are_those_of_the_index_as_it_is(api, synced):
    tool = _tool(api, "retrieval-tools", {"name": "kb search", "knowledge_source_id": synced["id"], "top_k": 3})
    docs = api.get(f"/api/knowledge-sources/{synced['id']}/documents").json["data"]
    chunks = sum(d["chunk_count"] for d in docs)
    assert len(docs) == 3 and chunks >= 3

    assert api.get(f"/api/retrieval-tools/{tool['id']}").json["data"]["status"]["progress"] == {"done": 3, "total": 3}
    [index] = api.get(f"/api/knowledge-sources/{synced['id']}/indexes").json["data"]
    assert index["progress"] == {"done": 3, "total": 3}

    evaluation = _evaluation(api, name="counts", type="retrieval_tool", target_id=tool["id"], metrics=["hit@1"],
                             test_cases=[{"input": "How long do refunds take?", "expected_sources": ["faq.txt"]}])
    run = _run(api, evaluation["id"])
    assert run["status"] == "completed", run
    [shot] = run["target_snapshot"]["indexes"]
    assert shot["id"] == index["id"] and shot["documents"] == 3 and shot["chunks"] == chunks
    assert shot["progress"] == {"done": 3, "total": 3}

    # A second index with other settings is built from stored text; its counts are its own.
    res = api.post(f"/api/knowledge-sources/{synced['id']}/indexes", json={"chunk_size": 64, "chunk_overlap": 8})
    assert res.status_code == 202, res.json
    from tests.conftest import wait_for

    built = wait_for(lambda: api.get(f"/api/knowledge-sources/{synced['id']}/indexes/{res.json['data']['id']}")
                     .json["data"], lambda i: i["status"] != "building")
    assert built["status"] == "ready" and built["progress"] == {"done": 3, "total": 3}
