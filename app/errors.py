"""The domain error tree and the one place that turns errors into the error envelope.

Services raise `MagnetError` subclasses; they never know about HTTP. `register_error_handlers` maps
them, and every HTTP error Flask or webargs raises, to
`{"success": false, "error": {"code", "message", "details"}}`. Nothing reaches a client as HTML or a
stack trace.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from app.routing import resource_methods

log = logging.getLogger(__name__)


class MagnetError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class BadRequest(MagnetError):
    status, code = 400, "bad_request"


class Unauthorized(MagnetError):
    status, code = 401, "unauthorized"


class Forbidden(MagnetError):
    status, code = 403, "forbidden"


class NotFound(MagnetError):
    status, code = 404, "not_found"


class Conflict(MagnetError):
    status, code = 409, "conflict"


class Gone(MagnetError):
    status, code = 410, "gone"


class PayloadTooLarge(MagnetError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(MagnetError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(MagnetError):
    status, code = 422, "validation_failed"


class RateLimited(MagnetError):
    status, code = 429, "rate_limited"


class UpstreamError(MagnetError):
    status, code = 502, "upstream_error"


class ServiceUnavailable(MagnetError):
    status, code = 503, "service_unavailable"


class UpstreamTimeout(MagnetError):
    status, code = 504, "timeout"


# Stable codes for the HTTP errors that do not come from our services.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}


def error_response(status: int, code: str, message: str, details: dict | None = None):
    body = {"success": False, "error": {"code": code, "message": message, "details": details or {}}}
    return jsonify(body), status


def http_error_response(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    message = data.get("message") or error.description or error.name
    code = _HTTP_CODES.get(status, "internal_error" if status >= 500 else "error")
    details: dict[str, Any] = {}
    if messages:
        # webargs nests errors by location ({"json": {...}}, {"query": {...}}); keep the field names.
        details = {"fields": _flatten_locations(messages)}
        if _is_invalid_json(messages):
            code, message = "invalid_json", "The request body is not valid JSON."
            details = {}
        elif status == 422:
            message = "The request did not pass validation: " + _summary(details["fields"])
    if status == 404 and not messages:
        message = "No such resource or route."
    if status >= 500:
        message = "The server failed to handle this request."
    response, status = error_response(status, code, message, details)
    for header, value in (data.get("headers") or {}).items():
        response.headers[header] = value
    if status == 405:  # RFC 9110: a 405 lists the methods the resource does support
        response.headers["Allow"] = ", ".join(resource_methods(getattr(error, "valid_methods", None) or ()))
    return response, status


def _flatten_locations(messages: Any) -> Any:
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "form", "files", "headers", "view_args"}:
        merged: dict[str, Any] = {}
        for value in messages.values():
            if isinstance(value, dict):
                merged.update(value)
            else:
                merged.setdefault("_schema", value)
        return merged
    return messages


def _is_invalid_json(messages: Any) -> bool:
    text = str(messages).lower()
    return "invalid json" in text


def _summary(fields: Any) -> str:
    if isinstance(fields, dict):
        return "; ".join(f"{name}: {_first(msg)}" for name, msg in list(fields.items())[:5])
    return str(fields)


def _first(msg: Any) -> str:
    if isinstance(msg, list) and msg:
        return _first(msg[0])
    if isinstance(msg, dict):
        return _summary(msg)
    return str(msg)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(MagnetError)
    def _domain_error(error: MagnetError):
        response, status = error_response(error.status, error.code, error.message, error.details)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:  # 429 and 503: when to try again (RFC 9110)
            response.headers["Retry-After"] = str(retry_after)
        return response, status

    @app.errorhandler(HTTPException)
    def _werkzeug_error(error: HTTPException):
        return http_error_response(error)

    @app.errorhandler(IntegrityError)
    def _integrity_error(error: IntegrityError):
        # Services check uniqueness first; this catches the race where two requests pass that check.
        from app.extensions import db

        db.session.rollback()
        return error_response(409, "conflict", "The change conflicts with existing data (a duplicate name?).")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        from app.faults import component_down, unavailable

        component = component_down(error)
        if component:  # a shared service is down or frozen: a clear 503, not a 500
            if component == "database":
                _discard_session()
            log.warning("%s unavailable: %s: %s", component, type(error).__name__, error)
            down = unavailable(component, error)
            return error_response(down.status, down.code, down.message, down.details)
        log.exception("unhandled error")
        return error_response(500, "internal_error", "The server failed to handle this request.")

    @app.errorhandler(RecursionError)
    def _too_deep(error: RecursionError):
        if request.is_json:  # the JSON parser recursed into a body nested thousands of levels deep
            return error_response(400, "invalid_json", "The request body is nested too deeply to parse.")
        return _unexpected(error)


def _discard_session() -> None:
    """After a lost database connection the session can only be thrown away (a rollback may fail too)."""
    from app.extensions import db

    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the pool replaces it on next checkout (pre_ping)
        db.session.remove()
