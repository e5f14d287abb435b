"""The HTTP side of the contract that schemathesis found broken: bounds, methods, paths, undeclared input.

Each test asserts what a client sees on the wire: status, JSON envelope, headers."""
import io

import pytest

from app.services.llm_models import ensure_builtin_models

ERROR_KEYS = {"code", "message", "details"}
# Every list route takes page; these are the ones on a fresh database with no path id.
LISTS = ["/api/keys", "/api/models", "/api/prompt-templates", "/api/agents", "/api/integrations",
         "/api/api-tools", "/api/knowledge-sources", "/api/rag-tools", "/api/retrieval-tools",
         "/api/conversations", "/api/evaluations"]


TEMPLATE = {"name": "t", "type": "user", "template": "Hello", "variables": []}


def _error(res, status: int, code: str) -> dict:
    assert res.status_code == status, res.get_data(as_text=True)
    assert res.mimetype == "application/json"
    assert res.json["success"] is False and set(res.json["error"]) == ERROR_KEYS
    assert res.json["error"]["code"] == code
    return res.json["error"]


@pytest.mark.parametrize("path", LISTS)
def test_a_page_past_what_a_database_can_offset_is_422_not_500(api, path):
    error = _error(api.get(f"{path}?page=9223372036854775807"), 422, "validation_failed")
    assert "page" in error["details"]["fields"]


def test_the_last_allowed_page_answers_an_empty_page(api):
    from app.common.pagination import MAX_PAGE

    res = api.get(f"/api/keys?page={MAX_PAGE}&limit=100")
    assert res.status_code == 200
    assert res.json["data"] == [] and res.json["pagination"]["page"] == MAX_PAGE


def test_a_huge_page_of_prompt_template_versions_is_422(api):
    template = api.post("/api/prompt-templates", json=TEMPLATE).json["data"]
    res = api.get(f"/api/prompt-templates/{template['id']}/versions?page=99999999999999999999")
    assert "page" in _error(res, 422, "validation_failed")["details"]["fields"]


def test_405_names_the_allowed_methods(api):
    res = api.delete("/api/models")
    _error(res, 405, "method_not_allowed")
    assert set(res.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS", "POST"}


def test_405_on_a_path_two_rules_match_lists_only_the_resource_s_methods(api):
    # /api/evaluations/compare (GET) also matches /api/evaluations/<evaluation_id> (GET, PUT, DELETE)
    res = api.post("/api/evaluations/compare")
    _error(res, 405, "method_not_allowed")
    assert set(res.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}


def test_options_advertises_only_methods_the_resource_has(client):
    res = client.open("/api/evaluations/compare", method="OPTIONS")
    assert res.status_code == 204
    assert set(res.allow) == {"GET", "HEAD", "OPTIONS"}
    assert res.get_data() == b"" and "text/html" not in (res.content_type or "")
    assert set(client.open("/api/models/model_x", method="OPTIONS").allow) == {"GET", "HEAD", "OPTIONS", "PUT",
                                                                                 "DELETE"}


@pytest.mark.parametrize("path", ["/api//models", "//api/models", "/api/models//x"])
def test_doubled_slashes_are_a_json_404_never_an_html_redirect(api, path):
    res = api.get(path)
    _error(res, 404, "not_found")
    assert "Location" not in res.headers


def test_a_trailing_slash_is_the_same_resource_not_a_redirect(api):
    res = api.get("/api/models/")
    assert res.status_code == 200 and res.json["success"] is True


def test_an_unknown_query_argument_is_422_naming_it(api):
    error = _error(api.get("/api/models?limt=5"), 422, "validation_failed")
    assert error["details"]["fields"] == {"limt": ["Unknown field."]}
    assert "limt" in error["message"]


def test_an_operation_without_query_arguments_refuses_any(api):
    ensure_builtin_models()
    model_id = api.get("/api/models").json["data"][0]["id"]
    error = _error(api.get(f"/api/models/{model_id}?verbose=1"), 422, "validation_failed")
    assert list(error["details"]["fields"]) == ["verbose"]
    assert api.get(f"/api/models/{model_id}").status_code == 200


def test_unknown_query_arguments_are_refused_on_open_routes_too(client):
    _error(client.get("/api/health?deep=true"), 422, "validation_failed")


def test_declared_query_arguments_still_work(api):
    assert api.get("/api/keys?include_revoked=true&limit=5").status_code == 200


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
def test_stream_must_be_a_json_boolean(api, value):
    res = api.post("/api/conversations/conv_x/messages", json={"message": "hi", "stream": value})
    assert "stream" in _error(res, 422, "validation_failed")["details"]["fields"]


def test_other_body_booleans_are_strict_too(api):
    body = {"name": "m", "provider": "openai", "model_id": "gpt", "kind": "chat", "is_default": 1}
    assert "is_default" in _error(api.post("/api/models", json=body), 422, "validation_failed")["details"]["fields"]


def test_query_booleans_still_take_their_string_forms(api):
    assert api.get("/api/keys?include_revoked=false").status_code == 200


def test_a_missing_body_is_422_where_the_operation_takes_one(api):
    ensure_builtin_models()
    model_id = api.get("/api/models").json["data"][0]["id"]
    error = _error(api.put(f"/api/models/{model_id}"), 422, "validation_failed")
    assert error["details"]["fields"] == {"_schema": ["A JSON body is required."]}
    template = api.post("/api/prompt-templates", json=TEMPLATE).json["data"]
    _error(api.post(f"/api/prompt-templates/{template['id']}/render"), 422, "validation_failed")
    # {} is a body: nothing to change, nothing to fill in
    assert api.put(f"/api/models/{model_id}", json={}).status_code == 200
    assert api.post(f"/api/prompt-templates/{template['id']}/render", json={}).status_code == 200


def test_an_optional_body_may_be_left_out(api):
    # POST /api/evaluations/{id}/run takes an optional body: no body is not refused as missing
    res = api.post("/api/evaluations/eval_missing/run")
    _error(res, 404, "not_found")


def test_an_unknown_multipart_part_is_422_naming_it(api):
    source = api.post("/api/knowledge-sources", json={"name": "uploads", "type": "file"}).json["data"]
    data = {"files": (io.BytesIO(b"hello"), "a.txt"), "colour": "red"}
    res = api.post(f"/api/knowledge-sources/{source['id']}/documents", data=data,
                   content_type="multipart/form-data")
    assert _error(res, 422, "validation_failed")["details"]["fields"] == {"colour": ["Unknown field."]}


def test_a_multipart_body_to_a_json_operation_is_415(api):
    res = api.post("/api/keys", data={"name": "x", "role": "viewer"}, content_type="multipart/form-data")
    _error(res, 415, "unsupported_media_type")


def test_a_version_number_past_any_database_integer_is_refused_not_a_500(api):
    template = api.post("/api/prompt-templates", json=TEMPLATE).json["data"]
    res = api.post(f"/api/prompt-templates/{template['id']}/render", json={"version": 20631680311885563953152})
    assert "version" in _error(res, 422, "validation_failed")["details"]["fields"]
    _error(api.get(f"/api/prompt-templates/{template['id']}/versions/99999999999999999999999"), 404, "not_found")
    assert api.get(f"/api/prompt-templates/{template['id']}/versions/1").status_code == 200
