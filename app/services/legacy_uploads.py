"""Uploads that Magnet before the shared upload store kept in a node's data dir, moved into the store.

Older versions wrote each upload to ``<data dir>/sources/<source id>/uploads/<name>/<name>`` on the web
node that received it. Every node imports its own leftovers when `magnet serve` or `magnet worker`
starts (and a file source's sync imports the syncing node's leftovers of that source first), so an
upgrade loses nothing, whichever node holds which files. A file is removed from the data dir only
after its bytes are committed to the store. When both the store and a data dir hold a file of one name,
the newer one wins, as a later upload replaces an earlier one.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from pathlib import Path

from flask import current_app

from app.extensions import db
from app.models import KnowledgeSource, SourceUpload
from app.services.documents import safe_filename
from app.services.uploads import store_upload
from knowledge.connectors import DirectoryConnector
from knowledge.types import IngestError

log = logging.getLogger(__name__)


def import_local_uploads(source_id: str | None = None, resync: bool = True) -> dict[str, int]:
    """Move this node's old on-disk uploads (of one source, or all) into the store; returns how many files
    each source got. ``resync`` queues a sync of every source that got one, so they are indexed."""
    from app.services.sync import request_resync

    root = current_app.extensions["magnet.config"].data_dir / "sources"
    folders = [root / source_id / "uploads"] if source_id else sorted(root.glob("*/uploads"))
    imported: dict[str, int] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        source = db.session.get(KnowledgeSource, folder.parent.name)
        if source is None or source.type != "file":
            log.warning("%s belongs to no file source in this database; left in place", folder)
            continue
        count = _import_folder(source.id, folder)
        db.session.commit()
        if count:
            imported[source.id] = count
            log.info("imported %d uploads of %s from %s into the shared upload store", count, source.id, folder)
    if resync:
        for sid in imported:
            request_resync(sid)
    return imported


def _import_folder(source_id: str, folder: Path) -> int:
    count = 0
    # The layout older versions wrote; partial uploads (hidden ".name.part" files) are not listed.
    for item in DirectoryConnector(folder, include=("*/*",), only_supported=False).run():
        key, name = item.external_id.split("/", 1)
        if key != name or safe_filename(name) != name:
            log.warning("%s/%s is not an upload Magnet wrote; left in place", folder, item.external_id)
            continue
        try:
            data = item.read()
        except IngestError as exc:
            log.warning("%s: %s; left in place", folder / item.external_id, exc.message)
            continue
        modified = datetime.fromisoformat(item.metadata["modified_at"].replace("Z", "+00:00"))
        current = db.session.get(SourceUpload, (source_id, name))
        if current is None or current.uploaded_at < modified:
            store_upload(source_id, name, data, uploaded_at=modified)  # committed before the file goes
            count += 1
        # missing_ok: `magnet serve` and `magnet worker` sharing this data dir may both be importing it.
        (folder / item.external_id).unlink(missing_ok=True)
        (folder / key / f".{name}.part").unlink(missing_ok=True)  # an upload that never finished
        _remove_if_empty(folder / key)
    _remove_if_empty(folder)
    return count


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty (or already gone): left as it is
        folder.rmdir()
