"""The workspace: its name, description, goals and mission, logo, and whether anyone may sign up."""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import WORKSPACE_ID, Workspace

EDITABLE = ("name", "description", "goals", "mission", "signups_open")


def get_workspace() -> Workspace:
    """The one workspace row, made with its defaults the first time it is read."""
    row = db.session.get(Workspace, WORKSPACE_ID)
    if row is None:
        row = Workspace(id=WORKSPACE_ID, name="Magnet", description="", goals="", mission="", signups_open=False)
        db.session.add(row)
        try:
            db.session.commit()
        except IntegrityError:  # another request made it at the same moment: read theirs
            db.session.rollback()
            row = db.session.get(Workspace, WORKSPACE_ID)
    return row


def update_workspace(changes: dict) -> Workspace:
    row = get_workspace()
    for name in EDITABLE:
        if name in changes:
            setattr(row, name, changes[name])
    db.session.commit()
    return row


def set_logo(data: bytes, max_bytes: int) -> Workspace:
    from app.services import images

    encoded, content_type = images.reencode(data, max_bytes=max_bytes, max_side=1024)
    row = get_workspace()
    old = row.logo_id
    row.logo_id = None
    db.session.flush()
    row.logo_id = images.replace(old, encoded, content_type).id
    db.session.commit()
    return row


def logo():
    from app.services import images

    return images.read(get_workspace().logo_id)
