"""Hand-off requests as their requester sees them: create, read, list (poll with `since`), converse.

A requester is an outside agent's account (the /api/v1 contract) or one of Magnet's agents in a
conversation (the built-in tool `handoff_to_human`, app.services.agent_tools). Every transition is an
event row (who, when); reviewers work the requests in app.services.handoff_review.

Instructions should carry an owner-contact block: a line starting `Owner contact:` followed by how to reach
the person the work is for. Without one the request is still accepted, with a `warning`, and flagged to
reviewers, who may deal with it later.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select

from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.models import HandoffAccount, HandoffEvent, HandoffMessage, HandoffRequest, utcnow
from app.runtime import outbound

OWNER_CONTACT = re.compile(r"^[ \t>*-]*owner contact:[ \t]*\S", re.IGNORECASE | re.MULTILINE)
OWNER_CONTACT_WARNING = ("The instructions have no owner-contact block (a line starting 'Owner contact:'); "
                         "the request is accepted but flagged to reviewers and may be delayed.")
FLAG_NO_OWNER_CONTACT = "no_owner_contact"


def has_owner_contact(instructions: str) -> bool:
    return bool(OWNER_CONTACT.search(instructions))


def record_event(request_id: str, action: str, actor: str | None, details: dict | None = None) -> None:
    db.session.add(HandoffEvent(request_id=request_id, action=action, actor=actor, details=details))


def new_request(*, title: str, instructions: str, objective: str, max_minutes: int = 60, relaxed: bool = True,
                webhook_url: str | None = None, account_id: str | None = None,
                conversation_id: str | None = None, actor: str | None = None) -> HandoffRequest:
    """Add a PENDING request and its `created` event to the session (the caller commits)."""
    now = utcnow()
    request = HandoffRequest(account_id=account_id, conversation_id=conversation_id, title=title,
                             instructions=instructions, objective=objective, max_minutes=max_minutes,
                             relaxed=relaxed, webhook_url=webhook_url,
                             has_owner_contact=has_owner_contact(instructions), status="PENDING",
                             deadline_at=now + timedelta(minutes=max_minutes), created_at=now, updated_at=now)
    db.session.add(request)
    db.session.flush()
    record_event(request.id, "created", actor)
    return request


def create_request(account: HandoffAccount, body: dict) -> dict[str, Any]:
    """POST /api/v1/request: the new request, with a `warning` when the owner-contact block is missing."""
    if body.get("webhook_url"):
        _check_webhook_url(body["webhook_url"])
    request = new_request(title=body["title"], instructions=body["instructions"], objective=body["objective"],
                          max_minutes=body["max_minutes"], relaxed=body["relaxed"],
                          webhook_url=body.get("webhook_url"), account_id=account.id, actor=account.id)
    db.session.commit()
    payload = request_payload(request)
    if not request.has_owner_contact:
        payload["warning"] = OWNER_CONTACT_WARNING
    return payload


def _check_webhook_url(url: str) -> None:
    """Refused now rather than at delivery: a URL the outbound guard would block (or cannot resolve)."""
    try:
        outbound.check_url(url, current_app.extensions["magnet.config"].outbound_allowlist)
    except outbound.OutboundBlocked as exc:
        raise ValidationFailed(f"webhook_url is not allowed: {exc.message}", code="webhook_blocked",
                               details={"hint": "Use a public http(s) URL.", "fields": {"webhook_url": [exc.message]}}
                               ) from None
    except Exception as exc:  # unresolvable host, malformed URL
        message = getattr(exc, "message", str(exc))
        raise ValidationFailed(f"webhook_url cannot be used: {message}", code="webhook_invalid",
                               details={"hint": "Use a public http(s) URL whose host resolves.",
                                        "fields": {"webhook_url": [message]}}) from None


def is_overdue(request: HandoffRequest, now: datetime | None = None) -> bool:
    return request.status != "COMPLETED" and request.deadline_at <= (now or utcnow())


def request_payload(request: HandoffRequest) -> dict[str, Any]:
    return {"id": request.id, "title": request.title, "instructions": request.instructions,
            "objective": request.objective, "max_minutes": request.max_minutes, "relaxed": request.relaxed,
            "webhook_url": request.webhook_url, "status": request.status, "result": request.result,
            "deadline_at": request.deadline_at, "overdue": is_overdue(request),
            "created_at": request.created_at, "updated_at": request.updated_at,
            "completed_at": request.completed_at}


def own_request(account: HandoffAccount, request_id: str) -> HandoffRequest:
    """The account's request; another account's is as unknown as a missing one (404, no probing)."""
    request = db.session.get(HandoffRequest, request_id)
    if request is None or request.account_id != account.id:
        raise NotFound("Request not found", code="not_found",
                       details={"hint": "Use an id returned by POST /api/v1/request for this account."})
    return request


def list_requests(account: HandoffAccount, args: dict) -> dict[str, Any]:
    """The account's requests, newest change first; `since`: created or updated after it."""
    query = select(HandoffRequest).where(HandoffRequest.account_id == account.id)
    if args.get("status"):
        query = query.where(HandoffRequest.status.in_(args["status"]))
    if args.get("since"):
        query = query.where(or_(HandoffRequest.created_at > args["since"], HandoffRequest.updated_at > args["since"]))
    total = db.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = db.session.execute(query.order_by(HandoffRequest.updated_at.desc(), HandoffRequest.id.desc())
                              .offset((args["page"] - 1) * args["limit"]).limit(args["limit"])).scalars()
    return {"requests": [request_payload(r) for r in rows], "count": total, "page": args["page"],
            "limit": args["limit"]}


def add_message(request: HandoffRequest, author: str, author_id: str | None, content: str) -> dict[str, Any]:
    """A message on the request, from its requester or a reviewer; it counts as a change (`since`)."""
    message = HandoffMessage(request_id=request.id, author=author, author_id=author_id, content=content)
    db.session.add(message)
    request.updated_at = utcnow()
    record_event(request.id, "message", author_id, {"author": author})
    db.session.commit()
    return message_payload(message)


def messages_of(request_id: str) -> list[dict[str, Any]]:
    rows = db.session.execute(select(HandoffMessage).where(HandoffMessage.request_id == request_id)
                              .order_by(HandoffMessage.created_at, HandoffMessage.id)).scalars()
    return [message_payload(m) for m in rows]


def message_payload(message: HandoffMessage) -> dict[str, Any]:
    return {"id": message.id, "request_id": message.request_id, "author": message.author,
            "content": message.content, "created_at": message.created_at}


def events_of(request_id: str) -> list[dict[str, Any]]:
    rows = db.session.execute(select(HandoffEvent).where(HandoffEvent.request_id == request_id)
                              .order_by(HandoffEvent.created_at, HandoffEvent.id)).scalars()
    return [{"action": e.action, "actor": e.actor, "at": e.created_at, "details": e.details or {}} for e in rows]
