"""The API contract from ARCHITECTURE.md: envelopes, pagination, ids, timestamps, and bad input."""
import re

import pytest

from app.services.llm_models import ensure_builtin_models

ERROR_KEYS = {"code", "message", "details"}


def _assert_error(res, status: int, code: str | None = None):
    assert res.status_code == status, res.get_data(as_text=True)
    assert res.is_json, f"expected a JSON envelope, got {res.content_type}"
    body = res.json
    assert body["success"] is False
    assert set(body["error"]) == ERROR_KEYS
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in res.get_data(as_text=True)
    return body["error"]


def test_list_envelope_and_pagination(api):
    for i in range(5):
        res = api.post("/api/keys", json={"name": f"k{i}", "role": "viewer"})
        assert res.status_code == 201
    res = api.get("/api/keys?limit=2&page=2&sort=name&order=asc")
    assert res.status_code == 200
    body = res.json
    assert body["success"] is True
    # 5 viewer keys + the admin key the `api` fixture uses
    pagination = dict(body["pagination"])
    assert pagination.pop("next_cursor")  # a page follows: its cursor (tests/app/test_cursor_pagination.py)
    assert pagination == {"page": 2, "limit": 2, "total": 6}
    # by name: k0 k1 | k2 k3 | k4 "test admin"
    assert [k["name"] for k in body["data"]] == ["k2", "k3"]


def test_default_order_is_newest_first(api):
    ensure_builtin_models()
    names = [m["name"] for m in api.get("/api/models").json["data"]]
    assert names == ["local-extractive", "local-minilm"]  # created in that order; newest first


def test_ids_are_prefixed_and_timestamps_utc_z(api):
    ensure_builtin_models()
    model = api.get("/api/models").json["data"][0]
    assert re.fullmatch(r"model_[0-9a-z]{24}", model["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", model["created_at"])


@pytest.mark.parametrize(
    "query, field",
    [("limit=0", "limit"), ("limit=101", "limit"), ("page=0", "page"), ("sort=password", "sort"),
     ("order=sideways", "order"), ("limit=abc", "limit")],
)
def test_bad_list_arguments_are_422_naming_the_field(api, query, field):
    error = _assert_error(api.get(f"/api/models?{query}"), 422, "validation_failed")
    assert field in error["details"]["fields"]


def test_malformed_json_is_400_invalid_json(api):
    res = api.post("/api/keys", data='{"name": "x", "role": ', content_type="application/json")
    _assert_error(res, 400, "invalid_json")


def test_json_that_is_not_an_object_is_422(api):
    _assert_error(api.post("/api/keys", json=["name", "role"]), 422, "validation_failed")


def test_unknown_fields_are_422_naming_them(api):
    error = _assert_error(api.post("/api/keys", json={"name": "x", "role": "viewer", "colour": "red"}), 422)
    assert "colour" in error["details"]["fields"]


def test_wrong_types_are_422(api):
    error = _assert_error(api.post("/api/keys", json={"name": 42, "role": "viewer"}), 422)
    assert "name" in error["details"]["fields"]


def test_out_of_range_numbers_are_422(api):
    body = {"name": "m", "provider": "openai", "model_id": "gpt", "kind": "chat", "context_window": -5}
    error = _assert_error(api.post("/api/models", json=body), 422)
    assert "context_window" in error["details"]["fields"]


def test_oversized_json_body_is_413(api):
    huge = {"name": "x" * (1024 * 1024 + 10), "role": "viewer"}
    _assert_error(api.post("/api/keys", json=huge), 413, "payload_too_large")


def test_non_json_body_is_415(api):
    res = api.post("/api/keys", data="name=x&role=viewer", content_type="application/x-www-form-urlencoded")
    _assert_error(res, 415, "unsupported_media_type")


def test_unknown_id_is_404(api):
    _assert_error(api.get("/api/models/model_doesnotexist"), 404, "not_found")


def test_unknown_route_is_json_404(api):
    _assert_error(api.get("/api/no-such-thing"), 404, "not_found")


def test_wrong_method_is_json_405(api):
    _assert_error(api.delete("/api/models"), 405, "method_not_allowed")


def test_server_errors_are_enveloped_without_trace(app, api, monkeypatch):
    from app.services import llm_models

    def boom(args):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(llm_models, "list_models", boom)
    res = api.get("/api/models")
    error = _assert_error(res, 500, "internal_error")
    assert "secret internal detail" not in error["message"]
