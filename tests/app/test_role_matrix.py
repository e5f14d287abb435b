"""Walk every route in the OpenAPI document: no key is 401, a lower role is 403, the declared role passes.

The expected roles of sensitive routes are also pinned here, so a route cannot quietly become weaker.
"""
import re

import pytest

RANK = ["viewer", "operator", "admin"]
# Routes whose role is part of the security contract, checked explicitly.
PINNED = {
    ("get", "/api/health"): "open",
    ("get", "/api/keys"): "admin",
    ("post", "/api/keys"): "admin",
    ("delete", "/api/keys/{key_id}"): "admin",
    ("post", "/api/models"): "admin",
    ("put", "/api/models/{model_id}"): "admin",
    ("get", "/api/models"): "viewer",
    ("get", "/api/status"): "viewer",
    ("get", "/api/integrations"): "admin",
    ("post", "/api/integrations"): "admin",
    ("get", "/api/integrations/{integration_id}"): "admin",
    ("put", "/api/integrations/{integration_id}"): "admin",
    ("delete", "/api/integrations/{integration_id}"): "admin",
    ("post", "/api/integrations/{integration_id}/rotate-key"): "admin",
    ("post", "/api/auth/signup"): "open",
    ("post", "/api/auth/login"): "open",
    ("post", "/api/auth/invitations"): "admin",
    ("get", "/api/users"): "admin",
    ("put", "/api/users/{user_id}"): "admin",
    ("put", "/api/workspace"): "admin",
    ("get", "/api/workspace"): "viewer",
}


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, path, op


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "unknown_id", path)


def test_spec_is_served_openly_and_lists_every_api_route(app, client):
    res = client.get("/api/openapi.json")
    assert res.status_code == 200
    spec = res.json
    documented = {(m.upper(), p) for m, p, _ in _operations(spec)}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api") or rule.endpoint.startswith(("api-docs", "swagger_ui")):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented, f"{method} {path} is not in the OpenAPI document"


def test_every_operation_has_role_schemas_and_summary(client):
    spec = client.get("/api/openapi.json").json
    for method, path, op in _operations(spec):
        where = f"{method.upper()} {path}"
        assert op.get("x-required-role") in {"open", *RANK}, where
        assert op.get("summary"), f"{where} has no summary (route docstring)"
        success = [code for code in op["responses"] if code.startswith("2")]
        assert success, where
        assert all("content" in op["responses"][code] for code in success), f"{where} has no response schema"
        if method in {"post", "put", "patch"} and "requestBody" not in op:
            # actions without a body must say so by having no required input at all
            assert not any(p.get("required") and p["in"] == "query" for p in op.get("parameters", [])), where
    for (method, path), role in PINNED.items():
        assert spec["paths"][path][method]["x-required-role"] == role, f"{method} {path}"


def test_swagger_ui_works_offline(client):
    page = client.get("/api/docs")
    assert page.status_code == 200 and b"swagger-ui" in page.data
    assert b"cdn" not in page.data.lower()
    asset = client.get("/api/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000


def test_role_matrix(client, make_key):
    keys = {role: make_key(role) for role in RANK}
    spec = client.get("/api/openapi.json").json
    checked = 0
    for method, path, op in _operations(spec):
        need = op["x-required-role"]
        url = _concrete(path)
        call = getattr(client, method)
        kwargs = {"json": {}} if method in {"post", "put", "patch"} else {}
        where = f"{method.upper()} {path}"
        if need == "open":
            assert call(url, **kwargs).status_code not in (401, 403), where
            continue
        res = call(url, **kwargs)
        assert res.status_code == 401, f"{where} without a key gave {res.status_code}"
        for weaker in RANK[: RANK.index(need)]:
            res = call(url, headers={"X-API-Key": keys[weaker]}, **kwargs)
            assert res.status_code == 403, f"{where} with {weaker} gave {res.status_code}"
            assert res.json["error"]["code"] == "insufficient_role"
        for enough in RANK[RANK.index(need):]:
            res = call(url, headers={"X-API-Key": keys[enough]}, **kwargs)
            assert res.status_code not in (401, 403), f"{where} with {enough} gave {res.status_code}"
            assert res.status_code < 500, f"{where} with {enough} gave {res.status_code}: {res.get_data(as_text=True)[:300]}"
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
def test_both_key_headers_are_accepted(client, make_key, header):
    key = make_key("viewer")
    value = key if header == "X-API-Key" else f"Bearer {key}"
    assert client.get("/api/models", headers={header: value}).status_code == 200
