"""Connectors: where a knowledge source's documents come from (a folder, uploads, a website, a git repo).

Each connector takes its settings in ``__init__`` (bad settings raise ValueError naming the setting) and
streams SourceItems from ``run()``: bytes are read lazily through ``item.read()``, a failure of one
document is an item whose ``read()`` raises IngestError, and a failure of the whole source is
IngestError ``source_unreachable`` raised by ``run()``. ``make_connector`` builds one from a source's
stored type and configuration.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from knowledge.connectors.directory import DirectoryConnector
from knowledge.connectors.git import GitConnector
from knowledge.connectors.roots import PathRefused, SourceRoots
from knowledge.connectors.uploads import StoredUpload, UploadsConnector
from knowledge.connectors.web import WebConnector
from knowledge.types import SourceItem

__all__ = ["CONNECTOR_TYPES", "Connector", "DirectoryConnector", "GitConnector", "PathRefused", "SourceRoots",
           "StoredUpload", "UploadsConnector", "WebConnector", "make_connector"]

CONNECTOR_TYPES = ("directory", "file", "web", "git")


class Connector(Protocol):
    """What every connector offers: a streaming listing of the source's documents."""

    def run(self) -> Iterator[SourceItem]: ...


def make_connector(type: str, configuration: dict[str, Any] | None, *, workdir: Path,
                   allow_url: Callable[[str], Any] | None = None, roots: SourceRoots | None = None,
                   uploads: Callable[[], Iterable[StoredUpload]] | None = None) -> Connector:
    """Build the connector for a source of ``type`` from its stored ``configuration``.

    ``workdir`` is the source's own working folder: a ``git`` source keeps its checkout in ``workdir/"git"``
    (a cache: any node can clone again). A ``file`` source lists ``uploads``, the application's listing of
    its uploaded files (see UploadsConnector); without one, its run fails. ``allow_url`` (the app's outbound
    policy: refuse by returning False or raising) guards every URL a ``web`` or http(s) ``git`` source
    fetches (and every ssh one), and ``roots`` (the app's source roots) every local folder a ``directory``
    or local-path ``git`` source reads. Raises ValueError for an unknown type, unknown or missing
    configuration keys, or bad values (PathRefused, a ValueError, for a folder the roots refuse).
    """
    configuration = {} if configuration is None else configuration
    if not isinstance(configuration, dict):
        raise ValueError(f"configuration: expected an object, got {configuration.__class__.__name__}")
    workdir = Path(workdir)
    # Settings the app supplies itself; a user's configuration may not override them.
    supplied: dict[str, Any]
    if type == "directory":
        cls, supplied = DirectoryConnector, {"roots": roots}
    elif type == "file":
        cls, supplied = UploadsConnector, {"listing": uploads}
    elif type == "web":
        cls, supplied = WebConnector, {"allow_url": allow_url}
    elif type == "git":
        cls, supplied = GitConnector, {"checkout_dir": workdir / "git", "allow_url": allow_url, "roots": roots}
    else:
        raise ValueError(f"type: unknown connector type {type!r}; expected one of {', '.join(CONNECTOR_TYPES)}")
    params = inspect.signature(cls).parameters
    allowed = [name for name in params if name not in supplied]
    unknown = sorted(set(configuration) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown configuration key(s) for a {type} source: {', '.join(map(str, unknown))}"
                         f" (allowed: {', '.join(allowed) or 'none'})")
    missing = [name for name in allowed if params[name].default is inspect.Parameter.empty
               and name not in configuration]
    if missing:
        raise ValueError(f"Missing configuration key(s) for a {type} source: {', '.join(missing)}")
    return cls(**configuration, **supplied)
