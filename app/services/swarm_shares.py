"""Read-only share links to a swarm's results.

A link's token is the share row's id signed with the app's secret (itsdangerous, its own salt): it
cannot be guessed or altered, and it says nothing by itself. Whether it still works is the row's to say,
in the database every node shares: a link expires at `expires_at` and is revoked by setting
`revoked_at`, at once on every node.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select

from app.errors import Gone, NotFound
from app.extensions import db
from app.models import SwarmShare, utcnow
from app.services.swarms import get_swarm, members_of

SALT = "magnet.swarm-share"
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 30 * 24 * 3600
DEFAULT_EXPIRES_IN = 7 * 24 * 3600
SHARED_PATH = "/api/shared/swarms/"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def token_for(share: SwarmShare) -> str:
    return token_for_id(share.id)


def token_for_id(share_id: str) -> str:
    return _serializer().dumps(share_id)


def create_share(swarm_id: str, expires_in: int, *, api_key_id: str | None = None) -> tuple[SwarmShare, str]:
    swarm = get_swarm(swarm_id)
    share = SwarmShare(swarm_id=swarm.id, expires_at=utcnow() + timedelta(seconds=expires_in),
                       created_by=api_key_id)
    db.session.add(share)
    db.session.commit()
    return share, token_for(share)


def list_shares(swarm_id: str) -> list[SwarmShare]:
    get_swarm(swarm_id)
    return list(db.session.execute(select(SwarmShare).where(SwarmShare.swarm_id == swarm_id)
                                   .order_by(SwarmShare.created_at.desc(), SwarmShare.id.desc())).scalars())


def revoke_share(swarm_id: str, share_id: str) -> SwarmShare:
    """Revoke a link (idempotent: revoking it again keeps the first time)."""
    share = db.session.get(SwarmShare, share_id)
    if share is None or share.swarm_id != swarm_id:
        raise NotFound(f"Share {share_id} of swarm {swarm_id} does not exist.", details={"id": share_id})
    share.revoked_at = share.revoked_at or utcnow()
    db.session.commit()
    return share


def share_state(share: SwarmShare) -> str:
    if share.revoked_at is not None:
        return "revoked"
    return "expired" if share.expires_at <= utcnow() else "active"


def share_payload(share: SwarmShare, token: str | None = None) -> dict[str, Any]:
    data = {"id": share.id, "swarm_id": share.swarm_id, "expires_at": share.expires_at,
            "revoked_at": share.revoked_at, "created_at": share.created_at, "state": share_state(share)}
    if token is not None:  # shown once, when made
        data.update(token=token, url=SHARED_PATH + token)
    return data


def open_share(token: str) -> dict[str, Any]:
    """The swarm's results behind a link: 404 for a token that is not ours (tampered, made up, or its swarm
    deleted), 410 for one expired or revoked."""
    try:
        share_id = _serializer().loads(token)
    except BadData:
        share_id = None
    # Base64 leaves a few spare bits in its last character: only the one spelling we issued is the link.
    if not isinstance(share_id, str) or token_for_id(share_id) != token:
        share_id = None
    share = db.session.get(SwarmShare, share_id) if share_id else None
    if share is None:
        raise NotFound("This share link is not valid.", code="share_not_found")
    state = share_state(share)
    if state != "active":
        raise Gone(f"This share link has been {state}.", code=f"share_{state}",
                   details={"expired_at" if state == "expired" else "revoked_at":
                            (share.expires_at if state == "expired" else share.revoked_at).isoformat()})
    return public_payload(share)


def public_payload(share: SwarmShare) -> dict[str, Any]:
    """Results only: the goal, the synthesis, each member's answer or error. No ids of keys, agents or
    conversations, no prompts, no costs."""
    swarm = get_swarm(share.swarm_id)
    members = [{"agent_name": m.agent_name, "round": m.round, "subtask": m.subtask, "status": m.status,
                "result": m.result, "error": (m.error or {}).get("message")} for m in members_of(swarm.id)]
    citations = [{k: c[k] for k in ("index", "agent_name", "round", "cited")} for c in swarm.citations or []]
    return {"id": swarm.id, "goal": swarm.goal, "status": swarm.status, "stop_reason": swarm.stop_reason,
            "message": swarm.message, "synthesis": swarm.synthesis, "citations": citations, "members": members,
            "created_at": swarm.created_at, "finished_at": swarm.finished_at, "expires_at": share.expires_at}
