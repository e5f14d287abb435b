"""Loaders and the loader registry, on real sample PDFs and fixtures generated here."""
from __future__ import annotations

import codecs
import io
import json
import random
import zipfile

import docx
import pytest

from knowledge.loaders import load_document, supported_extensions
from knowledge.loaders.text import TextLoader
from knowledge.types import IngestError


def _error(data: bytes, name: str, **kwargs) -> IngestError:
    with pytest.raises(IngestError) as info:
        load_document(data, name, **kwargs)
    return info.value


# --- plain text -----------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    "Grüße aus Köln — ça va?\nZeile zwei".encode(),
    codecs.BOM_UTF8 + "Grüße aus Köln — ça va?\nZeile zwei".encode(),
    "Grüße aus Köln — ça va?\r\nZeile zwei".encode("utf-16"),  # native order, with BOM
    codecs.BOM_UTF16_BE + "Grüße aus Köln — ça va?\nZeile zwei".encode("utf-16-be"),
])
def test_text_unicode_encodings(data):
    doc = load_document(data, "note.txt")
    assert doc.text == "Grüße aus Köln — ça va?\nZeile zwei"
    assert doc.mime_type == "text/plain"


@pytest.mark.parametrize("text, encoding", [
    ("Straße Grüße", "latin-1"),
    ("Les élèves étudient à l'école. Où est la bibliothèque?", "latin-1"),
    ("Café crème brûlée, naïve façade — déjà vu “quoted”.", "cp1252"),
    ("Привет, как дела? Это тестовый текст на русском языке.", "cp1251"),
])
def test_text_legacy_encodings(text, encoding):
    assert load_document(text.encode(encoding), "legacy.txt").text == text


def test_text_with_ansi_colours_is_still_text():
    log = "".join(f"\x1b[32mINFO\x1b[0m request {i} served in {i * 3} ms\n" for i in range(50))
    assert "request 49 served" in load_document(log.encode(), "server.log").text


@pytest.mark.parametrize("data", [
    random.Random(7).randbytes(4096),  # random bytes: NULs among them
    b"\x89PNG\r\n\x1a\n" + bytes(range(1, 200)) * 5,
    bytes([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 17, 18, 19, 20, 65]) * 64,  # control codes, no NUL
])
def test_binary_named_txt_is_rejected(data):
    assert _error(data, "notes.txt").code == "binary_content"


@pytest.mark.parametrize("data", [b"", b"  \n\t\r\n ", codecs.BOM_UTF8])
def test_empty_text(data):
    err = _error(data, "empty.txt")
    assert err.code == "empty"


# --- markdown ---------------------------------------------------------------------------------------

MARKDOWN = """Preamble line.

# User Guide

Welcome text.

## Install

```bash
# this is a shell comment, not a heading
pip install magnet
```

### On Linux

Use apt.

Configuration
-------------

Set variables.

# Appendix
## Empty
### Deep
Deep text.
"""


def test_markdown_sections_and_heading_paths():
    doc = load_document(MARKDOWN.encode(), "guide.md")
    assert doc.title == "User Guide"
    paths = [s.heading_path for s in doc.sections]
    assert paths == [
        (),
        ("User Guide",),
        ("User Guide", "Install"),
        ("User Guide", "Install", "On Linux"),
        ("User Guide", "Configuration"),
        ("Appendix", "Empty", "Deep"),
    ]
    install = doc.sections[2].text
    assert "# this is a shell comment" in install and install.startswith("## Install")
    assert doc.sections[4].text.endswith("Set variables.")


def test_markdown_extension_alias_and_no_headings():
    doc = load_document(b"just text\n\nmore text", "notes.markdown")
    assert doc.title is None
    assert [(s.heading_path, s.text) for s in doc.sections] == [((), "just text\n\nmore text")]


# --- html -------------------------------------------------------------------------------------------

HTML = b"""<!doctype html><html><head><title>Magnet  Docs</title><style>body{color:red}</style></head>
<body><header><nav><a href="/">Home</a> <a href="/about">About us</a></nav></header>
<nav>Side menu</nav>
<main><article><header><h1>Getting <em>started</em></h1><p>by the team</p></header>
<p>Magnet indexes
your    documents.</p>
<h2>Install</h2><p>Run the installer.</p><ul><li>first step</li><li>second step</li></ul>
<script>track("visit")</script><noscript>enable js</noscript>
<h3>Linux</h3><pre>apt  install magnet
  --yes</pre>
<table><tr><th>Option</th><th>Default</th></tr><tr><td>port</td><td>8080</td></tr></table>
<h2>Usage</h2><p>Query it.<br>Line two.</p><aside>Related posts</aside>
</article></main><footer>Copyright 2024</footer></body></html>"""


def test_html_text_title_and_heading_paths():
    doc = load_document(HTML, "page.htm")
    assert doc.title == "Magnet Docs"
    assert [s.heading_path for s in doc.sections] == [
        ("Getting started",),
        ("Getting started", "Install"),
        ("Getting started", "Install", "Linux"),
        ("Getting started", "Usage"),
    ]
    assert doc.sections[0].text == "Getting started\n\nby the team\n\nMagnet indexes your documents."
    assert doc.sections[1].text == "Install\n\nRun the installer.\n\nfirst step\nsecond step"
    assert "apt  install magnet\n  --yes" in doc.sections[2].text  # <pre> keeps its spacing
    assert "--yes\n\n| Option | Default |\n| --- | --- |\n| port | 8080 |" in doc.sections[2].text
    assert doc.sections[3].text == "Usage\n\nQuery it.\nLine two."
    for dropped in ("Home", "Side menu", "track(", "enable js", "Related posts", "Copyright", "color:red"):
        assert dropped not in doc.text


# --- docx -------------------------------------------------------------------------------------------

def _docx() -> bytes:
    d = docx.Document()
    d.add_paragraph("Intro before any heading.")
    d.add_heading("Handbook", level=1)
    d.add_paragraph("Welcome to the handbook.")
    d.add_heading("Leave", level=2)
    d.add_paragraph("Ask your manager.")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("Type", "Days"), ("Annual", "25")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Sick leave", level=3)
    d.add_paragraph("Call in before 9.")
    d.add_heading("Expenses", level=2)
    d.add_heading("Travel", level=3)
    d.add_paragraph("Book economy.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_docx_paragraphs_headings_and_tables():
    doc = load_document(_docx(), "handbook.docx")
    assert doc.title == "Handbook"
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        ((), "Intro before any heading."),
        (("Handbook",), "Handbook\nWelcome to the handbook."),
        (("Handbook", "Leave"), "Leave\nAsk your manager.\n\n| Type | Days |\n| --- | --- |\n| Annual | 25 |"),
        (("Handbook", "Leave", "Sick leave"), "Sick leave\nCall in before 9."),
        (("Handbook", "Expenses", "Travel"), "Travel\nBook economy."),
    ]


@pytest.mark.parametrize("data", [b"PK\x03\x04 this is not really a zip", b"not a zip at all \x00\x01"])
def test_corrupt_docx(data):
    assert _error(data, "broken.docx").code == "corrupt_file"


def test_zip_that_is_not_a_docx():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    assert _error(buf.getvalue(), "archive.docx").code == "corrupt_file"


# --- csv / json -------------------------------------------------------------------------------------

def test_csv_becomes_a_markdown_table():
    data = b'name,age,city\nAlice,30,Paris\n\nBob,,"Berlin, Mitte"\nEve,41,Oslo,extra|value\n'
    doc = load_document(data, "people.csv")
    assert [(s.text, s.metadata) for s in doc.sections] == [(
        "| name | age | city | column_4 |\n| --- | --- | --- | --- |\n| Alice | 30 | Paris |  |\n"
        "| Bob |  | Berlin, Mitte |  |\n| Eve | 41 | Oslo | extra\\|value |", {"rows": 3})]


def test_csv_dialect_is_sniffed_and_tsv():
    semicolon = load_document("produit;prix\ncafé;2,50\nthé;3,10\n".encode("cp1252"), "prix.csv")
    assert semicolon.sections[0].text == "| produit | prix |\n| --- | --- |\n| café | 2,50 |\n| thé | 3,10 |"
    tsv = load_document(b"a\tb\n1\t2\n", "t.tsv")
    assert tsv.sections[0].text == "| a | b |\n| --- | --- |\n| 1 | 2 |"


def test_html_layout_tables_stay_text():
    html = (b"<html><body><table><tr><td><p>Welcome to our shop.</p><p>Open daily.</p></td>"
            b"<td><ul><li>News</li></ul></td></tr></table></body></html>")
    text = load_document(html, "old.html").text
    assert "---" not in text and "Welcome to our shop." in text and "News" in text


def test_csv_with_header_only_is_empty():
    assert _error(b"a,b,c\n", "h.csv").code == "empty"


def test_json_list_of_records():
    records = [{"id": 1, "user": {"name": "Ann", "tags": ["x", "y"]}, "ok": True, "note": None},
               {"id": 2, "user": {"name": "Ben"}}]
    doc = load_document(json.dumps(records).encode(), "users.json")
    assert [(s.text, s.metadata) for s in doc.sections] == [
        ("id: 1\nuser.name: Ann\nuser.tags[0]: x\nuser.tags[1]: y\nok: true", {"row": 1}),
        ("id: 2\nuser.name: Ben", {"row": 2}),
    ]


def test_json_single_object_and_jsonl():
    single = load_document(b'{"title": "Report", "pages": 3}', "r.json")
    assert [(s.text, s.metadata) for s in single.sections] == [("title: Report\npages: 3", {})]
    lines = load_document(b'{"q": "a"}\n\n{"q": "b"}\n', "qa.jsonl")
    assert [(s.text, s.metadata) for s in lines.sections] == [("q: a", {"row": 1}), ("q: b", {"row": 2})]


def test_json_lines_saved_as_json():
    doc = load_document(b'{"q": "a"}\n{"q": "b"}\n', "export.json")
    assert [(s.text, s.metadata) for s in doc.sections] == [("q: a", {"row": 1}), ("q: b", {"row": 2})]


def test_invalid_json():
    err = _error(b'{"a": 1,\n "b": }', "bad.json")
    assert err.code == "corrupt_file" and err.details["line"] == 2
    err = _error(b'{"a": 1}\n{"b": \n', "bad.jsonl")
    assert err.code == "corrupt_file" and err.details["line"] == 2
    assert _error(b"[]", "none.json").code == "empty"


# --- registry ---------------------------------------------------------------------------------------

def test_supported_extensions():
    exts = supported_extensions()
    for ext in (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".csv", ".json", ".jsonl",
                ".rst", ".log"):
        assert ext in exts
    assert list(exts) == sorted(exts)


def test_unknown_extension_is_unsupported():
    err = _error(b"whatever", "archive.xyz")
    assert err.code == "unsupported_type"
    assert ".xyz files are not supported" in err.message
    assert err.details["extension"] == ".xyz"


def test_mime_type_used_when_extension_is_unknown():
    doc = load_document(b"# Title\n\nBody", "export.dat", mime_type="text/markdown; charset=utf-8")
    assert doc.title == "Title" and doc.sections[0].heading_path == ("Title",)


def test_name_without_extension_is_text():
    assert load_document(b"MIT License\n", "LICENSE").text == "MIT License"


def test_pdf_named_txt_is_loaded_as_pdf(pdf_bytes):
    doc = load_document(pdf_bytes("bank_statement.pdf"), "statement.txt")
    assert doc.mime_type == "application/pdf" and doc.sections[0].page == 1


def test_text_named_pdf_is_loaded_as_text():
    doc = load_document(b"Meeting notes\n\nNothing PDF about this.", "notes.pdf")
    assert doc.mime_type == "text/plain"
    assert doc.text == "Meeting notes\n\nNothing PDF about this."


def test_binary_named_pdf_is_corrupt():
    err = _error(random.Random(3).randbytes(2048), "scan.pdf")
    assert err.code == "corrupt_file"


def test_text_loader_is_usable_directly():
    assert TextLoader().run(b"\n\nhello\n", "x.txt").sections[0].text == "hello"
