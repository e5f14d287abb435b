"""Uploads connector: the files users uploaded to a Magnet "file" source.

Magnet stores each upload as ``<folder>/<document_key>/<original filename>``; anything else in the folder
(stray top-level files, deeper nesting, hidden temporary files of an upload in progress) is not listed.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from knowledge.connectors.directory import DirectoryConnector
from knowledge.types import IngestError, SourceItem


class UploadsConnector:
    """Lists uploaded files; ``external_id`` is ``<document_key>/<filename>``, ``name`` the original filename."""

    def __init__(self, folder: str | os.PathLike) -> None:
        if not isinstance(folder, str | os.PathLike) or not str(folder).strip():
            raise ValueError(f"folder: expected the uploads folder path, got {folder!r}")
        self.folder = Path(folder)
        # Uploads were accepted by the app, so an unknown type is reported by the parser, not hidden here.
        self._lister = DirectoryConnector(self.folder, include=("*/*",), only_supported=False)

    def run(self) -> Iterator[SourceItem]:
        """Stream the uploaded files in sorted order, each with ``metadata["document_key"]``.

        A missing folder inside an existing parent means nothing has been uploaded yet; a missing parent
        too (an unmounted data volume, say) is ``source_unreachable``, so it is never mistaken for
        "every upload was deleted".
        """
        if not self.folder.exists():
            if self.folder.parent.is_dir():
                return
            raise IngestError("source_unreachable", f"The uploads folder {self.folder} does not exist",
                              path=str(self.folder))
        for item in self._lister.run():
            key = item.external_id.split("/", 1)[0]
            yield replace(item, metadata={**item.metadata, "document_key": key})
