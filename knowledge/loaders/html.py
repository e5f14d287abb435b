"""HTML loader: visible body text, sectioned at ``<h1>``-``<h6>`` like Markdown; data tables as Markdown."""
from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from knowledge.loaders.tables import markdown_table
from knowledge.loaders.text import decode_text
from knowledge.types import IngestError, ParsedDocument, Section

# Page chrome and non-content: menus and sidebars repeat on every page and would drown the content.
_DROP = ("script", "style", "nav", "aside", "noscript", "template", "svg", "iframe", "head")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_PARAGRAPH_BREAK = {
    "p", "div", "section", "article", "main", "blockquote", "pre", "table", "ul", "ol", "dl",
    "figure", "form", "fieldset", "details", "hr", "address",
}
_LINE_BREAK = {"br", "li", "tr", "dt", "dd", "caption", "figcaption", "summary"}
_CELL = {"td", "th"}
# Private-use characters mark structural breaks while text nodes' own whitespace is collapsed.
_PARA, _LINE, _CELL_SEP = "\ue000", "\ue001", "\ue002"
_PRE_WHITESPACE = str.maketrans({"\n": _LINE, " ": "\ue004", "\t": "\ue005"})


def _inline(tag: Tag) -> str:
    """A tag's text on one line with whitespace collapsed (for titles and headings)."""
    return " ".join(tag.get_text(" ").split())


def _strip_chrome(soup: BeautifulSoup) -> None:
    for tag in soup.find_all(_DROP):
        tag.decompose()
    # A page-level <header>/<footer> is site chrome; inside <article>/<main> it holds the article's
    # own title and byline, which are content.
    for tag in soup.find_all(("header", "footer")):
        if tag.find_parent(("article", "main")) is None:
            tag.decompose()


# A table holding these is page layout (old sites lay out whole pages with tables), not data: its cells
# are read as text, not squeezed into a Markdown grid.
_LAYOUT_INSIDE = ("table", "p", "div", "ul", "ol", "dl", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6")


def _tables_to_markdown(body: Tag) -> None:
    """Replace every data table by its Markdown form, kept as lines of its own in the section text."""
    for table in body.find_all("table"):
        if table.parent is None or table.find(_LAYOUT_INSIDE) is not None:
            continue
        rows = [[_inline(cell) for cell in tr.find_all(("th", "td"))] for tr in table.find_all("tr")]
        markdown = markdown_table(rows)
        if markdown:
            table.replace_with(NavigableString(_PARA + markdown.replace("\n", _LINE) + _PARA))


def _text_of(node: Tag) -> str:
    """Visible text of ``node`` with block structure as newlines and HTML whitespace rules applied."""
    parts: list[str] = []
    for item in node.descendants:
        if isinstance(item, Tag):
            if item.name in _PARAGRAPH_BREAK:
                parts.append(_PARA)
            elif item.name in _LINE_BREAK:
                parts.append(_LINE)
            elif item.name in _CELL:
                parts.append(_CELL_SEP)
        elif isinstance(item, NavigableString) and not isinstance(item, PreformattedString):
            if item.find_parent("pre") is not None:
                # Pre-formatted whitespace (code indentation) survives the collapsing below.
                parts.append(str(item).translate(_PRE_WHITESPACE))
            else:
                parts.append(re.sub(r"\s+", " ", str(item)))
    return _normalise("".join(parts))


def _normalise(text: str) -> str:
    lines: list[str] = []
    for block in text.split(_PARA):
        for line in block.split(_LINE):
            cells = [c.strip() for c in line.split(_CELL_SEP)]
            line = " | ".join(c for c in cells if c)
            lines.append(re.sub(r" {2,}", " ", line).strip())
        lines.append("")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text.replace("\ue004", " ").replace("\ue005", "\t")


def _sections(body: Tag) -> list[Section]:
    """Cut the body at headings; each section is its heading plus the content up to the next one."""
    headings = body.find_all(_HEADINGS)
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    # Replace every heading by a marker, then split the body's text at the markers.
    markers: list[tuple[int, str]] = []
    for h in headings:
        title = _inline(h)
        if h.parent is None or not title:  # nested in an already replaced heading, or an empty one
            continue
        h.replace_with(NavigableString(f"{_PARA}\ue003{len(markers)}\ue003{_PARA}"))
        markers.append((int(h.name[1]), title))
    pieces = re.split("\ue003(\\d+)\ue003", _text_of(body))
    path: tuple[str, ...] = ()
    heading_text = ""
    for n, piece in enumerate(pieces):
        if n % 2 == 1:  # a heading marker
            level, heading_text = markers[int(piece)]
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading_text))
            path = tuple(t for _, t in stack)
            continue
        body_text = piece.strip()
        if body_text:
            text = f"{heading_text}\n\n{body_text}" if heading_text else body_text
            sections.append(Section(text=text, heading_path=path))
    return sections


class HtmlLoader:
    """HTML pages: main text without navigation chrome, title from ``<title>``."""

    extensions = (".html", ".htm", ".xhtml")

    def run(self, data: bytes, name: str) -> ParsedDocument:
        """Parse ``data`` with the stdlib html.parser and return heading sections of its visible text."""
        # Our own structural markers are private-use characters; a page's own ones are dropped first.
        html = re.sub("[\ue000-\ue005]", "", decode_text(data, name))
        soup = BeautifulSoup(html, "html.parser")
        title_tag = soup.find("title")
        title = _inline(title_tag) if title_tag else None
        if not title and (h1 := soup.find("h1")):
            title = _inline(h1)
        _strip_chrome(soup)
        body = soup.body or soup
        _tables_to_markdown(body)
        sections = _sections(body)
        if not sections:
            raise IngestError("no_text", f"{name} has no visible text", name=name)
        return ParsedDocument(sections=sections, title=title or None, mime_type="text/html")
