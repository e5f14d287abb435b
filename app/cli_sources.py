"""`magnet sources ...` and `magnet ingest PATH`: knowledge sources from the command line, with progress."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from tqdm import tqdm

from app.errors import MagnetError


def _fail(exc: MagnetError):
    raise click.ClickException(f"{exc.message} ({exc.code})")


def _prepare_database() -> None:
    """Make `magnet ingest DIR` work in a fresh data dir: an empty database gets its tables (as
    `magnet db upgrade` would make them) and, like `magnet serve`, the built-in models. A database at an
    older revision is not migrated behind the operator's back: they are told to upgrade it."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask_migrate import upgrade
    from sqlalchemy import inspect

    from app.extensions import db
    from app.services.llm_models import ensure_builtin_models

    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    if current is None and not inspect(db.engine).get_table_names():
        upgrade()
    else:
        config = current_app.extensions["migrate"].migrate.get_config()
        heads = ScriptDirectory.from_config(config).get_heads()
        if current not in heads:
            raise click.ClickException(f"The database is at revision {current}, not {', '.join(heads)}: "
                                       "run `magnet db upgrade` first.")
    ensure_builtin_models()


@click.group("sources")
def sources_group():
    """Create, sync and inspect knowledge sources."""


@sources_group.command("create")
@click.option("--name", required=True)
@click.option("--type", "source_type", type=click.Choice(["file", "directory", "web", "git"]), required=True)
@click.option("--config", "configuration", default="{}", help="configuration as JSON")
@click.option("--schedule", default=None, help='JSON, e.g. {"interval_minutes": 60}')
@with_appcontext
def sources_create(name, source_type, configuration, schedule):
    """Create a source and print its id."""
    _prepare_database()
    from app.services.knowledge_sources import create_source

    try:
        body = {"name": name, "type": source_type, "configuration": json.loads(configuration),
                "schedule": json.loads(schedule) if schedule else None}
        source = create_source(body, role="admin")  # the server's shell is an admin's
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"--config/--schedule is not valid JSON: {exc}") from exc
    except MagnetError as exc:
        _fail(exc)
    click.echo(source.id)


@sources_group.command("sync")
@click.argument("source_id")
@click.option("--no-wait", is_flag=True, help="queue the sync and return")
@with_appcontext
def sources_sync(source_id, no_wait):
    """Sync a source, showing progress; Ctrl-C cancels it."""
    _prepare_database()
    try:
        run = _start_or_attach(source_id)
    except MagnetError as exc:
        _fail(exc)
    if no_wait:
        click.echo(run.id)
        return
    _follow(source_id, run.id)


@sources_group.command("status")
@click.argument("source_id")
@with_appcontext
def sources_status(source_id):
    """Show a source and its last sync."""
    _prepare_database()
    from app.extensions import db
    from app.models import SyncRun
    from app.services.knowledge_sources import get_source, stats
    from app.services.sync_recovery import fail_dead_runs

    try:
        source = get_source(source_id)
    except MagnetError as exc:
        _fail(exc)
    for run_id in fail_dead_runs(source.id):  # never show a sync as running when its process is gone
        click.echo(f"sync {run_id} was interrupted (its process stopped); marked failed")
    db.session.expire_all()
    source = get_source(source_id)
    info = stats([source.id])[source.id]
    click.echo(f"{source.id}  {source.name}  type={source.type}  status={source.status}")
    click.echo(f"documents={info['document_count']}  chunks={info['chunk_count']}  last sync={source.last_sync_status or 'never'}")
    if source.last_sync_id:
        _print_run(db.session.get(SyncRun, source.last_sync_id))


@sources_group.command("import-uploads")
@with_appcontext
def sources_import_uploads():
    """Move the uploads an older Magnet kept in this node's data dir into the shared upload store, and sync
    the sources that got any. Run it once on every node after upgrading, unless the node runs `magnet serve`
    or `magnet worker` (they do it when they start); running it again imports nothing twice."""
    from app.services.legacy_uploads import import_local_uploads

    imported = import_local_uploads()
    for source_id, count in imported.items():
        click.echo(f"{source_id}: {count} uploads moved to the shared store; a sync is queued")
    if not imported:
        click.echo("No uploads in this node's data dir: nothing to move.")


@click.command("ingest")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", default=None, help="source name (default: the folder's name)")
@click.option("--include", multiple=True, help="glob of files to include (repeatable)")
@click.option("--exclude", multiple=True, help="glob of files to exclude (repeatable)")
@with_appcontext
def ingest_command(path: Path, name, include, exclude):
    """Create (or reuse) a directory source for PATH and sync it with a progress bar."""
    _prepare_database()
    from sqlalchemy import select

    from app.extensions import db
    from app.models import KnowledgeSource
    from app.services.knowledge_sources import create_source, update_source

    path = path.resolve()
    configuration = {"path": str(path), "include": list(include) or ["**/*"], "exclude": list(exclude)}
    name = name or path.name
    try:
        source = db.session.execute(select(KnowledgeSource).where(KnowledgeSource.name == name)).scalar_one_or_none()
        if source is None:
            source = create_source({"name": name, "type": "directory", "configuration": configuration}, role="admin")
            click.echo(f"created source {source.id} ({name})")
        elif source.type != "directory" or source.configuration.get("path") != str(path):
            raise click.ClickException(f"a source named {name!r} already exists for something else; pass --name")
        else:
            update_source(source.id, {"configuration": {**source.configuration, **configuration}}, role="admin")
        run = _start_or_attach(source.id)
    except MagnetError as exc:
        _fail(exc)
    _follow(source.id, run.id)


def _start_or_attach(source_id: str):
    """Start a sync; if one is already queued or running, follow that one instead of failing.

    start_sync itself fails runs whose process died (a killed `magnet ingest`, say), so a sync that is
    still active here is alive elsewhere, or queued: _follow then runs a queued one in this process.
    """
    from app.errors import Conflict
    from app.extensions import db
    from app.models import SyncRun
    from app.services.sync import start_sync

    try:
        return start_sync(source_id, trigger="cli")
    except Conflict as exc:
        run_id = (exc.details or {}).get("run_id") if exc.code == "sync_in_progress" else None
        run = db.session.get(SyncRun, run_id) if run_id else None
        if run is None:
            raise
        click.echo(f"a sync of this source is already {run.status} ({run.id}); following it")
        return run


def _follow(source_id: str, run_id: str) -> None:
    """Run the sync here if no worker has claimed it, and draw its progress until it ends."""
    from app.extensions import db
    from app.models import SyncRun
    from app.services.sync import cancel_sync, run_sync

    app = current_app._get_current_object()

    def work():
        with app.app_context():
            run_sync(run_id)  # a no-op if a running worker claimed the run first

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    bar = tqdm(total=None, unit="doc", desc="syncing")
    try:
        while True:
            db.session.expire_all()
            run = db.session.get(SyncRun, run_id)
            if run.documents_total is not None and bar.total != run.documents_total:
                bar.total = run.documents_total
            bar.n = run.documents_done
            bar.set_postfix(added=run.added, updated=run.updated, unchanged=run.unchanged, failed=run.failed)
            bar.refresh()
            if run.status not in ("queued", "running"):
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\ncancelling…")
        cancel_sync(source_id, run_id)
        thread.join()
        db.session.expire_all()
        run = db.session.get(SyncRun, run_id)
    finally:
        bar.close()
    _print_run(run)
    if run.status == "failed":
        raise SystemExit(1)


def _print_run(run) -> None:
    click.echo(f"sync {run.id}: {run.status}  added={run.added} updated={run.updated} unchanged={run.unchanged} "
               f"deleted={run.deleted} failed={run.failed}")
    if run.message:
        click.echo(f"  {run.message}")
    for error in (run.errors or [])[:20]:
        kind = "skipped" if error.get("skipped") else "failed"
        click.echo(f"  {kind}: {error['external_id']}: {error['message']} ({error['code']})")
    if len(run.errors or []) > 20:
        click.echo(f"  … and {len(run.errors) - 20} more (GET /api/knowledge-sources/{run.source_id}/syncs/{run.id})")
