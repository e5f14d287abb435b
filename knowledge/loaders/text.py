"""Plain text loader, and the byte-to-str decoding every text-based loader shares."""
from __future__ import annotations

import codecs
import unicodedata

from charset_normalizer import from_bytes
from charset_normalizer.utils import is_multi_byte_encoding

from knowledge.types import IngestError, ParsedDocument, Section

# Byte-order marks, longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Signatures of common binary formats, so a renamed image or archive fails with a clear reason.
# Only signatures containing non-text bytes (plus %PDF-), so no real text file can match one.
_BINARY_MAGIC = (
    b"PK\x03\x04", b"\x89PNG", b"\xff\xd8\xff", b"\x7fELF", b"\x1f\x8b", b"7z\xbc\xaf", b"\xd0\xcf\x11\xe0",
    b"%PDF-",
)
_ALLOWED_CONTROLS = set("\t\n\r\f\v")
MAX_UNPRINTABLE_RATIO = 0.10  # real text, even a log with ANSI colours, stays far below this


def _looks_latin(text: str) -> bool:
    """True when most letters are ASCII: Western text with some accents, not Cyrillic, Greek..."""
    letters = [c for c in text[:100_000] if c.isalpha()]
    if not letters:
        return True
    return sum(ord(c) > 127 for c in letters) / len(letters) < 0.5


def _decode_legacy(data: bytes) -> str:
    """Decode bytes that are neither UTF-8 nor BOM-marked; never raises."""
    best = from_bytes(data).best()
    if best is not None and is_multi_byte_encoding(best.encoding):
        return str(best)  # Shift-JIS, GB18030...: charset-normalizer is good at these
    # For short single-byte text charset-normalizer often guesses cp1250 or cp1006 for plain French
    # or German ("crčme", "Straﻑe"). cp1252 is by far the most common legacy encoding, so it wins
    # whenever it yields Latin-script text; a Cyrillic or Greek code page does not, and keeps its guess.
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = data.decode("latin-1")  # maps every byte, so this cannot fail
    if best is None or _looks_latin(western):
        return western
    return str(best)


def _unprintable_ratio(text: str) -> float:
    text = text[:100_000]  # a sample is enough, and keeps huge files cheap
    bad = sum(
        1
        for c in text
        if c == "\ufffd" or (unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") and c not in _ALLOWED_CONTROLS)
    )
    return bad / max(len(text), 1)


def decode_text(data: bytes, name: str) -> str:
    """Decode a text file's bytes to ``str`` with ``\\n`` line ends.

    Handles UTF-8 (with or without BOM), UTF-16/32 with a BOM and legacy code pages (Latin-1, cp1252
    and others, detected with charset-normalizer). Raises IngestError ``empty`` for a file with no
    visible text and ``binary_content`` for bytes that are not text at all.
    """
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), None)
    if encoding is not None:
        text = data.decode(encoding, errors="replace")
    else:
        if data.startswith(_BINARY_MAGIC) or b"\x00" in data:
            raise IngestError("binary_content", f"{name} is binary data, not text", name=name)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_legacy(data)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if not text.strip():
        raise IngestError("empty", f"{name} is empty", name=name)
    if _unprintable_ratio(text) > MAX_UNPRINTABLE_RATIO:
        raise IngestError("binary_content", f"{name} is binary data, not text", name=name)
    return text


class TextLoader:
    """Plain text: the whole file is one section; the chunker splits it further."""

    extensions = (".txt", ".text", ".log", ".rst", ".adoc", ".asciidoc", ".org", ".tex", ".yaml", ".yml")

    def run(self, data: bytes, name: str) -> ParsedDocument:
        """Decode ``data`` and return it as a single section."""
        text = decode_text(data, name).strip("\n")
        return ParsedDocument(sections=[Section(text=text)], mime_type="text/plain")
