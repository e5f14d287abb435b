"""Users: sign-up, sign-in with a password, password changes, and what admins do to accounts (roles,
deactivation); each use case one transaction.

Errors never say whether an email has an account: a wrong address and a wrong password read the same.
"""
from __future__ import annotations

import hmac
from datetime import timedelta

from sqlalchemy import func

from app.common.pagination import paginate
from app.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from app.extensions import db
from app.models import ROLES, WORKSPACE_ID, Invitation, User, Workspace, utcnow
from app.services import passwords, sessions
from app.services.sessions import SignedIn, token_hash

# The workspace's names for people, mapped onto Magnet's roles (README "Users and sign-in").
ROLE_ALIASES = {"guest": "viewer", "employee": "operator"}
ROLE_CHOICES = (*ROLES, *ROLE_ALIASES)
INVALID_CREDENTIALS = "The email or password is not correct."


def normalise_email(email: str) -> str:
    return email.strip().lower()


def normalise_role(role: str) -> str:
    role = ROLE_ALIASES.get(role, role)
    if role not in ROLES:
        raise ValidationFailed(f"Unknown role {role!r}.", details={"role": role, "choices": list(ROLE_CHOICES)})
    return role


def check_password_strength(password: str) -> None:
    if len(password) < passwords.MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"The password must have at least {passwords.MIN_PASSWORD_LENGTH} characters.",
                               code="weak_password")


def count_users() -> int:
    return db.session.execute(db.select(func.count()).select_from(User)).scalar_one()


def get_user(user_id: str) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.")
    return user


def find_by_email(email: str) -> User | None:
    return db.session.execute(db.select(User).filter_by(email=normalise_email(email))).scalar_one_or_none()


def create_user(email: str, name: str, role: str, password: str | None, *, commit: bool = True) -> User:
    """A new active user (used by sign-up and by `magnet users create`)."""
    email = normalise_email(email)
    if password is not None:
        check_password_strength(password)
    if find_by_email(email) is not None:
        raise Conflict("An account with this email already exists.", code="email_taken")
    user = User(email=email, name=name.strip() or email, role=normalise_role(role),
                password_hash=passwords.hash_password(password) if password is not None else None,
                preferences={})
    db.session.add(user)
    if commit:
        db.session.commit()
    return user


def signup(email: str, password: str, name: str, *, invitation: str | None = None,
           ip: str | None = None, user_agent: str | None = None) -> SignedIn:
    """Sign up and sign in. The first user of an empty database becomes admin; later ones need an
    invitation token, or the workspace's sign-ups open (they join as viewers)."""
    from app.services import workspace

    email = normalise_email(email)
    check_password_strength(password)
    # Sign-ups take turns on the workspace row (PostgreSQL: FOR UPDATE), so two people signing up on an
    # empty database cannot both become its first admin.
    workspace.get_workspace()
    db.session.execute(db.select(Workspace).where(Workspace.id == WORKSPACE_ID).with_for_update())
    if count_users() == 0:
        role, invite = "admin", None
    elif invitation:
        invite = _usable_invitation(invitation, email)
        role = invite.role
    elif workspace.get_workspace().signups_open:
        role, invite = "viewer", None
    else:
        raise Forbidden("Sign-ups are closed: ask an admin for an invitation.", code="signups_closed")
    user = create_user(email, name, role, password, commit=False)
    db.session.flush()
    if invite is not None and not _claim_invitation(invite, user.id):
        db.session.rollback()
        raise Forbidden("This invitation is not valid (used, expired or unknown).", code="invalid_invitation")
    db.session.commit()
    return sessions.start_session(user, ip=ip, user_agent=user_agent)


def _usable_invitation(token: str, email: str) -> Invitation:
    digest = token_hash(token)
    invite = db.session.execute(db.select(Invitation).filter_by(token_hash=digest)).scalar_one_or_none()
    valid = (invite is not None and hmac.compare_digest(invite.token_hash, digest) and invite.used_at is None
             and invite.expires_at > utcnow() and (invite.email is None or invite.email == email))
    if not valid:
        raise Forbidden("This invitation is not valid (used, expired or unknown).", code="invalid_invitation")
    return invite


def _claim_invitation(invite: Invitation, user_id: str) -> bool:
    """Mark the invitation used, in one conditional UPDATE: of two sign-ups racing with it, one wins."""
    result = db.session.execute(db.update(Invitation).where(Invitation.id == invite.id, Invitation.used_at.is_(None))
                                .values(used_at=utcnow(), used_by=user_id))
    return result.rowcount == 1


def login(email: str, password: str, *, ip: str | None = None, user_agent: str | None = None) -> SignedIn:
    """Check the password (throttled per account and per address) and start a new session."""
    email = normalise_email(email)
    passwords.check_throttle(email, ip)
    user = find_by_email(email)
    good = passwords.verify_password(user.password_hash if user else None, password)
    if not good or user is None or not user.is_active:
        passwords.record_failure(email, ip)
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    passwords.clear_account_failures(email)
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    return sessions.start_session(user, ip=ip, user_agent=user_agent)


def change_password(user: User, current: str, new: str, *, keep_session: str | None) -> int:
    """Change a password (the current one required); every other session of the user ends. Returns how
    many ended."""
    if not passwords.verify_password(user.password_hash, current):
        raise Forbidden("The current password is not correct.", code="invalid_credentials")
    check_password_strength(new)
    user.password_hash = passwords.hash_password(new)
    ended = sessions.end_user_sessions(user.id, keep=keep_session, commit=False)
    db.session.commit()
    return ended


def list_users(args: dict) -> dict:
    query = db.select(User)
    if args.get("role"):
        query = query.where(User.role == normalise_role(args["role"]))
    if args.get("is_active") is not None:
        query = query.where(User.is_active.is_(args["is_active"]))
    return paginate(query, User, args)


def _active_admins() -> int:
    return db.session.execute(db.select(func.count()).select_from(User).where(
        User.role == "admin", User.is_active.is_(True))).scalar_one()


def _keep_an_admin(user: User) -> None:
    if user.role == "admin" and user.is_active and _active_admins() <= 1:
        raise Conflict("This is the last active admin; make another user admin first.", code="last_admin")


def update_user(user_id: str, changes: dict) -> User:
    """An admin's change to a user: role (aliases accepted), name, active or not. Deactivating ends the
    user's sessions at once; the last active admin can be neither demoted nor deactivated."""
    user = get_user(user_id)
    if "role" in changes:
        role = normalise_role(changes["role"])
        if role != "admin":
            _keep_an_admin(user)
        user.role = role
    if "name" in changes:
        user.name = changes["name"].strip() or user.email
    if "is_active" in changes and changes["is_active"] != user.is_active:
        if not changes["is_active"]:
            _keep_an_admin(user)
            user.is_active, user.deactivated_at = False, utcnow()
            sessions.end_user_sessions(user.id, commit=False)
        else:
            user.is_active, user.deactivated_at = True, None
    db.session.commit()
    return user


def deactivate(user_id: str) -> User:
    return update_user(user_id, {"is_active": False})


def set_preferences(user: User, preferences: dict, max_bytes: int) -> dict:
    import json

    size = len(json.dumps(preferences, separators=(",", ":")).encode())
    if size > max_bytes:
        from app.errors import PayloadTooLarge

        raise PayloadTooLarge(f"Preferences are {size} bytes; the limit is {max_bytes}.",
                              details={"limit_bytes": max_bytes, "size_bytes": size})
    user.preferences = preferences
    db.session.commit()
    return user.preferences


def create_invitation(*, role: str, email: str | None, created_by: str | None, ttl: timedelta) -> tuple[Invitation, str]:
    """A single-use, expiring invitation; returns it and its token (shown once, stored as a hash)."""
    token = sessions.new_token()
    invite = Invitation(token_hash=token_hash(token), role=normalise_role(role),
                        email=normalise_email(email) if email else None, created_by=created_by,
                        expires_at=utcnow() + ttl)
    db.session.add(invite)
    db.session.commit()
    return invite, token


def set_avatar(user: User, data: bytes, max_bytes: int) -> User:
    from app.services import images

    encoded, content_type = images.reencode(data, max_bytes=max_bytes, max_side=512)
    old = user.avatar_id
    user.avatar_id = None
    db.session.flush()
    user.avatar_id = images.replace(old, encoded, content_type).id
    db.session.commit()
    return user


def avatar(user_id: str):
    from app.services import images

    return images.read(get_user(user_id).avatar_id)
