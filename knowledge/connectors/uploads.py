"""Uploads connector: the files users uploaded to a Magnet "file" source.

The bytes live wherever the application keeps them (Magnet: its database, reachable from every node), so
this connector reads nothing itself: it is given ``listing``, a callable returning the source's uploads
as :class:`StoredUpload` entries, each with a callable that reads its bytes. The engine stays free of the
application and of any database.
"""
from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from knowledge.types import IngestError, SourceItem


@dataclass(frozen=True)
class StoredUpload:
    """One uploaded file as the upload store knows it. ``read()`` returns its bytes, or raises IngestError
    (``fetch_failed``) when they cannot be read."""

    name: str
    size: int
    sha256: str
    read: Callable[[], bytes]
    uploaded_at: datetime | None = None


def _no_listing() -> Iterable[StoredUpload]:
    raise IngestError("source_unreachable", "No upload store was given to read this file source from")


class UploadsConnector:
    """Lists uploaded files; ``external_id`` is ``<name>/<name>`` (the layout every Magnet version used, so
    documents keep their ids), ``name`` the stored filename, ``metadata["document_key"]`` the name.

    ``listing`` is authoritative: an empty list means nothing is uploaded (a new source syncs to nothing).
    A store that cannot be read must raise IngestError ``source_unreachable``, never return an empty list.
    """

    def __init__(self, listing: Callable[[], Iterable[StoredUpload]] | None = None) -> None:
        if listing is not None and not callable(listing):
            raise ValueError(f"listing: expected a callable returning the uploads, got {listing!r}")
        self.listing = listing or _no_listing

    def run(self) -> Iterator[SourceItem]:
        """Stream the uploaded files in name order."""
        for upload in sorted(self.listing(), key=lambda u: u.name):
            metadata = {"document_key": upload.name, "sha256": upload.sha256}
            if upload.uploaded_at is not None:
                metadata["uploaded_at"] = upload.uploaded_at.isoformat().replace("+00:00", "Z")
            yield SourceItem(external_id=f"{upload.name}/{upload.name}", name=upload.name, read=upload.read,
                             size=upload.size, mime_type=mimetypes.guess_type(upload.name)[0], metadata=metadata)
