"""The app-integration API: `POST /api/v1/messages`, authenticated by an integration's key (magnet_sk_…).

Its contract is its own, in the style app teams already use: a bare JSON answer (no envelope), errors as
`{"error": {"code", "message"}}` with exactly these codes: 400 invalid_request, 401 invalid_api_key,
403 integration_inactive, 403 usage_limit_exceeded, 502 agent_error, 504 timeout.
"""
from __future__ import annotations

import logging

from flask import Response, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.exceptions import HTTPException

from app.api.app_messages.schemas import AppErrorSchema, AppMessageSchema, AppReplySchema
from app.api.common import event_stream
from app.api.openapi import OWN_ERRORS
from app.auth import OPEN, presented_key, requires
from app.errors import Conflict, Forbidden, MagnetError, Unauthorized, UpstreamTimeout
from app.extensions import db
from app.services import app_messages

log = logging.getLogger(__name__)
blp = Blueprint("app_messages", __name__, url_prefix="/api/v1",
                description="App integrations: talk to an agent with an integration key")


@blp.route("/messages")
class AppMessages(MethodView):
    @blp.doc(security=[{"IntegrationKey": []}], **OWN_ERRORS)
    @requires(OPEN)  # authenticated by the integration key (magnet_sk_…), not a platform key
    @blp.arguments(AppMessageSchema, error_status_code=400)
    @blp.response(200, AppReplySchema)
    @event_stream(blp, "The reply; with `stream: true`, server-sent events")
    @blp.alt_response(400, schema=AppErrorSchema, description="invalid_request (any bad request, body too large or "
                      "not JSON included)")
    @blp.alt_response(401, schema=AppErrorSchema, description="invalid_api_key")
    @blp.alt_response(403, schema=AppErrorSchema, description="integration_inactive or usage_limit_exceeded")
    @blp.alt_response(502, schema=AppErrorSchema, description="agent_error")
    @blp.alt_response(504, schema=AppErrorSchema, description="timeout")
    def post(self, body):
        """Send a message to the integration's agent; `session_id` continues a conversation, `stream: true` answers with SSE"""
        reply = app_messages.send(presented_key(), body)
        if isinstance(reply, dict):
            return reply
        return Response(reply, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _error(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status


@blp.errorhandler(MagnetError)
def _domain_error(error: MagnetError):
    if isinstance(error, Unauthorized):
        return _error(401, "invalid_api_key", error.message)
    if isinstance(error, Forbidden) and error.code in ("integration_inactive", "usage_limit_exceeded"):
        return _error(403, error.code, error.message)
    if isinstance(error, Conflict) and error.code == "agent_inactive":
        return _error(403, "integration_inactive", error.message)
    if isinstance(error, UpstreamTimeout):
        return _error(504, "timeout", error.message)
    if error.status >= 500:
        return _error(502, "agent_error", error.message)
    return _error(400, "invalid_request", error.message)


@blp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    if (error.code or 500) >= 500:
        return _error(502, "agent_error", "The agent could not answer.")
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:
        fields = messages.get("json", messages) if isinstance(messages, dict) else messages
        return _error(400, "invalid_request", f"The request is not valid: {fields}")
    return _error(400, "invalid_request", error.description or "The request is not valid.")


@blp.errorhandler(RecursionError)
def _too_deep(error: RecursionError):
    # The JSON parser recursed into a body nested thousands of levels deep.
    return _error(400, "invalid_request", "The request body is nested too deeply to parse.")


@blp.errorhandler(Exception)
def _unexpected(error: Exception):
    # Flask picks the most specific handler first, so the documented errors above still answer as
    # documented; anything else is a failure behind the agent, in this contract's shape.
    log.exception("unhandled error in POST /api/v1/messages")
    db.session.rollback()  # the failure may have left the transaction unusable (e.g. a DataError)
    return _error(502, "agent_error", "The agent could not answer.")

from app.api.app_messages import feedback as _feedback  # noqa: E402,F401  (its routes join this blueprint)
