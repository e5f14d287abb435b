"""Tables in a PDF's text layer, found from the page layout and written as Markdown.

A PDF has no table structure, only positioned text, and pypdf's plain extraction follows the content
stream: a bank statement comes out as all its descriptions, then all its amounts. pypdf's layout mode
instead places each piece of text at its column on a character grid. Where several consecutive lines
share blank columns (gutters) that split them into at least three columns, that block is a table: every
line a row, every gutter a column boundary. Justified prose also has wide gaps; they seldom line up over
several lines, and when they do by chance (measured on the court opinions in ../shared/samples/pdf) the
cells are pieces of sentences, not values: so a table also needs a column of figures (amounts, dates,
counts). Tables of words only stay text, which loses less than prose turned into a table would.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge.loaders.tables import markdown_table

_CELL_GAP = re.compile(r"\S(?:.*?\S)?(?=\s{2,}|\s*$)")  # a run of text; two or more spaces end a cell
MIN_COLUMNS = 3
MIN_DATA_ROWS = 3  # rows under the header with cells in at least two columns
# Tables hold short values; a block whose typical cell is a line of prose is a multi-column layout.
MAX_MEDIAN_CELL = 30
MIN_GUTTER = 2  # blank characters between two columns


@dataclass
class TableBlock:
    first_line: int
    last_line: int  # inclusive
    markdown: str


def _cells(line: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _CELL_GAP.finditer(line)]


def _columns(lines: list[str]) -> list[tuple[int, int]]:
    """Character ranges separated by gutters: positions blank in every line, at least MIN_GUTTER wide."""
    width = max(len(line) for line in lines)
    used = [False] * width
    for line in lines:
        for position, char in enumerate(line):
            if not char.isspace():
                used[position] = True
    columns: list[tuple[int, int]] = []
    start = None
    blank_run = 0
    for position, is_used in enumerate(used + [False] * MIN_GUTTER):
        if is_used:  # a gap narrower than a gutter (a space between words) stays inside the column
            if start is None:
                start = position
            blank_run = 0
        elif start is not None:
            blank_run += 1
            if blank_run == MIN_GUTTER:
                columns.append((start, position - MIN_GUTTER + 1))
                start = None
    return columns


def _row(line: str, columns: list[tuple[int, int]]) -> list[str]:
    return [" ".join(line[start:end].split()) for start, end in columns]


def _figures(rows: list[list[str]], column: int) -> bool:
    """Whether most filled cells of a column (three at least) hold a figure."""
    cells = [row[column] for row in rows[1:] if row[column]]
    with_digits = sum(1 for cell in cells if any(ch.isdigit() for ch in cell) and len(cell) <= 20)
    return with_digits >= MIN_DATA_ROWS and with_digits >= 0.6 * len(cells)


def _merge_continuations(rows: list[list[str]]) -> list[list[str]]:
    """A line with a single filled cell continues the row above (a wrapped description); so does a
    second header line without digits ("Money" over "out")."""
    merged: list[list[str]] = []
    for index, row in enumerate(rows):
        filled = [i for i, cell in enumerate(row) if cell]
        header_tail = (index == 1 and merged and not any(ch.isdigit() for ch in "".join(row))
                       and all(merged[0][i] for i in filled))
        if merged and (len(filled) == 1 and filled[0] != 0 or header_tail):
            for i in filled:
                merged[-1][i] = f"{merged[-1][i]} {row[i]}".strip()
        else:
            merged.append(row)
    return merged


def _table(lines: list[str]) -> str | None:
    """The Markdown table of a block of lines, or None when the lines are not laid out as one."""
    columns = _columns(lines)
    if len(columns) < MIN_COLUMNS:
        return None
    rows = _merge_continuations([_row(line, columns) for line in lines])
    if sum(1 for row in rows[1:] if sum(1 for cell in row if cell) >= 2) < MIN_DATA_ROWS:
        return None
    if not any(_figures(rows, column) for column in range(1, len(columns))):
        return None
    lengths = sorted(len(cell) for row in rows for cell in row if cell)
    if lengths[len(lengths) // 2] > MAX_MEDIAN_CELL:
        return None
    return markdown_table(rows) or None


def find_tables(layout_text: str) -> list[TableBlock]:
    """Tables in a page's layout-mode text: blocks of lines (at most one blank line apart) that each
    split into MIN_COLUMNS or more cells at runs of spaces, and whose columns line up."""
    lines = layout_text.splitlines()
    blocks: list[TableBlock] = []
    index = 0
    while index < len(lines):
        if len(_cells(lines[index])) < MIN_COLUMNS:
            index += 1
            continue
        end = index
        probe = index + 1
        while probe < len(lines):
            if not lines[probe].strip():
                if probe + 1 < len(lines) and lines[probe + 1].strip() and probe - end == 1:
                    probe += 1
                    continue
                break
            if len(_cells(lines[probe])) >= 2 or (lines[probe][:1].isspace() and lines[probe].strip()):
                end = probe
                probe += 1
                continue
            break
        table, end = _table_at(lines, index, end)
        if table:
            blocks.append(TableBlock(index, end, table))
            index = end + 1
        else:
            index += 1
    return blocks


def _table_at(lines: list[str], first: int, last: int) -> tuple[str | None, int]:
    """The table in lines[first:last+1]; failing that, in the block cut after its last line of
    MIN_COLUMNS cells (an indented line of prose after a table must not hide the table)."""
    ends = [last]
    last_full = max(i for i in range(first, last + 1) if len(_cells(lines[i])) >= MIN_COLUMNS)
    if last_full != last:
        ends.append(last_full)
    for end in ends:
        block = [line for line in lines[first:end + 1] if line.strip()]
        if len(block) > MIN_DATA_ROWS and (table := _table(block)):
            return table, end
    return None, last


def may_hold_table(plain_text: str) -> bool:
    """A cheap test on pypdf's plain text, so that only such pages pay for a second, layout-mode
    extraction: plain mode writes a table's rows, or its columns of figures, as lines with two figures
    or more."""
    figure_lines = 0
    for line in plain_text.splitlines():
        if sum(any(ch.isdigit() for ch in token) for token in line.split()) >= 2:
            figure_lines += 1
            if figure_lines >= MIN_DATA_ROWS:
                return True
    return False


def text_with_tables(layout_text: str) -> str | None:
    """The page's text with each table as Markdown and the rest as plain lines, or None without tables."""
    tables = find_tables(layout_text)
    if not tables:
        return None
    lines = layout_text.splitlines()
    out: list[str] = []
    cursor = 0
    for table in tables:
        out.extend(" ".join(line.split()) for line in lines[cursor:table.first_line])
        out.extend(["", table.markdown, ""])
        cursor = table.last_line + 1
    out.extend(" ".join(line.split()) for line in lines[cursor:])
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()
