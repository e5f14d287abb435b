"""Sections from a stream of headings, paragraphs and tables (Word and OpenDocument text files).

Each heading starts a section whose `heading_path` is the chain of headings above it ("Billing >
Refunds"); a heading directly followed by another heading has no text of its own and makes no section.
"""
from __future__ import annotations

from knowledge.types import Section


class Outline:
    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.first_title: str | None = None  # the first level-1 heading: a title when metadata has none
        self._stack: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._has_body = False

    def heading(self, level: int, text: str) -> None:
        self._flush()
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        if level == 1 and self.first_title is None:
            self.first_title = text
        self._lines, self._has_body = [text], False

    def paragraph(self, text: str) -> None:
        if text:
            self._lines.append(text)
            self._has_body = True

    def table(self, markdown: str) -> None:
        if markdown:  # blank lines around it: a Markdown table is a block of its own
            self._lines.extend(["", markdown, ""])
            self._has_body = True

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections

    def _flush(self) -> None:
        if self._has_body:
            self.sections.append(Section(text="\n".join(self._lines).strip(),
                                         heading_path=tuple(t for _, t in self._stack)))
