"""Use cases for app integrations: an application's key to one agent, with an optional daily spend limit.

The key is shown once (on create and on rotate) and stored only as its SHA-256 hash, like platform API
keys. `authenticate_integration` and `check_daily_credit` guard `POST /api/v1/messages`.
"""
from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.auth import hash_key
from app.common.pagination import paginate
from app.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from app.extensions import db
from app.models import Agent, Integration, UsageRecord, utcnow

KEY_PREFIX = "magnet_sk_"
# Enough to tell keys apart in a list (the prefix plus four random characters), far too little to guess.
PREFIX_LENGTH = 14
# Writing last_used_at on every message would turn each call into an extra write; a minute is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
_FIELDS = (
    "id", "name", "description", "agent_id", "key_prefix", "is_active", "daily_credit_limit",
    "last_used_at", "created_at", "updated_at",
)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def as_dict(integration: Integration, spent: float | None = None) -> dict:
    """The integration as the API shows it (never the key or its hash), with today's spend."""
    data = {name: getattr(integration, name) for name in _FIELDS}
    data["spent_today"] = spent_today(integration.id) if spent is None else spent
    return data


def list_integrations(args: dict) -> dict:
    """A page of integrations, filtered by agent_id and is_active; spend is one grouped query."""
    query = select(Integration)
    if args.get("agent_id"):
        query = query.where(Integration.agent_id == args["agent_id"])
    if args.get("is_active") is not None:
        query = query.where(Integration.is_active == args["is_active"])
    page = paginate(query, Integration, args)
    spent = _spent_today_by_id([row.id for row in page["data"]])
    page["data"] = [as_dict(row, spent.get(row.id, 0.0)) for row in page["data"]]
    return page


def get_integration(integration_id: str) -> Integration:
    integration = db.session.get(Integration, integration_id)
    if integration is None:
        raise NotFound(f"Integration {integration_id} does not exist.", details={"id": integration_id})
    return integration


def create_integration(body: dict) -> tuple[Integration, str]:
    """Create an integration; returns the record and its key, which is never stored."""
    _check_name_free(body["name"])
    _check_agent(body["agent_id"])
    _check_limit(body.get("daily_credit_limit"))
    key = generate_key()
    integration = Integration(
        name=body["name"],
        description=body.get("description"),
        agent_id=body["agent_id"],
        is_active=body.get("is_active", True),
        daily_credit_limit=body.get("daily_credit_limit"),
        key_prefix=key[:PREFIX_LENGTH],
        key_hash=hash_key(key),
    )
    db.session.add(integration)
    db.session.commit()
    return integration, key


def update_integration(integration_id: str, body: dict) -> Integration:
    """Change only the fields sent; `daily_credit_limit: null` removes the limit."""
    integration = get_integration(integration_id)
    if "name" in body:
        _check_name_free(body["name"], exclude_id=integration.id)
    if "agent_id" in body:
        _check_agent(body["agent_id"])
    if "daily_credit_limit" in body:
        _check_limit(body["daily_credit_limit"])
    for name in ("name", "description", "agent_id", "is_active", "daily_credit_limit"):
        if name in body:
            setattr(integration, name, body[name])
    db.session.commit()
    return integration


def rotate_key(integration_id: str) -> tuple[Integration, str]:
    """Give the integration a new key (returned once); the old key stops working at once."""
    integration = get_integration(integration_id)
    key = generate_key()
    integration.key_prefix = key[:PREFIX_LENGTH]
    integration.key_hash = hash_key(key)
    db.session.commit()
    return integration, key


def delete_integration(integration_id: str) -> None:
    """Delete an integration; its conversations stay, no longer linked to it."""
    integration = get_integration(integration_id)
    db.session.delete(integration)
    db.session.commit()


def integrations_using(agent_id: str) -> list[str]:
    """Names of the integrations bound to an agent (an agent in use cannot be deleted)."""
    query = select(Integration.name).where(Integration.agent_id == agent_id).order_by(Integration.name)
    return list(db.session.execute(query).scalars())


def authenticate_integration(key: str | None) -> Integration:
    """The active integration a key belongs to.

    Raises Unauthorized `invalid_api_key` for a missing or unknown key and Forbidden
    `integration_inactive` for a deactivated integration.
    """
    key = (key or "").strip()
    if not key:
        raise Unauthorized(
            "An integration key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
            code="invalid_api_key",
        )
    digest = hash_key(key)
    integration = db.session.execute(select(Integration).filter_by(key_hash=digest)).scalar_one_or_none()
    # Compare again in constant time; the indexed lookup above is only the fast path.
    if integration is None or not hmac.compare_digest(integration.key_hash, digest):
        raise Unauthorized("The integration key is not valid or has been rotated.", code="invalid_api_key")
    if not integration.is_active:
        raise Forbidden(
            f"Integration {integration.name} is deactivated.",
            code="integration_inactive",
            details={"integration_id": integration.id},
        )
    _touch(integration)
    return integration


def spent_today(integration_id: str) -> float:
    """What the integration's calls have cost since today's UTC midnight."""
    return _spent_today_by_id([integration_id]).get(integration_id, 0.0)


def check_daily_credit(integration: Integration) -> None:
    """Forbidden `usage_limit_exceeded` once today's spend has reached the integration's daily limit."""
    limit = integration.daily_credit_limit
    if limit is None:
        return
    spent = spent_today(integration.id)
    if spent >= limit:
        resets_at = _utc_midnight() + timedelta(days=1)
        raise Forbidden(
            f"Integration {integration.name} has used its daily credit ({spent:g} of {limit:g}); "
            f"it resets at {_iso(resets_at)}.",
            code="usage_limit_exceeded",
            details={"limit": limit, "spent": spent, "resets_at": _iso(resets_at)},
        )


def _spent_today_by_id(ids: list[str]) -> dict[str, float]:
    if not ids:
        return {}
    query = (
        select(UsageRecord.integration_id, func.coalesce(func.sum(UsageRecord.cost), 0.0))
        .where(UsageRecord.integration_id.in_(ids), UsageRecord.created_at >= _utc_midnight())
        .group_by(UsageRecord.integration_id)
    )
    return {integration_id: float(total) for integration_id, total in db.session.execute(query)}


def _utc_midnight() -> datetime:
    now = utcnow()
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _touch(integration: Integration) -> None:
    now = utcnow()
    if integration.last_used_at is None or now - integration.last_used_at > _LAST_USED_RESOLUTION:
        integration.last_used_at = now
        db.session.commit()


def _check_agent(agent_id: str) -> None:
    if db.session.get(Agent, agent_id) is None:
        problem = f"agent {agent_id} does not exist"
        raise ValidationFailed(
            f"An integration needs an existing agent: {problem}.",
            details={"fields": {"agent_id": [problem]}, "agent_id": agent_id},
        )


def _check_limit(limit: float | None) -> None:
    if limit is not None and limit < 0:
        raise ValidationFailed(
            "daily_credit_limit must be 0 or more (or null for no limit).",
            details={"fields": {"daily_credit_limit": ["must be 0 or more, or null"]}},
        )


def _check_name_free(name: str, exclude_id: str | None = None) -> None:
    query = select(Integration.id).where(Integration.name == name)
    if exclude_id:
        query = query.where(Integration.id != exclude_id)
    if db.session.execute(query).first():
        raise Conflict(
            f"An integration named '{name}' already exists.", code="duplicate_name", details={"name": name}
        )
