"""The OpenAPI document describes the errors the API really sends (scripts/fuzz_api.sh checks it live)."""
import jsonschema
import pytest

METHODS = ("get", "post", "put", "patch", "delete")
ENVELOPE = "#/components/schemas/ErrorEnvelope"
# Errors whose body is deliberately not the envelope: a failing health check answers its full report.
OWN_BODIES = {("get", "/api/health", "503"): "#/components/schemas/HealthEnvelope"}
STREAMING = [("/api/conversations/{conversation_id}/messages", "post"),
             ("/api/rag-tools/{tool_id}/query", "post"), ("/api/v1/messages", "post")]


@pytest.fixture
def spec(client):
    return client.get("/api/openapi.json").json


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def _response(spec, response):
    if "$ref" in response:
        return spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def _error_schema_refs(spec, operation):
    return {
        str(status): _response(spec, response)["content"]["application/json"]["schema"].get("$ref")
        for status, response in operation["responses"].items()
        if status == "default" or int(status) >= 400
    }


def _validator(spec, ref: str):
    """A JSON Schema validator for a component of the document, its $refs resolved within it."""
    schema = {"$ref": ref, "components": spec["components"]}
    return jsonschema.Draft4Validator(schema)


def _own_shape(path: str) -> str:
    """The contracts with an error shape of their own: app integrations, and human hand-off."""
    # The app messages contract (/api/v1/messages and its feedback) and the hand-off contract each have theirs.
    app_contract = path == "/api/v1/messages" or path.startswith("/api/v1/messages/")
    return "#/components/schemas/AppError" if app_contract else "#/components/schemas/HandoffError"


def test_every_error_response_of_every_operation_is_the_real_envelope(spec):
    operations = list(_operations(spec))
    assert len(operations) >= 90
    for path, method, operation in operations:
        refs = _error_schema_refs(spec, operation)
        for status in list(refs):
            if (method, path, status) in OWN_BODIES:
                assert refs.pop(status) == OWN_BODIES[method, path, status]
        expected = _own_shape(path) if operation.get("x-own-error-shape") else ENVELOPE
        assert refs and set(refs.values()) == {expected}, f"{method.upper()} {path}: {refs}"


def test_each_operation_documents_the_statuses_its_requests_can_cause(spec):
    for path, method, operation in _operations(spec):
        if operation.get("x-own-error-shape"):
            continue
        statuses = set(operation["responses"])
        where = f"{method.upper()} {path}"
        assert {"400", "422", "default"} <= statuses, where
        if operation["x-required-role"] != "open":
            assert "401" in statuses, where
        if operation["x-required-role"] in ("operator", "admin"):
            assert "403" in statuses, where
        if "{" in path:
            assert "404" in statuses, where
        if method in ("post", "put", "patch"):
            assert {"409", "413", "415"} <= statuses, where


def test_routes_keep_their_own_description_of_an_error(spec):
    delete = spec["paths"]["/api/conversations/{conversation_id}"]["delete"]["responses"]["409"]
    assert "turn_in_progress" in delete["description"]
    assert delete["content"]["application/json"]["schema"]["$ref"] == ENVELOPE


def test_real_error_bodies_validate_against_the_documented_envelope(spec, api, client):
    validator = _validator(spec, ENVELOPE)
    bodies = [
        api.get("/api/models/model_missing").json,  # 404
        api.get("/api/models?limit=0&colour=red").json,  # 422 with details.fields
        api.post("/api/keys", data="{", content_type="application/json").json,  # 400 invalid_json
        client.get("/api/models").json,  # 401
        api.delete("/api/models").json,  # 405
    ]
    for body in bodies:
        validator.validate(body)
    with pytest.raises(jsonschema.ValidationError):  # flask-smorest's own shape is not ours
        validator.validate({"code": 404, "status": "Not Found", "message": "x"})


def test_the_app_integration_contract_documents_its_own_error_shape(spec, client):
    body = client.post("/api/v1/messages", json={"content": "hi"},
                       headers={"Authorization": "Bearer magnet_sk_nope"}).json
    _validator(spec, "#/components/schemas/AppError").validate(body)


def test_the_handoff_contract_documents_its_own_error_shape(spec, client):
    validator = _validator(spec, "#/components/schemas/HandoffError")
    validator.validate(client.get("/api/v1/requests", headers={"Authorization": "Bearer nope"}).json)
    validator.validate(client.post("/api/v1/agents/login", json={}).json)


@pytest.mark.parametrize("path, method", STREAMING)
def test_streaming_operations_document_their_event_stream(spec, path, method):
    content = spec["paths"][path][method]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/event-stream"}
