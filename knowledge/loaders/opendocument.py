"""OpenDocument text (.odt) and EPUB (.epub): both are zip files of XML, read with the standard library.

ODT: `content.xml` holds headings (`text:h` with an outline level), paragraphs, lists and tables, in
order; they become heading sections like a Word file's, tables as Markdown. EPUB: the package file
(found through `META-INF/container.xml`) lists the chapters in reading order (the spine); each chapter
is XHTML, read by the HTML loader, and its sections carry `chapter` (1-based, counting chapters with text).
"""
from __future__ import annotations

import io
import posixpath
import xml.etree.ElementTree as ET
import zipfile

from knowledge.loaders.html import HtmlLoader
from knowledge.loaders.outline import Outline
from knowledge.loaders.tables import markdown_table
from knowledge.types import IngestError, ParsedDocument, Section

ODT_MIME = "application/vnd.oasis.opendocument.text"
EPUB_MIME = "application/epub+zip"
# The sum of the members we read, uncompressed: a few-kilobyte zip can claim gigabytes (a zip bomb).
MAX_UNCOMPRESSED = 200 * 1024 * 1024
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_DC = "http://purl.org/dc/elements/1.1/"
_OPF = "http://www.idpf.org/2007/opf"
_CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"


def _corrupt(name: str, kind: str, exc: Exception) -> IngestError:
    return IngestError("corrupt_file", f"{name} is not a readable {kind} file: {exc}", name=name)


class _Zip:
    """Members of a zip read with a budget on their uncompressed size."""

    def __init__(self, data: bytes, name: str, kind: str) -> None:
        self.name, self.kind, self.budget = name, kind, MAX_UNCOMPRESSED
        try:
            self.archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise _corrupt(name, kind, exc) from exc

    def read(self, member: str) -> bytes:
        try:
            info = self.archive.getinfo(member)
            if info.file_size > self.budget:
                raise IngestError("too_large", f"{self.name} unpacks to more than {MAX_UNCOMPRESSED // 2**20} MB",
                                  name=self.name)
            data = self.archive.read(info)
        except KeyError as exc:
            raise _corrupt(self.name, self.kind, ValueError(f"{member} is missing")) from exc
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise _corrupt(self.name, self.kind, exc) from exc
        self.budget -= len(data)
        return data

    def xml(self, member: str) -> ET.Element:
        try:  # expat refuses entity-expansion bombs (billion laughs) itself
            return ET.fromstring(self.read(member))
        except ET.ParseError as exc:
            raise _corrupt(self.name, self.kind, exc) from exc


def _odf_text(element: ET.Element) -> str:
    """A paragraph's text: spans and links inline, `text:s` spaces, tabs and line breaks kept."""
    parts = [element.text or ""]
    for child in element:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "s":
            parts.append(" " * int(child.get(f"{{{_TEXT}}}c", "1") or 1))
        elif tag == "tab":
            parts.append("\t")
        elif tag == "line-break":
            parts.append("\n")
        elif tag not in ("note", "annotation", "bookmark", "soft-page-break"):
            parts.append(_odf_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _odf_table(table: ET.Element) -> str:
    rows = []
    for row in table.iter(f"{{{_TABLE}}}table-row"):
        cells = []
        for cell in row:
            if cell.tag not in (f"{{{_TABLE}}}table-cell", f"{{{_TABLE}}}covered-table-cell"):
                continue
            text = " ".join(_odf_text(p).strip() for p in cell.iter(f"{{{_TEXT}}}p"))
            repeat = min(int(cell.get(f"{{{_TABLE}}}number-columns-repeated", "1") or 1), 64)
            cells.extend([text] * repeat)
        rows.append(cells)
    return markdown_table(rows)


def _walk_odf(element: ET.Element, outline: Outline) -> None:
    for child in element:
        tag = child.tag
        if tag == f"{{{_TEXT}}}h":
            level = int(child.get(f"{{{_TEXT}}}outline-level", "1") or 1)
            text = " ".join(_odf_text(child).split())
            if text:
                outline.heading(level, text)
        elif tag == f"{{{_TEXT}}}p":
            outline.paragraph(_odf_text(child).strip())
        elif tag == f"{{{_TABLE}}}table":
            outline.table(_odf_table(child))
        else:  # lists, sections, frames: their paragraphs, in order
            _walk_odf(child, outline)


class OdtLoader:
    """OpenDocument text (LibreOffice Writer): heading sections, tables as Markdown."""

    extensions = (".odt",)

    def run(self, data: bytes, name: str) -> ParsedDocument:
        package = _Zip(data, name, "OpenDocument text (.odt)")
        body = package.xml("content.xml").find(f"{{{_OFFICE}}}body/{{{_OFFICE}}}text")
        if body is None:
            raise _corrupt(name, package.kind, ValueError("content.xml has no text body"))
        outline = Outline()
        _walk_odf(body, outline)
        sections = outline.finish()
        if not sections:
            raise IngestError("empty", f"{name} contains no text", name=name)
        title = None
        if "meta.xml" in package.archive.namelist():
            element = package.xml("meta.xml").find(f".//{{{_DC}}}title")
            title = (element.text or "").strip() if element is not None else None
        return ParsedDocument(sections=sections, title=title or outline.first_title, mime_type=ODT_MIME)


class EpubLoader:
    """EPUB books: each chapter of the spine, in reading order, through the HTML loader."""

    extensions = (".epub",)

    def run(self, data: bytes, name: str) -> ParsedDocument:
        book = _Zip(data, name, "EPUB")
        rootfile = book.xml("META-INF/container.xml").find(f".//{{{_CONTAINER}}}rootfile")
        if rootfile is None or not rootfile.get("full-path"):
            raise _corrupt(name, book.kind, ValueError("container.xml names no package file"))
        opf_path = rootfile.get("full-path")
        package = book.xml(opf_path)
        base = posixpath.dirname(opf_path)
        manifest = {item.get("id"): item.get("href") for item in package.iter(f"{{{_OPF}}}item")}
        sections: list[Section] = []
        chapters = [manifest.get(ref.get("idref")) for ref in package.iter(f"{{{_OPF}}}itemref")]
        number = 0
        for href in filter(None, chapters):
            member = posixpath.normpath(posixpath.join(base, href.split("#")[0]))
            try:
                chapter = HtmlLoader().run(book.read(member), member)
            except IngestError as exc:
                if exc.code != "no_text":  # a cover page or an empty chapter is not an error, nor a chapter
                    raise
                continue
            number += 1
            for section in chapter.sections:
                section.metadata["chapter"] = number
                sections.append(section)
        if not sections:
            raise IngestError("empty", f"{name} contains no text", name=name)
        title = package.find(f".//{{{_DC}}}title")
        return ParsedDocument(sections=sections, title=(title.text or "").strip() if title is not None else None,
                              mime_type=EPUB_MIME)
