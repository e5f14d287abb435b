"""Text no database can store is a 400, never a 500: a NUL character (PostgreSQL text cannot hold it)
or a lone UTF-16 surrogate (not Unicode text; fails to encode for SQLite and PostgreSQL alike).

The check covers the URL path, the query and the whole JSON body (keys and values, nested); multipart
file content is not text, and its NUL bytes stay legal. A body nested too deeply to parse is invalid_json.
"""
import io
from pathlib import Path

import pytest

from tests.app.test_contract import _assert_error

PDF = (Path(__file__).resolve().parent.parent / "fixtures" / "pdf" / "bank_statement.pdf").read_bytes()


def _refused(res, location, field):
    error = _assert_error(res, 400, "bad_request")
    assert error["details"] == {"location": location, "field": field}
    assert "NUL" in error["message"] and "surrogate" in error["message"] and field in error["message"]


@pytest.mark.parametrize("body, field", [
    ({"name": "agent\u0000"}, "name"),
    ({"name": "ok", "description": "a\u0000b"}, "description"),
    ({"name": "ok", "topics": ["fine", "bad\u0000"]}, "topics[1]"),
    ({"name": "ok", "settings": {"deep": [{"x\u0000": 1}]}}, "settings.deep[0].x\\u0000"),
])
def test_nul_anywhere_in_a_json_body_is_400(api, body, field):
    _refused(api.post("/api/agents", json=body), "json", field)
    assert api.get("/api/agents").json["pagination"]["total"] == 0  # refused before anything was stored


def test_nul_in_an_update_body_is_400(api):
    agent = api.post("/api/agents", json={"name": "kept"}).json["data"]
    _refused(api.put(f"/api/agents/{agent['id']}", json={"name": "re\u0000named"}), "json", "name")
    assert api.get(f"/api/agents/{agent['id']}").json["data"]["name"] == "kept"


def test_nul_in_the_query_or_path_is_400(api):
    _refused(api.get("/api/conversations?agent_id=%00"), "query", "agent_id")
    _refused(api.get("/api/agents?sort=name&na%00me=x"), "query", "na\\u0000me")
    _refused(api.get("/api/agents/agent_%00"), "path", "/api/agents/agent_\\u0000")


def test_an_escaped_backslash_is_ordinary_text(api):
    # The JSON text "a\\u0000b" is six characters with a backslash, not a NUL: the fast scan's hit is
    # confirmed on the parsed body, and the name is stored as sent.
    res = api.post("/api/agents", data='{"name": "a\\\\u0000b"}', content_type="application/json")
    assert res.status_code == 201, res.json
    assert res.json["data"]["name"] == "a\\u0000b"


def test_a_raw_nul_byte_is_still_invalid_json(api):
    _assert_error(api.post("/api/agents", data=b'{"name": "a\x00"}', content_type="application/json"),
                  400, "invalid_json")


def test_multipart_files_may_hold_nul_bytes(api, worker):
    assert b"\x00" in PDF
    source = api.post("/api/knowledge-sources", json={"name": "uploads", "type": "file"}).json["data"]
    res = api.post(f"/api/knowledge-sources/{source['id']}/documents",
                   data={"files": [(io.BytesIO(PDF), "statement.pdf")]}, content_type="multipart/form-data")
    assert res.status_code == 202, res.json
    assert [f["accepted"] for f in res.json["data"]["files"]] == [True]


def test_a_lone_surrogate_is_400_and_an_escaped_emoji_is_text(api):
    lone = api.post("/api/agents", data='{"name": "bad \\ud800 name"}', content_type="application/json")
    _refused(lone, "json", "name")
    pair = api.post("/api/agents", data='{"name": "smile \\ud83d\\ude00"}', content_type="application/json")
    assert pair.status_code == 201, pair.json
    assert pair.json["data"]["name"] == "smile \U0001F600"  # a surrogate pair is one real character


def test_a_body_nested_too_deeply_to_parse_is_invalid_json(api):
    deep = "[" * 100_000 + "]" * 100_000
    error = _assert_error(api.post("/api/agents", data=deep, content_type="application/json"), 400, "invalid_json")
    assert "nested too deeply" in error["message"]
