"""Use cases for platform API keys."""
from __future__ import annotations

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


def ensure_bootstrap_admin_key(key_file) -> str | None:
    """On first start, create an admin key and keep it in a 0600 file so `make run` can print it.

    Returns the key when the file holds a valid one (created now or earlier), else None.
    """
    import os

    if key_file.exists():
        key = key_file.read_text().strip()
        from app.auth import lookup_key

        if lookup_key(key) is not None:
            return key
        return None  # revoked or from another database: never recreate silently
    record, key = create_key("bootstrap admin", "admin")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
