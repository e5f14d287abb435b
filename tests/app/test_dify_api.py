"""Dify's External Knowledge API (`POST /api/dify/retrieval`) replayed with Dify's documented requests, and
every `metadata_condition` operator Dify documents, over a really synced source and real Chroma."""
import pytest

from tests.app.test_rag_api import _ready


@pytest.fixture
def dify_kb(api, synced):
    return _ready(api, "/api/retrieval-tools", {"name": "dify-kb", "knowledge_source_id": synced["id"], "top_k": 3})


def _records(api, tool, condition=None, query="how many days", top_k=3, **setting):
    body = {"knowledge_id": tool["id"], "query": query,
            "retrieval_setting": {"top_k": top_k, "score_threshold": 0.0, **setting}}
    if condition is not None:
        body["metadata_condition"] = condition
    res = api.post("/api/dify/retrieval", json=body)
    assert res.status_code == 200, res.json
    return res.json["records"]


def _sources(records):
    return {r["metadata"]["source"] for r in records}


def test_difys_documented_requests(api, dify_kb):
    # The request of Dify's "Request Syntax", with this tool as the knowledge.
    res = api.post("/api/dify/retrieval", json={"knowledge_id": dify_kb["id"], "query": "your question",
                                                "retrieval_setting": {"top_k": 2, "score_threshold": 0.5}})
    assert res.status_code == 200, res.json
    assert set(res.json) == {"records"} and len(res.json["records"]) <= 2
    for record in _records(api, dify_kb, query="express delivery price", top_k=2):
        assert set(record) == {"content", "score", "title", "metadata"} and isinstance(record["metadata"], dict)
        assert record["metadata"]["path"] == record["metadata"]["source"] and record["title"]
    # The metadata_condition of Dify's documentation: names as a list, `contains`; no document has them.
    documented = {"logical_operator": "and",
                  "conditions": [{"name": ["category", "tag"], "comparison_operator": "contains", "value": "AI"}]}
    assert _records(api, dify_kb, documented) == []
    # `empty` / `not empty` without a value, as the docs allow.
    assert _sources(_records(api, dify_kb, {"conditions": [{"name": ["category"], "comparison_operator": "empty"}]})) \
        == {"faq.txt", "shipping.md", "security.md"}


def test_is_on_source_finds_the_document_by_file_name_however_low_it_ranks(api, dify_kb):
    # "faq.txt" is about refunds; asked about shipping it is not among the top hits, yet the filter finds it.
    unfiltered = _records(api, dify_kb, query="express delivery price", top_k=1)
    assert _sources(unfiltered) == {"shipping.md"}
    records = _records(api, dify_kb, {"conditions": [{"name": "source", "comparison_operator": "is",
                                                      "value": "faq.txt"}]}, query="express delivery price", top_k=1)
    assert _sources(records) == {"faq.txt"}


ALL = {"faq.txt", "shipping.md", "security.md"}


@pytest.mark.parametrize("name, operator, value, expected", [
    ("source", "contains", "SHIP", {"shipping.md"}),
    ("source", "not contains", ".md", {"faq.txt"}),
    ("title", "start with", "Sec", {"security.md"}),
    ("path", "end with", ".txt", {"faq.txt"}),
    ("source", "is", "faq.txt", {"faq.txt"}),
    ("source", "is not", "faq.txt", {"shipping.md", "security.md"}),
    ("source", "in", ["faq.txt", "security.md"], {"faq.txt", "security.md"}),
    ("name", "not in", ["faq.txt", "security.md"], {"shipping.md"}),
    ("section", "empty", None, {"faq.txt"}),
    ("section", "not empty", None, {"shipping.md", "security.md"}),
    ("section", "contains", "secur", {"security.md"}),
    ("section", "is", "Shipping", {"shipping.md"}),
    ("ordinal", "=", 0, ALL),
    ("ordinal", "≠", 0, set()),
    ("ordinal", ">", 0, set()),
    ("ordinal", "<", 1, ALL),
    ("ordinal", "≥", "0", ALL),
    ("ordinal", "≤", -1, set()),
    # A number as a date is a Unix timestamp: ordinal 0 is 1970-01-01T00:00:00Z.
    ("ordinal", "before", "2000-01-01", ALL),
    ("ordinal", "after", "2000-01-01T00:00:00Z", set()),
])
def test_every_documented_operator(api, dify_kb, name, operator, value, expected):
    condition = {"name": name, "comparison_operator": operator}
    if value is not None:
        condition["value"] = value
    assert _sources(_records(api, dify_kb, {"logical_operator": "and", "conditions": [condition]})) == expected


def test_conditions_join_with_the_logical_operator(api, dify_kb):
    either = {"logical_operator": "or", "conditions": [
        {"name": "source", "comparison_operator": "is", "value": "faq.txt"},
        {"name": "section", "comparison_operator": "contains", "value": "Security"}]}
    assert _sources(_records(api, dify_kb, either)) == {"faq.txt", "security.md"}
    both = {"logical_operator": "and", "conditions": [
        {"name": "source", "comparison_operator": "end with", "value": ".md"},
        {"name": "section", "comparison_operator": "contains", "value": "Security"}]}
    assert _sources(_records(api, dify_kb, both)) == {"security.md"}
    by_names = {"logical_operator": "or",
                "conditions": [{"name": ["title", "source"], "comparison_operator": "contains", "value": "faq"}]}
    assert _sources(_records(api, dify_kb, by_names)) == {"faq.txt"}


@pytest.mark.parametrize("condition, field", [
    ({"name": "source", "comparison_operator": "matches", "value": "x"}, "comparison_operator"),
    ({"name": "page", "comparison_operator": ">", "value": "three"}, "value"),
    ({"name": "source", "comparison_operator": "is"}, "value"),
    ({"name": [], "comparison_operator": "is", "value": "x"}, "name"),
    ({"name": "created", "comparison_operator": "before", "value": "last week"}, "value"),
])
def test_a_bad_condition_is_422_naming_it(api, dify_kb, condition, field):
    res = api.post("/api/dify/retrieval", json={"knowledge_id": dify_kb["id"], "query": "q",
                                                "retrieval_setting": {"top_k": 2, "score_threshold": 0.0},
                                                "metadata_condition": {"conditions": [condition]}})
    assert res.status_code == 422, res.json
    assert res.json["error"]["code"] == "invalid_filter"
    assert list(res.json["error"]["details"]["fields"]) == [f"metadata_condition.conditions[0].{field}"]
