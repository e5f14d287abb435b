"""`magnet agents sync FILE` and `magnet agents export [FILE]`: agents as code, the same document as
POST /api/agents/sync (YAML or JSON; see app.services.agents_sync)."""
from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext


@click.group("agents")
def agents_group():
    """Agents as code: sync agents from a YAML or JSON file, or export them to one."""


def _read(path: Path) -> dict:
    import yaml

    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise click.ClickException(f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                                   f"{exc}") from None
    if not isinstance(document, dict):
        raise click.ClickException(f"{path} must hold an object with an 'agents' list.")
    return document


@agents_group.command("sync")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def agents_sync(file: Path):
    """Create or update the agents FILE describes (checked whole first: a bad entry changes nothing)."""
    from marshmallow import ValidationError

    from app.api.agent_ops.schemas import AgentsDocumentSchema
    from app.errors import MagnetError
    from app.services.agents_sync import sync_document

    try:
        document = AgentsDocumentSchema().load(_read(file))
        result = sync_document(document)
    except ValidationError as exc:
        raise click.ClickException(f"{file} is not a valid agents document: {json.dumps(exc.messages)}") from None
    except MagnetError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps(result, indent=2))


@agents_group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def agents_export(file: Path | None):
    """Write every agent as an agents document: YAML (JSON when FILE ends in .json); stdout without FILE."""
    import yaml

    from app.services.agents_sync import export_document

    document = export_document()
    as_json = file is not None and file.suffix.lower() == ".json"
    text = (json.dumps(document, indent=2, ensure_ascii=False) + "\n" if as_json
            else yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    if file is None:
        click.echo(text, nl=False)
    else:
        file.write_text(text, encoding="utf-8")
        click.echo(f"{len(document['agents'])} agents written to {file}")
