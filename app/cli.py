"""The `magnet` command line: serve, seed, keys, and (from Flask-Migrate) `magnet db upgrade`."""
from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from app import create_app
from app.models.api_key import ROLES

log = logging.getLogger(__name__)


def _app_factory():
    return create_app()


@click.group(cls=FlaskGroup, create_app=_app_factory, add_default_commands=False, add_version_option=False)
def main():
    """Magnet: self-hosted RAG and evaluation backend."""


@main.command("seed")
@with_appcontext
def seed_command():
    """Create the built-in models and the demo data, and sync the demo docs (idempotent)."""
    from app.services.seed import seed_demo_data

    seed_demo_data(report=click.echo)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker")
@with_appcontext
def serve_command(host: str, port: int, workers: int, threads: int):
    """Start the service under gunicorn and print an admin key and first curls (status, demo tool, demo agent)."""
    from app.services.api_keys import ensure_bootstrap_admin_key
    from app.services.llm_models import ensure_builtin_models

    config = current_app.extensions["magnet.config"]
    if workers > 1 and not config.chroma_url:
        raise click.ClickException(
            "The embedded Chroma serves one process only: use --workers 1, or set MAGNET_CHROMA_URL to a "
            "Chroma server (and run background jobs with `magnet worker`)."
        )
    ensure_builtin_models()
    _move_local_state_to_shared_store()
    key_file = config.data_dir / "admin-key.txt"
    bootstrap = ensure_bootstrap_admin_key(key_file)
    key = bootstrap.key
    base = f"http://{host}:{port}"
    click.echo("")
    click.echo(f"Magnet is starting on {base}  (API docs: {base}/api/docs)")
    click.echo(f"Console: {base}/  (sign in; the first account to sign up becomes the admin)")
    if key:
        click.echo(f"Admin API key: {key}   (kept in {key_file}, mode 0600)")
        click.echo(f"Try:  curl -H 'X-API-Key: {key}' {base}/api/status")
    elif bootstrap.state == "revoked":
        click.echo(f"The bootstrap key in {key_file} was revoked; make one with: magnet keys create --role admin")
    else:
        click.echo("This database has its admin key already (made by the first node that started on it, or by "
                   "an admin): ask an admin for a key, or make one on this server with: "
                   "magnet keys create --role admin")
    for line in _demo_curls(base, key or "YOUR_KEY"):
        click.echo(line)
    click.echo("")
    app = current_app._get_current_object()
    _run_gunicorn(app, host, port, workers, threads, with_jobs=workers == 1)


def _move_local_state_to_shared_store() -> None:
    """Uploads an older Magnet kept in this node's data dir go to the shared upload store (every node does
    this for its own data dir on start), and blobs a dead process left unnamed are collected."""
    from app.extensions import db
    from app.services.legacy_uploads import import_local_uploads
    from app.services.uploads import collect_all_garbage

    try:
        imported = import_local_uploads()
        collect_all_garbage()
    except Exception:  # e.g. a database not upgraded yet: the files stay, and the next start tries again
        db.session.rollback()
        log.exception("moving this node's uploads into the shared store failed; run `magnet db upgrade`?")
        return
    if imported:
        click.echo(f"Moved {sum(imported.values())} uploads from this node's data dir into the shared store.")


DEMO_QUERY = "Which role can create API keys?"
DEMO_MESSAGE = "How does a sync find changed documents?"


def _demo_curls(base: str, key: str) -> list[str]:
    """Copy-paste curls for the seeded demo RAG tool and agent (nothing for whichever does not exist)."""
    import json

    from app.services.seed import demo_objects, not_ready_reason

    tool, agent = demo_objects()
    call = f"curl -s -H 'X-API-Key: {key}' -H 'Content-Type: application/json'"
    lines = []
    if tool is not None:
        reason = not_ready_reason(tool)
        note = f"  [not ready: {reason}]" if reason else ""
        lines += [f"Ask the demo docs (RAG tool {tool.name}):{note}",
                  f"  {call} -d '{json.dumps({'query': DEMO_QUERY})}' {base}/api/rag-tools/{tool.id}/query"]
    if agent is not None:
        lines += [f"Chat with the demo agent ({agent.name}): open a conversation, then send it a message:",
                  f"  conv=$({call} -d '{json.dumps({'agent_id': agent.id})}' {base}/api/conversations"
                  " | grep -oE 'conv_[0-9a-z]{24}' | head -1)",
                  f"  {call} -d '{json.dumps({'message': DEMO_MESSAGE})}' {base}/api/conversations/$conv/messages"]
    return lines


def _warm_up(app) -> None:
    """Before the worker takes its first request: load the embedding models the indexes use. A request
    made meanwhile waits a few seconds in the listen queue, instead of the first query paying the load
    (and every other request slowing while the model's libraries import)."""
    from app.services.engine import warm_up_embedders
    from app.vectordb import chroma_client

    try:
        with app.app_context():
            chroma_client()  # opened before the first request, which (or /api/health) would wait for it
    except Exception as exc:  # a Chroma server that is down: requests answer 503 until it is back
        log.warning("the vector store is not reachable yet: %s", exc)
    try:
        with app.app_context():
            loaded = warm_up_embedders()
        if loaded:
            log.info("embedding models loaded: %s", ", ".join(loaded))
    except Exception:  # a model that cannot load fails its first query with the reason, as before
        log.exception("warming up the embedding models failed")


# gunicorn answers the requests it cannot parse itself; these are the codes of its statuses.
_GUNICORN_ERROR_CODES = {414: "uri_too_long", 431: "headers_too_large", 403: "forbidden",
                         417: "expectation_failed", 501: "not_implemented", 500: "internal_error"}


def _json_error_pages() -> None:
    """gunicorn refuses a request it cannot parse (a request line over its 4094-byte limit: 414; bad or
    too many headers: 400/431) before Magnet sees it, with an HTML page. The API answers JSON, always: write
    those in the error envelope instead. gunicorn's workers call `gunicorn.util.write_error` for them."""
    import json

    from gunicorn import util

    def write_error(sock, status_int, reason, mesg):
        code = _GUNICORN_ERROR_CODES.get(status_int, "bad_request")
        body = json.dumps({"success": False, "error": {"code": code, "message": f"{reason}: {mesg}",
                                                       "details": {}}})
        head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        util.write_nonblock(sock, (head + body).encode("latin1"))  # json.dumps escapes non-ASCII

    util.write_error = write_error


def _run_gunicorn(app, host: str, port: int, workers: int, threads: int, with_jobs: bool) -> None:
    from gunicorn.app.base import BaseApplication

    _json_error_pages()

    from app.extensions import db

    def post_fork(server, worker):
        # Connections opened before the fork must not be shared with the child.
        with app.app_context():
            db.engine.dispose(close=False)

    def post_worker_init(worker):
        from app.vectordb import hold_embedded_chroma

        hold_embedded_chroma(app)  # refuses a second web process on the same embedded Chroma
        # The job consumer lives in the single web worker, so web requests and background jobs share one
        # process, one embedded Chroma client and one loaded embedding model.
        if with_jobs:
            from app.jobs import start_consumer

            worker.magnet_consumer = start_consumer(app)
        _warm_up(app)

    def worker_exit(server, worker):
        consumer = getattr(worker, "magnet_consumer", None)
        if consumer is not None:
            from app.jobs import stop_consumer

            stop_consumer(consumer)

    class _Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 300)  # streaming answers and uploads can take a while
            self.cfg.set("accesslog", "-")
            self.cfg.set("post_fork", post_fork)
            self.cfg.set("post_worker_init", post_worker_init)
            self.cfg.set("worker_exit", worker_exit)

        def load(self):
            return app

    _Server().run()


@main.command("worker")
@click.option("--workers", default=2, show_default=True, type=int, help="worker threads")
@with_appcontext
def worker_command(workers: int):
    """Run background jobs (syncs, index builds, schedules) in the foreground; any number may share Redis."""
    from app.jobs import run_consumer_forever

    _move_local_state_to_shared_store()
    run_consumer_forever(current_app._get_current_object(), workers)


def _register_knowledge_commands():
    from app.cli_eval import eval_group
    from app.cli_sources import ingest_command, sources_group

    main.add_command(sources_group)
    main.add_command(ingest_command)
    main.add_command(eval_group)
    from app.cli_agents import agents_group

    main.add_command(agents_group)

    from app.cli_users import users_group

    main.add_command(users_group)


_register_knowledge_commands()


@main.group("keys")
def keys_group():
    """Manage API keys directly on the database (works with the service stopped)."""


@keys_group.command("create")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--name", default="cli", show_default=True)
@with_appcontext
def keys_create(role: str, name: str):
    """Create a key and print it (shown this once)."""
    from app.services.api_keys import create_key

    record, key = create_key(name, role)
    click.echo(f"{record.id}  role={role}")
    click.echo(key)


@keys_group.command("list")
@with_appcontext
def keys_list():
    """List keys (prefix, role, last use)."""
    from app.extensions import db
    from app.models import ApiKey

    for record in db.session.execute(db.select(ApiKey).order_by(ApiKey.created_at)).scalars():
        state = "revoked" if record.revoked_at else "active"
        click.echo(f"{record.id}  {record.prefix}…  {record.role:<8}  {state:<7}  {record.name}")


@keys_group.command("revoke")
@click.argument("key_id")
@with_appcontext
def keys_revoke(key_id: str):
    """Revoke a key by id."""
    from app.extensions import db
    from app.models import ApiKey, utcnow

    record = db.session.get(ApiKey, key_id)
    if record is None:
        raise click.ClickException(f"no key {key_id}")
    record.revoked_at = utcnow()
    db.session.commit()
    click.echo(f"revoked {key_id}")
