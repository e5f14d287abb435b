"""Loader registry: picks the loader for a file by its name, checking the bytes where a label can lie.

Connectors and uploads give names and MIME types that are often wrong (a PDF saved as ``.txt``, an
HTML error page saved as ``.pdf``); the bytes of the binary formats are checked before trusting them.
"""
from __future__ import annotations

import os

from knowledge.loaders.docx import DocxLoader
from knowledge.loaders.html import HtmlLoader
from knowledge.loaders.image import ImageLoader
from knowledge.loaders.markdown import MarkdownLoader
from knowledge.loaders.office import PPTX_MIME, XLSX_MIME, PptxLoader, XlsxLoader
from knowledge.loaders.opendocument import EPUB_MIME, ODT_MIME, EpubLoader, OdtLoader
from knowledge.loaders.pdf import PdfLoader
from knowledge.loaders.tabular import CsvLoader, JsonLoader
from knowledge.loaders.text import TextLoader
from knowledge.types import IngestError, Loader, ParsedDocument

__all__ = [
    "CsvLoader", "DocxLoader", "EpubLoader", "HtmlLoader", "ImageLoader", "JsonLoader", "LOADERS", "MarkdownLoader", "OdtLoader", "PdfLoader",
    "PptxLoader", "TextLoader", "XlsxLoader", "OCR_LOADERS", "get_loader", "get_loader_or_none", "load_document", "supported_extensions",
]

_TEXT = TextLoader()
_PDF = PdfLoader()
LOADERS: tuple[Loader, ...] = (
    _TEXT, MarkdownLoader(), HtmlLoader(), _PDF, DocxLoader(), CsvLoader(), JsonLoader(), ImageLoader(),
    PptxLoader(), XlsxLoader(), OdtLoader(), EpubLoader(),
)
# Loaders that can read text out of pixels take the source's OCR mode ("auto", "off", "force").
OCR_LOADERS = (PdfLoader, ImageLoader)
_BY_EXTENSION: dict[str, Loader] = {ext: loader for loader in LOADERS for ext in loader.extensions}
_BY_MIME = {
    "text/plain": ".txt", "text/markdown": ".md", "text/x-markdown": ".md", "text/html": ".html",
    "application/xhtml+xml": ".html", "application/pdf": ".pdf", "text/csv": ".csv",
    "text/tab-separated-values": ".tsv", "application/json": ".json", "application/x-ndjson": ".jsonl",
    "application/jsonl": ".jsonl",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    PPTX_MIME: ".pptx", XLSX_MIME: ".xlsx", ODT_MIME: ".odt", EPUB_MIME: ".epub",
    "image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tiff", "image/webp": ".webp",
    "image/bmp": ".bmp", "image/gif": ".gif",
}
# Formats with a signature: bytes that lack it are not that format, whatever the name says.
# A PDF may have a little junk before its header (readers accept it in the first 1024 bytes).
_SIGNATURES = {
    PdfLoader: (lambda data: b"%PDF-" in data[:1024], "PDF"),
    DocxLoader: (lambda data: data.startswith(b"PK\x03\x04"), "Word (.docx)"),
    ImageLoader: (lambda data: _is_image(data), "image"),
    PptxLoader: (lambda data: data.startswith(b"PK\x03\x04"), "PowerPoint (.pptx)"),
    XlsxLoader: (lambda data: data.startswith(b"PK\x03\x04"), "Excel (.xlsx)"),
    OdtLoader: (lambda data: data.startswith(b"PK\x03\x04"), "OpenDocument text (.odt)"),
    EpubLoader: (lambda data: data.startswith(b"PK\x03\x04"), "EPUB"),
}
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM", b"GIF87a", b"GIF89a")


def _is_image(data: bytes) -> bool:
    return data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def supported_extensions() -> tuple[str, ...]:
    """Every file extension (lower case, with the dot) that has a loader."""
    return tuple(sorted(_BY_EXTENSION))


def _extension(name: str) -> str:
    return os.path.splitext(name.replace("\\", "/").rsplit("/", 1)[-1])[1].lower()


def get_loader(name: str, mime_type: str | None = None) -> Loader:
    """The loader for a file name (by extension, then by MIME type); IngestError ``unsupported_type`` if none.

    A name without an extension (README, LICENSE) is treated as plain text.
    """
    ext = _extension(name)
    loader = _BY_EXTENSION.get(ext)
    if loader is None and mime_type:
        loader = _BY_EXTENSION.get(_BY_MIME.get(mime_type.split(";")[0].strip().lower(), ""))
    if loader is None and ext == "":
        loader = _TEXT
    if loader is None:
        raise IngestError("unsupported_type", f"{ext} files are not supported", extension=ext, name=name)
    return loader


def get_loader_or_none(name: str, mime_type: str | None = None) -> Loader | None:
    """Like :func:`get_loader`, None instead of ``unsupported_type``."""
    try:
        return get_loader(name, mime_type)
    except IngestError:
        return None


def _is_pdf(data: bytes) -> bool:
    # Real PDFs start with the header; anywhere later, "%PDF-" is just text about PDFs.
    return data.lstrip()[:5] == b"%PDF-"


def load_document(data: bytes, name: str, mime_type: str | None = None, ocr: str = "auto",
                  on_page=None) -> ParsedDocument:
    """Parse one file's bytes into a ParsedDocument, choosing the loader by content and name.

    A file that is really a PDF is read as a PDF whatever its name. A ``.pdf`` or ``.docx`` whose
    bytes lack that format's signature is read as text if it is text, else fails ``corrupt_file``.
    Raises IngestError (``unsupported_type``, ``corrupt_file``, ``encrypted``, ``no_text``, ``empty``,
    ``binary_content``) for files that cannot be used. ``ocr`` ("auto", "off", "force") is the source's
    OCR mode for scanned PDF pages and images (knowledge.ocr); ``on_page()`` is called after each page
    they OCR (it may raise to stop).
    """
    if _is_pdf(data):
        return _PDF.run(data, name, ocr_mode=ocr, on_page=on_page)
    loader = get_loader(name, mime_type)
    signature = _SIGNATURES.get(type(loader))
    if signature is not None and not signature[0](data):
        try:
            return _TEXT.run(data, name)
        except IngestError as exc:
            if exc.code != "binary_content":
                raise
            raise IngestError("corrupt_file", f"{name} is not a valid {signature[1]} file",
                              name=name, extension=_extension(name)) from exc
    if isinstance(loader, OCR_LOADERS):
        return loader.run(data, name, ocr_mode=ocr, on_page=on_page)
    return loader.run(data, name)
