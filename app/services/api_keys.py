"""Use cases for platform API keys."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError

from app.auth import generate_key, hash_key
from app.common.pagination import paginate
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import ApiKey, utcnow


def create_key(name: str, role: str) -> tuple[ApiKey, str]:
    """Create a key; returns the record and the key itself, which is never stored."""
    key = generate_key()
    record = ApiKey(name=name, role=role, prefix=key[:16], key_hash=hash_key(key))
    db.session.add(record)
    db.session.commit()
    return record, key


def as_dict(record: ApiKey) -> dict:
    return {c: getattr(record, c) for c in ("id", "name", "role", "prefix", "created_at", "last_used_at", "revoked_at")}


def list_keys(args: dict) -> dict:
    query = db.select(ApiKey)
    if not args.get("include_revoked"):
        query = query.where(ApiKey.revoked_at.is_(None))
    return paginate(query, ApiKey, args)


def get_key(key_id: str) -> ApiKey:
    record = db.session.get(ApiKey, key_id)
    if record is None:
        raise NotFound(f"API key {key_id} does not exist.")
    return record


def revoke_key(key_id: str) -> None:
    record = get_key(key_id)
    if record.revoked_at is not None:
        raise Conflict(f"API key {key_id} is already revoked.")
    if record.role == "admin" and _active_admins() <= 1:
        # Revoking the last admin key would lock everyone out of key management over the API.
        raise Conflict(
            "This is the last active admin key; create another admin key first "
            "(or use `magnet keys create --role admin` on the server)."
        )
    record.revoked_at = utcnow()
    db.session.commit()


def _active_admins() -> int:
    query = db.select(db.func.count()).select_from(ApiKey).where(
        ApiKey.role == "admin", ApiKey.revoked_at.is_(None)
    )
    return db.session.execute(query).scalar_one()


# One bootstrap key per database: its fixed id makes a second node's insert fail instead of minting another.
BOOTSTRAP_KEY_ID = "key_" + "0" * 24
BOOTSTRAP_KEY_NAME = "bootstrap admin"


@dataclass(frozen=True)
class BootstrapKey:
    """What `magnet serve` can tell about the bootstrap admin key: the key itself only where this data
    dir holds it (state `created` or `kept`), else why not (`revoked`, `elsewhere`)."""

    state: str
    key: str | None = None


def ensure_bootstrap_admin_key(key_file: Path) -> BootstrapKey:
    """On the first start against a database, create an admin key and keep it in a 0600 file so that
    `make run` can print it. A node that finds the database has its bootstrap key (or any admin key)
    already mints none: that node's operator asks an admin, or runs `magnet keys create`."""
    if key_file.exists():
        from app.auth import lookup_key

        key = key_file.read_text().strip()
        # Revoked, or from another database: never recreate silently.
        return BootstrapKey("kept", key) if lookup_key(key) is not None else BootstrapKey("revoked")
    if _bootstrap_key_exists() or _active_admins() > 0:
        return BootstrapKey("elsewhere")
    key = generate_key()
    db.session.add(ApiKey(id=BOOTSTRAP_KEY_ID, name=BOOTSTRAP_KEY_NAME, role="admin", prefix=key[:16],
                          key_hash=hash_key(key)))
    try:
        db.session.commit()
    except IntegrityError:  # another node created it between our check and our insert
        db.session.rollback()
        return BootstrapKey("elsewhere")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return BootstrapKey("created", key)


def _bootstrap_key_exists() -> bool:
    query = db.select(ApiKey.id).where(or_(ApiKey.id == BOOTSTRAP_KEY_ID, ApiKey.name == BOOTSTRAP_KEY_NAME))
    return db.session.execute(query.limit(1)).first() is not None
