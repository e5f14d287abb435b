"""The error half of the OpenAPI document, written in one place instead of on 90 routes.

Every error Magnet answers is `{"success": false, "error": {"code", "message", "details"}}` (app.errors).
`ErrorEnvelopeSchema` is that shape; `MagnetApi` (app.extensions) makes it flask-smorest's error schema,
and `ErrorResponsesPlugin` gives each operation the error statuses it can answer, derived from what the
request guards and the auth hook do to every request:

- 400 everywhere: a body that is not JSON (invalid_json), NUL or a lone surrogate anywhere (bad_request);
- 401 unless the operation is open, 403 when it needs more than the viewer role;
- 404 on a path with an id; 409 on writes (a duplicate, a resource in use, a run in progress);
- 413 and 415 on operations that take a body; 422 everywhere (bad or unknown fields and query arguments);
- `default` for what no client input decides (500, and 502/503/504 from upstream services).

An operation with a contract of its own (POST /api/v1/messages) declares `OWN_ERRORS` and documents
each of its error responses itself; the plugin then adds none.
"""
from __future__ import annotations

from apispec import BasePlugin
from marshmallow import Schema, fields

ENVELOPE_SCHEMA_NAME = "ErrorEnvelope"
# `@blp.doc(**OWN_ERRORS)`: the operation documents every error response itself, in its own shape.
OWN_ERRORS_KEY = "x-own-error-shape"
OWN_ERRORS = {OWN_ERRORS_KEY: True}
WRITE_METHODS = ("post", "put", "patch", "delete")
BODY_METHODS = ("post", "put", "patch")


class ErrorSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable machine-readable code, e.g. not_found"})
    message = fields.String(required=True, metadata={"description": "What went wrong, for a person"})
    details = fields.Dict(
        required=True,
        metadata={"description": "Specifics; for validation_failed, `fields` names every bad field"},
    )


class ErrorEnvelopeSchema(Schema):
    success = fields.Boolean(required=True, metadata={"enum": [False]})
    error = fields.Nested(ErrorSchema, required=True)


# status -> (response component name, description): the codes each status carries.
ERROR_RESPONSES = {
    400: ("BadRequestError", "invalid_json: the body is not JSON (or nested too deeply to parse); bad_request: "
                             "NUL or a lone surrogate in the path, a query argument or the body"),
    401: ("UnauthorizedError", "missing_api_key or invalid_api_key (unknown or revoked)"),
    403: ("ForbiddenError", "insufficient_role: the key's role does not reach the operation's x-required-role"),
    404: ("NotFoundError", "not_found: no resource with this id"),
    409: ("ConflictError", "The change conflicts with the current state; the code says how (conflict, "
                           "duplicate_name, in_use, sync_in_progress, turn_in_progress...)"),
    413: ("PayloadTooLargeError", "payload_too_large: the body is over the JSON or the upload limit"),
    415: ("UnsupportedMediaTypeError", "unsupported_media_type: the body is not application/json"),
    422: ("ValidationError", "validation_failed: details.fields names every bad field, unknown fields and "
                             "unknown query arguments included"),
}
DEFAULT_DESCRIPTION = ("Any other error, in the same envelope: rate_limited (429, with Retry-After: the API "
                       "key made too many changes, MAGNET_RATE_LIMIT_MUTATIONS), busy (429, with Retry-After: "
                       "every outbound slot of the process is taken, on operations that call a provider, an API "
                       "tool or an agent), internal_error (500), upstream_error (502), service_unavailable or "
                       "queue_unavailable (503), timeout (504)")


def error_statuses(path: str, method: str, operation: dict) -> list[int]:
    """The client-caused error statuses an operation can answer (see the module docstring)."""
    statuses = {400, 422}
    role = operation.get("x-required-role")
    if role != "open":
        statuses.add(401)
    if role in ("operator", "admin", "reviewer"):
        statuses.add(403)
    if "{" in path:
        statuses.add(404)
    if method in WRITE_METHODS:
        statuses.add(409)
    if method in BODY_METHODS:
        statuses |= {413, 415}
    return sorted(statuses)


class ErrorResponsesPlugin(BasePlugin):
    """apispec plugin: every operation's error responses reference the real envelope."""

    def init_spec(self, spec) -> None:
        super().init_spec(spec)
        spec.components.schema(ENVELOPE_SCHEMA_NAME, schema=ErrorEnvelopeSchema)
        for name, description in ERROR_RESPONSES.values():
            spec.components.response(name, _envelope_response(description), lazy=True)
        spec.components.response("DefaultError", _envelope_response(DEFAULT_DESCRIPTION), lazy=True)

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            if operation.get(OWN_ERRORS_KEY):
                _drop_shared_errors(responses)
                continue
            for status in error_statuses(path, method, operation):
                _document(responses, status)
            for status, response in responses.items():  # a route's other errors (e.g. 502, 504)
                if str(status) != "default" and int(status) >= 400 and isinstance(response, dict):
                    _give_envelope(response)
            responses.pop("default", None)
            responses["default"] = "DefaultError"


def _envelope_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": ENVELOPE_SCHEMA_NAME}}}


def _document(responses: dict, status: int) -> None:
    """Reference the shared response for `status`, keeping a route's own description of it."""
    key = status if status in responses else str(status)
    current = responses.get(key)
    if isinstance(current, dict):  # an alt_response: its description says more; the body is the envelope
        _give_envelope(current)
        return
    responses.pop(key, None)  # flask-smorest's generic reference (e.g. UNPROCESSABLE_ENTITY)
    responses[status] = ERROR_RESPONSES[status][0]


def _give_envelope(response: dict) -> None:
    """An error response a route described without a body schema: its body is the envelope."""
    if not response.get("content"):
        response["content"] = {"application/json": {"schema": ENVELOPE_SCHEMA_NAME}}


def _drop_shared_errors(responses: dict) -> None:
    """An operation with its own error shape keeps only the error responses it wrote itself."""
    for key in list(responses):
        if key == "default" or (isinstance(responses[key], str) and int(key) >= 400):
            del responses[key]
