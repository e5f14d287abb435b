"""What a knowledge source's `configuration` may hold, and the connector it becomes.

Magnet-level keys (file size limit, allowed file types) are handled here; everything else goes to the
connector, whose constructor validates it (bad settings become a 422 naming the setting).
"""
from __future__ import annotations

from pathlib import Path

from flask import current_app

from app.errors import ValidationFailed
from app.models import KnowledgeSource
from knowledge.connectors import PathRefused, make_connector
from knowledge.connectors.git import network_url, transport_of
from knowledge.loaders import supported_extensions

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
HARD_MAX_FILE_SIZE = 50 * 1024 * 1024
MAGNET_KEYS = {"max_file_size", "file_types", "ocr"}
OCR_MODES = ("auto", "off", "force")  # knowledge.ocr.OCR_MODES; see the README's "Knowledge sources"


def max_file_size(source: KnowledgeSource) -> int:
    return int((source.configuration or {}).get("max_file_size", DEFAULT_MAX_FILE_SIZE))


def ocr_mode(source: KnowledgeSource) -> str:
    """How scanned PDF pages and images are read: "auto" (pages without a real text layer), "off", "force"."""
    return (source.configuration or {}).get("ocr", "auto")


def allowed_file_types(source: KnowledgeSource) -> tuple[str, ...]:
    types = (source.configuration or {}).get("file_types")
    return tuple(types) if types else supported_extensions()


def _workdir(source_id: str):
    return current_app.extensions["magnet.config"].data_dir / "sources" / source_id


def _url_guard():
    """The outbound policy for web and git sources: private or loopback addresses are refused unless the
    allowlist names them, ssh only to hosts it names; a refusal raises, and its message becomes the
    document's error. Returns the approved addresses, which the git connector pins.

    The allowlist is read now, in the app context: the web connector calls the guard from its own crawl
    threads, where there is no app context.
    """
    from app.runtime.outbound import Allowlist, check_ssh_url, check_url

    allowlist = Allowlist.parse(current_app.extensions["magnet.config"].outbound_allowlist)

    def allow_url(url: str) -> list[str]:
        if url.lower().startswith("ssh://"):
            return check_ssh_url(url, allowlist)
        return check_url(url, allowlist)

    return allow_url


def _connector(source_type: str, settings: dict, source_id: str, uploads=None):
    config = current_app.extensions["magnet.config"]
    return make_connector(source_type, settings, workdir=_workdir(source_id), allow_url=_url_guard(),
                          roots=config.source_guard(), uploads=uploads)


def needs_admin(source_type: str, configuration: dict | None) -> bool:
    """Whether a source reads the server's own folders: a directory, or a git repository by local path.
    Only admins may create or change those (operators keep uploads, web and remote git sources)."""
    if source_type == "directory":
        return True
    if source_type != "git":
        return False
    target = (configuration or {}).get("url_or_path")
    if not isinstance(target, str):
        return False
    try:
        return transport_of(target.strip()) == "local"
    except ValueError:
        return False


def connector_for(source: KnowledgeSource):
    from app.services.uploads import upload_listing

    settings = {k: v for k, v in (source.configuration or {}).items() if k not in MAGNET_KEYS}
    if source.type == "directory":
        # List every file, so the sync can report unsupported ones as skipped, with the reason.
        settings.setdefault("only_supported", False)
    uploads = upload_listing(source.id) if source.type == "file" else None
    return _connector(source.type, settings, source.id, uploads=uploads)


def validate_configuration(source_type: str, configuration: dict) -> dict:
    """Check a configuration before it is saved; returns it with Magnet's defaults filled in."""
    configuration = dict(configuration or {})
    size = configuration.setdefault("max_file_size", DEFAULT_MAX_FILE_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= HARD_MAX_FILE_SIZE:
        raise ValidationFailed(
            f"max_file_size must be a whole number of bytes from 1 to {HARD_MAX_FILE_SIZE} (50 MB).",
            details={"fields": {"configuration.max_file_size": ["out of range"]}},
        )
    if configuration.get("ocr", "auto") not in OCR_MODES:
        raise ValidationFailed(f"ocr must be one of {', '.join(OCR_MODES)}.",
                               details={"fields": {"configuration.ocr": [f"not one of {list(OCR_MODES)}"]}})
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
        _connector(source_type, settings, "validation")
    except PathRefused as exc:
        raise ValidationFailed(f"This folder may not be read by a source: {exc}", code="path_not_allowed",
                               details={"fields": {_refused_field(source_type): [str(exc)]},
                                        "rule": "source_roots"}) from exc
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"Invalid configuration for a {source_type} source: {exc}",
                               details={"fields": {"configuration": [str(exc)]}}) from exc
    _refuse_ssh_to_unlisted_host(source_type, settings)
    return configuration


def _refuse_ssh_to_unlisted_host(source_type: str, settings: dict) -> None:
    """ssh needs an allowlisted host: say so when the source is configured, not at its first sync (http
    URLs are judged at each sync, when their host is resolved)."""
    from app.runtime.outbound import OutboundBlocked, check_ssh_url

    target = settings.get("url_or_path")
    if source_type != "git" or transport_of(str(target).strip()) != "ssh":
        return
    try:
        check_ssh_url(network_url(str(target).strip()), current_app.extensions["magnet.config"].outbound_allowlist)
    except OutboundBlocked as exc:
        raise ValidationFailed(exc.message, code="outbound_blocked", details={
            "fields": {"configuration.url_or_path": [exc.message]}, "rule": "outbound_allowlist"}) from exc


def _refused_field(source_type: str) -> str:
    return "configuration.url_or_path" if source_type == "git" else "configuration.path"


def hide_server_paths(text: str) -> str:
    """``text`` with the server's own absolute paths (data dir, source roots) made relative: sync errors
    are read by every viewer, and where Magnet keeps its files is none of their business."""
    import sys

    from app.config import PROJECT_ROOT

    guard = current_app.extensions["magnet.config"].source_guard()
    names = {folder: guard.display(folder) for folder in guard.roots}
    names.update({folder: "<data dir>" for folder in guard.protected})
    names.update({Path(sys.prefix): "<python>", PROJECT_ROOT: "<install>"})  # e.g. a model's path in an error
    # Longest first, so a folder inside another is replaced by its own, more precise, name.
    for folder in sorted(names, key=lambda p: len(str(p)), reverse=True):
        text = text.replace(str(folder), names[folder])
    return text
