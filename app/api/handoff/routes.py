"""The hand-off contract (/api/v1): outside agents register, hand work to people and follow it.

Its own format, as outside agents expect it: answers are `{"data": ...}`, errors
`{"error": "<what>", "hint": "<what to do>"}` with the status (400 bad input, 401 key, 403 invitation,
404 unknown request, 409 taken name or email, 413/415 body, 429 rate limit with Retry-After). Keys go in
`Authorization: Bearer <key>` or `x-api-key`; they are hand-off accounts' keys (role `handoff`), checked
here, not by the platform's role hook, and they reach nothing else.
"""
from __future__ import annotations

import logging

from flask import g, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from app.api.handoff.schemas import (
    HandoffConversationArgs,
    HandoffConversationSchema,
    HandoffErrorSchema,
    HandoffLoggedInSchema,
    HandoffLoginSchema,
    HandoffMessageCreateSchema,
    HandoffMessageSchema,
    HandoffRegisteredSchema,
    HandoffRegisterSchema,
    HandoffRequestCreateSchema,
    HandoffRequestListArgs,
    HandoffRequestListSchema,
    HandoffRequestSchema,
    data_of,
)
from app.api.openapi import OWN_ERRORS
from app.auth import OPEN, presented_key, requires
from app.errors import MagnetError, RateLimited
from app.extensions import db
from app.services import handoff_accounts, handoff_requests

log = logging.getLogger(__name__)
blp = Blueprint("handoff", __name__, url_prefix="/api/v1",
                description="Human hand-off: outside agents hand work to people (own contract: {data} / {error, hint})")

_ERRORS = {
    400: "Invalid request: a field is missing or wrong, the body is not JSON, or an unknown query argument",
    401: "Missing or invalid key (or, for login, invalid credentials)",
    403: "Registration needs a valid invitation",
    404: "No such request for this account",
    409: "Agent name already taken / Email already registered",
    413: "Body too large",
    415: "Body is not application/json",
    429: "Rate limit exceeded (100 requests per minute per key); Retry-After says when to retry",
}
_HINTS = {400: "Fix the request as the error says.", 401: "Send a hand-off account's key.",
          403: "Ask an administrator.", 404: "Check the id.", 409: "Choose another value.",
          413: "Send a smaller body.", 415: "Send Content-Type: application/json.", 429: "Retry later.",
          503: "Retry in a moment."}


def contract(*statuses: int, keyed: bool = True):
    """Document this contract's security and error answers on an operation."""
    def decorator(func):
        for status in statuses:
            func = blp.alt_response(status, schema=HandoffErrorSchema, description=_ERRORS[status])(func)
        doc = {**OWN_ERRORS, "security": [{"HandoffKey": []}] if keyed else []}
        # OPEN to the role hook: the key is checked in the service, and refused in this contract's format.
        return blp.doc(**doc)(requires(OPEN)(func))
    return decorator


# Operations that take no key; every other one authenticates before its input is read, so a request
# without a valid key is 401 whatever else is wrong with it.
_OPEN_VIEWS = {"handoff.Register", "handoff.Login"}


@blp.before_request
def _authenticate():
    if request.endpoint not in _OPEN_VIEWS:
        g.handoff_account = handoff_accounts.authenticate(presented_key())


def _account():
    return g.handoff_account


@blp.route("/agents/register")
class Register(MethodView):
    @blp.arguments(HandoffRegisterSchema, error_status_code=400)
    @blp.response(201, data_of(HandoffRegisteredSchema))
    @contract(400, 403, 409, 413, 415, keyed=False)
    def post(self, body):
        """Register a hand-off account: the key and the webhook secret are shown this once"""
        return {"data": handoff_accounts.register(body)}


@blp.route("/agents/login")
class Login(MethodView):
    @blp.arguments(HandoffLoginSchema, error_status_code=400)
    @blp.response(200, data_of(HandoffLoggedInSchema))
    @contract(400, 401, 413, 415, keyed=False)
    def post(self, body):
        """Log in by email (or Telegram user id) and password: issues a NEW key each time"""
        return {"data": handoff_accounts.login(body)}


@blp.route("/request")
class Requests(MethodView):
    @blp.arguments(HandoffRequestCreateSchema, error_status_code=400)
    @blp.response(201, data_of(HandoffRequestSchema))
    @contract(400, 401, 413, 415, 429)
    def post(self, body):
        """Hand a task to a person: PENDING until a reviewer claims it"""
        return {"data": handoff_requests.create_request(_account(), body)}


@blp.route("/request/<request_id>")
class RequestById(MethodView):
    @blp.response(200, data_of(HandoffRequestSchema))
    @contract(400, 401, 404, 429)
    def get(self, request_id):
        """A request's status (PENDING, IN_PROGRESS, COMPLETED), result and timestamps"""
        account = _account()
        return {"data": handoff_requests.request_payload(handoff_requests.own_request(account, request_id))}


@blp.route("/requests")
class RequestList(MethodView):
    @blp.arguments(HandoffRequestListArgs, location="query", error_status_code=400)
    @blp.response(200, data_of(HandoffRequestListSchema))
    @contract(400, 401, 429)
    def get(self, args):
        """The account's requests, newest change first; `since` returns only those created or updated after it"""
        return {"data": handoff_requests.list_requests(_account(), args)}


@blp.route("/conversation")
class Conversation(MethodView):
    @blp.arguments(HandoffConversationArgs, location="query", error_status_code=400)
    @blp.response(200, data_of(HandoffConversationSchema))
    @contract(400, 401, 404, 429)
    def get(self, args):
        """The messages on a request, both directions, oldest first"""
        request = handoff_requests.own_request(_account(), args["request_id"])
        return {"data": {"request_id": request.id, "status": request.status,
                         "messages": handoff_requests.messages_of(request.id)}}

    @blp.arguments(HandoffMessageCreateSchema, error_status_code=400)
    @blp.response(201, data_of(HandoffMessageSchema))
    @contract(400, 401, 404, 413, 415, 429)
    def post(self, body):
        """Send a message to the people working on a request"""
        account = _account()
        request = handoff_requests.own_request(account, body["request_id"])
        return {"data": handoff_requests.add_message(request, "requester", account.id, body["content"])}


def _error(status: int, message: str, hint: str | None = None, headers: dict | None = None):
    response = jsonify({"error": message, "hint": hint or _HINTS.get(status, "Retry later.")})
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response, status


@blp.errorhandler(MagnetError)
def _domain_error(error: MagnetError):
    status = 400 if error.status == 422 else error.status
    if status >= 500 and status != 503:
        log.warning("hand-off contract: %s: %s", error.code, error.message)
    headers = {"Retry-After": str(error.retry_after)} if getattr(error, "retry_after", None) else None
    if isinstance(error, RateLimited) and headers is None:
        headers = {"Retry-After": "60"}
    return _error(status, error.message, (error.details or {}).get("hint"), headers)


@blp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:
        fields = messages.get("json") or messages.get("query") or messages
        if "invalid json" in str(fields).lower():
            return _error(400, "Invalid JSON body", "Send a JSON object.")
        listed = "; ".join(f"{name}: {_first(msg)}" for name, msg in fields.items()) if isinstance(fields, dict) \
            else str(fields)
        return _error(400, f"Invalid request: {listed}", "Fix the fields named in the error.")
    if status >= 500:
        return _error(500, "Internal error", "Retry later.")
    return _error(400 if status == 422 else status, error.description or error.name)


def _first(message) -> str:
    if isinstance(message, list) and message:
        return _first(message[0])
    if isinstance(message, dict):
        return "; ".join(f"{k}: {_first(v)}" for k, v in message.items())
    return str(message)


@blp.errorhandler(IntegrityError)
def _integrity(error: IntegrityError):
    db.session.rollback()  # two registrations raced for the same name or email; one got it
    return _error(409, "Agent name or email already taken", "Choose another name, or log in.")


@blp.errorhandler(Exception)
def _unexpected(error: Exception):
    # The most specific handler answers first, so everything above still answers as documented.
    from app.errors import _discard_session
    from app.faults import component_down

    _discard_session()  # the failure may have left the transaction (or the connection) unusable
    if component_down(error):  # the database or the queue is down: retry later, not a failure of ours
        return _error(503, "Service unavailable", "Retry in a moment.", {"Retry-After": "5"})
    log.exception("unhandled error in the hand-off contract")
    return _error(500, "Internal error", "Retry later; the error was logged.")


@blp.errorhandler(RecursionError)
def _too_deep(error: RecursionError):
    return _error(400, "Invalid JSON body", "The body is nested too deeply to parse.")
