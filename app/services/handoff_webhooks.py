"""Signed webhook calls to a hand-off requester when its request is completed, retried with backoff.

The body is JSON `{"event": "request.completed", "data": <the request>}`. Headers:
`X-Magnet-Timestamp` (Unix seconds) and `X-Magnet-Signature: sha256=<hex>`, the HMAC-SHA256 with the
account's webhook secret (shown once at registration) over `<timestamp>.<body bytes>`: a receiver
recomputes it, compares in constant time, and refuses old timestamps (replays).

Delivery runs on the job queue (task `deliver_handoff_webhook`), through the outbound guard like every
call Magnet makes for a user (app.runtime.outbound: SSRF checks, pinned resolution, no redirects). A
non-2xx answer or a network failure is retried after BACKOFF_SECONDS * 2^(attempt-1), up to MAX_ATTEMPTS;
a destination the guard refuses is not retried. Each attempt is an event on the request.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from flask import current_app

from app.errors import MagnetError
from app.extensions import db
from app.models import HandoffRequest
from app.runtime import outbound
from app.services import handoff_accounts
from app.services.handoff_requests import record_event, request_payload

log = logging.getLogger(__name__)

TASK = "deliver_handoff_webhook"
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 5.0
TIMEOUT_SECONDS = 10.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def schedule(request_id: str, attempt: int = 1, delay: float = 0.0) -> None:
    """Queue an attempt; a queue that cannot take it is recorded on the request (the completion stands)."""
    task = current_app.extensions["magnet.tasks"][TASK]
    try:
        if delay > 0:
            task.schedule(args=(request_id, attempt), delay=delay)
        else:
            task(request_id, attempt)
    except Exception as exc:  # Redis or the queue file unavailable: say so on the request
        log.warning("could not queue webhook attempt %s for %s: %s", attempt, request_id, exc)
        _finish(request_id, "failed", "webhook_failed", {"attempt": attempt, "error": "queue_unavailable"})


def deliver(request_id: str, attempt: int) -> None:
    """One attempt (the job's body); schedules the next one on failure."""
    request = db.session.get(HandoffRequest, request_id)
    if request is None or not request.webhook_url or request.account_id is None:
        return
    body = json.dumps({"event": "request.completed", "data": _jsonable(request_payload(request))},
                      separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "Magnet-Webhook/1",
               "X-Magnet-Event": "request.completed", "X-Magnet-Timestamp": timestamp,
               "X-Magnet-Signature": signature(handoff_accounts.webhook_secret(request.account_id), timestamp, body),
               "X-Magnet-Delivery": f"{request.id}.{attempt}"}
    url = request.webhook_url
    db.session.commit()  # no transaction open during the call
    try:
        answer = outbound.send("POST", url, allowlist=current_app.extensions["magnet.config"].outbound_allowlist,
                               headers=headers, data=body, timeout=TIMEOUT_SECONDS, max_bytes=4096)
    except outbound.OutboundBlocked as exc:
        _finish(request_id, "failed", "webhook_failed", {"attempt": attempt, "error": exc.message, "final": True})
        return
    except MagnetError as exc:
        _retry_or_fail(request_id, attempt, {"attempt": attempt, "error": exc.message})
        return
    if 200 <= answer.status_code < 300:
        _finish(request_id, "delivered", "webhook_delivered", {"attempt": attempt, "status_code": answer.status_code})
    else:
        _retry_or_fail(request_id, attempt, {"attempt": attempt, "status_code": answer.status_code})


def _retry_or_fail(request_id: str, attempt: int, details: dict) -> None:
    if attempt >= MAX_ATTEMPTS:
        _finish(request_id, "failed", "webhook_failed", {**details, "final": True})
        return
    _finish(request_id, "pending", "webhook_attempt_failed", details)
    schedule(request_id, attempt + 1, delay=BACKOFF_SECONDS * 2 ** (attempt - 1))


def _finish(request_id: str, status: str, action: str, details: dict) -> None:
    request = db.session.get(HandoffRequest, request_id)
    if request is None:
        return
    request.webhook_status = status
    request.webhook_attempts = max(request.webhook_attempts or 0, details.get("attempt", 0))
    record_event(request_id, action, "magnet", details)
    db.session.commit()


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: _iso(value) if isinstance(value, datetime) else value for key, value in payload.items()}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
