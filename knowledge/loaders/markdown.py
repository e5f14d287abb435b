"""Markdown loader: one section per heading, each knowing the path of headings above it."""
from __future__ import annotations

import re

from knowledge.loaders.text import decode_text
from knowledge.types import ParsedDocument, Section

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# A line that cannot be a setext heading's text even when followed by "---" (a list item, a quote,
# a table row, an HTML block): there the dashes are a thematic break or table syntax.
_NOT_SETEXT_TEXT = re.compile(r"^\s*([-*+>|<]|\d+[.)]\s)")


def _clean_heading(raw: str) -> str:
    """Heading text without inline markup, so paths read as plain words."""
    text = _LINK.sub(r"\1", raw)
    return re.sub(r"[`*]|__", "", text).strip()


class _Builder:
    """Collects lines into sections while tracking the heading stack."""

    def __init__(self, base_path: tuple[str, ...]) -> None:
        self.base_path = base_path
        self.stack: list[tuple[int, str]] = []
        self.lines: list[str] = []
        self.heading_lines = 0  # 1 when the current section starts with its heading line
        self.sections: list[Section] = []
        self.title: str | None = None

    def flush(self) -> None:
        body = "\n".join(self.lines[self.heading_lines:]).strip()
        if body:  # a heading directly followed by a sub-heading has no text of its own
            text = "\n".join(self.lines).strip()
            path = self.base_path + tuple(title for _, title in self.stack)
            self.sections.append(Section(text=text, heading_path=path))
        self.lines = []
        self.heading_lines = 0

    def heading(self, level: int, title: str, source_lines: list[str]) -> None:
        self.flush()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title))
        if level == 1 and self.title is None:
            self.title = title
        self.lines = list(source_lines)
        self.heading_lines = len(source_lines)


def split_markdown(text: str, base_path: tuple[str, ...] = ()) -> tuple[list[Section], str | None]:
    """Split Markdown text at ATX (``#``) and single-line setext headings.

    Returns the sections (heading line included in each section's text, heading-only sections
    dropped) and the first level-1 heading as title. Lines inside fenced code blocks and YAML front
    matter are never headings. ``base_path`` is prepended to every heading path.
    """
    b = _Builder(base_path)
    lines = text.split("\n")
    fence: str | None = None
    front_matter_end = _front_matter_end(lines)
    for i, line in enumerate(lines):
        if i <= front_matter_end:
            b.lines.append(line)
            continue
        if fence is not None:
            b.lines.append(line)
            # A fence closes with the same character, at least as long, and nothing after it.
            if line.strip().startswith(fence) and not line.strip().lstrip(fence[0]):
                fence = None
            continue
        if m := _FENCE.match(line):
            fence = m.group(1)
            b.lines.append(line)
            continue
        if m := _ATX.match(line):
            b.heading(len(m.group(1)), _clean_heading(m.group(2) or ""), [line])
            continue
        if _SETEXT.match(line) and _is_setext_text(b.lines, b.heading_lines):
            prev = b.lines.pop()
            level = 1 if line.strip().startswith("=") else 2
            b.heading(level, _clean_heading(prev), [prev, line])
            continue
        b.lines.append(line)
    b.flush()
    if not b.sections and text.strip():
        b.sections.append(Section(text=text.strip(), heading_path=base_path))
    return b.sections, b.title


def _front_matter_end(lines: list[str]) -> int:
    """Index of the line closing a leading YAML front matter block, or -1 when there is none."""
    if not lines or lines[0].strip() != "---":
        return -1
    return next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), -1)


def _is_setext_text(lines: list[str], heading_lines: int) -> bool:
    """Whether the last collected line is a one-line paragraph that a setext underline turns into a heading."""
    if len(lines) <= heading_lines or not lines[-1].strip() or _NOT_SETEXT_TEXT.match(lines[-1]):
        return False
    return len(lines) - 1 == heading_lines or not lines[-2].strip()


class MarkdownLoader:
    """Markdown files, sectioned at headings."""

    extensions = (".md", ".markdown", ".mdown", ".mkd")

    def run(self, data: bytes, name: str) -> ParsedDocument:
        """Decode ``data`` and split it into heading sections; the title is the first ``#`` heading."""
        sections, title = split_markdown(decode_text(data, name))
        return ParsedDocument(sections=sections, title=title, mime_type="text/markdown")
