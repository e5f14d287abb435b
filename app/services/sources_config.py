"""What a knowledge source's `configuration` may hold, and the connector it becomes.

Magnet-level keys (file size limit, allowed file types) are handled here; everything else goes to the
connector, whose constructor validates it (bad settings become a 422 naming the setting).
"""
from __future__ import annotations

from flask import current_app

from app.errors import ValidationFailed
from app.models import KnowledgeSource
from knowledge.connectors import make_connector
from knowledge.loaders import supported_extensions

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
HARD_MAX_FILE_SIZE = 50 * 1024 * 1024
MAGNET_KEYS = {"max_file_size", "file_types"}


def max_file_size(source: KnowledgeSource) -> int:
    return int((source.configuration or {}).get("max_file_size", DEFAULT_MAX_FILE_SIZE))


def allowed_file_types(source: KnowledgeSource) -> tuple[str, ...]:
    types = (source.configuration or {}).get("file_types")
    return tuple(types) if types else supported_extensions()


def _workdir(source_id: str):
    return current_app.extensions["magnet.config"].data_dir / "sources" / source_id


def _url_guard():
    """The outbound policy for web and git sources: private or loopback addresses are refused unless the
    allowlist names them; a refusal raises, and its message becomes the document's error.

    The allowlist is read now, in the app context: the web connector calls the guard from its own crawl
    threads, where there is no app context.
    """
    from app.runtime.outbound import check_url

    allowlist = list(current_app.extensions["magnet.config"].outbound_allowlist)

    def allow_url(url: str) -> bool:
        check_url(url, allowlist)
        return True

    return allow_url


def connector_for(source: KnowledgeSource):
    from app.services.uploads import upload_listing

    settings = {k: v for k, v in (source.configuration or {}).items() if k not in MAGNET_KEYS}
    if source.type == "directory":
        # List every file, so the sync can report unsupported ones as skipped, with the reason.
        settings.setdefault("only_supported", False)
    uploads = upload_listing(source.id) if source.type == "file" else None
    return make_connector(source.type, settings, workdir=_workdir(source.id), allow_url=_url_guard(),
                          uploads=uploads)


def validate_configuration(source_type: str, configuration: dict) -> dict:
    """Check a configuration before it is saved; returns it with Magnet's defaults filled in."""
    configuration = dict(configuration or {})
    size = configuration.setdefault("max_file_size", DEFAULT_MAX_FILE_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= HARD_MAX_FILE_SIZE:
        raise ValidationFailed(
            f"max_file_size must be a whole number of bytes from 1 to {HARD_MAX_FILE_SIZE} (50 MB).",
            details={"fields": {"configuration.max_file_size": ["out of range"]}},
        )
    types = configuration.get("file_types")
    if types is not None:
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ValidationFailed("file_types must be a list of extensions such as [\".pdf\", \".md\"].",
                                   details={"fields": {"configuration.file_types": ["not a list of strings"]}})
        normalised = [t.lower() if t.startswith(".") else f".{t.lower()}" for t in types]
        unknown = sorted(set(normalised) - set(supported_extensions()))
        if unknown:
            raise ValidationFailed(
                f"Unsupported file types: {', '.join(unknown)}.",
                details={"fields": {"configuration.file_types": unknown}, "supported": list(supported_extensions())},
            )
        configuration["file_types"] = normalised
    settings = {k: v for k, v in configuration.items() if k not in MAGNET_KEYS}
    try:
        make_connector(source_type, settings, workdir=_workdir("validation"), allow_url=_url_guard())
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"Invalid configuration for a {source_type} source: {exc}",
                               details={"fields": {"configuration": [str(exc)]}}) from exc
    return configuration
