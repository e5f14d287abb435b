"""`magnet users ...`: manage users on the server, for operators without a browser.

Passwords are read from a hidden prompt or from stdin, never from an argument (which would sit in the
shell history and the process list); nothing secret is printed.
"""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from app.errors import MagnetError


@click.group("users")
def users_group():
    """Manage users (sign-in accounts) directly on the database."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_group.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, help="viewer, operator, admin (or guest, employee)")
@click.option("--name", default="", help="Display name (default: the email)")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin")
@click.option("--no-password", is_flag=True, help="No password: the user signs in by emailed link")
@with_appcontext
def users_create(email: str, role: str, name: str, password_stdin: bool, no_password: bool):
    """Create a user; the password is asked for (hidden) unless --password-stdin or --no-password."""
    from app.services import users

    password = None if no_password else _read_password(password_stdin)
    try:
        user = users.create_user(email, name or email, role, password)
    except MagnetError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"created {user.id}  {user.email}  role={user.role}")


@users_group.command("set-password")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin")
@with_appcontext
def users_set_password(email: str, password_stdin: bool):
    """Set a user's password (e.g. a locked-out admin's); their sessions end."""
    from app.extensions import db
    from app.services import passwords, sessions, users

    user = users.find_by_email(email)
    if user is None:
        raise click.ClickException(f"no user {email}")
    password = _read_password(password_stdin)
    try:
        users.check_password_strength(password)
    except MagnetError as exc:
        raise click.ClickException(exc.message) from exc
    user.password_hash = passwords.hash_password(password)
    sessions.end_user_sessions(user.id, commit=False)
    db.session.commit()
    click.echo(f"password set for {user.id}; their sessions ended")


@users_group.command("list")
@with_appcontext
def users_list():
    """List users (id, email, role, active)."""
    from app.extensions import db
    from app.models import User

    for user in db.session.execute(db.select(User).order_by(User.created_at)).scalars():
        state = "active" if user.is_active else "inactive"
        click.echo(f"{user.id}  {user.email}  {user.role:<8}  {state}")
