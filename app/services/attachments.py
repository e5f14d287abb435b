"""Files sent with a message (`attachments: [{filename, content_type?, data}]`), turned into text.

The text is extracted with the ingestion loaders, so an attachment reads exactly like the same file
synced from a knowledge source. Every file that cannot be used is a 400 naming it and saying why
(`details.reason`), before any model is called: a silently dropped attachment would make the agent
answer without the document the user believes it has read.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from app.errors import BadRequest
from knowledge.loaders import load_document
from knowledge.tokenizer import count_tokens
from knowledge.types import IngestError

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_ATTACHMENTS = 5

# MIME (RFC 2045) wraps base64 at 76 characters; line breaks are not data, anything else is checked.
_WHITESPACE = re.compile(r"\s+")
# What a loader's failure is reported as; IngestError codes are already short and stable.
_INGEST_REASONS = {"empty": "no_text"}


@dataclass(frozen=True)
class ExtractedAttachment:
    filename: str
    content_type: str | None
    size_bytes: int
    text: str
    tokens: int


def extract_attachments(
    items: list[dict[str, Any]],
    *,
    max_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    max_count: int = DEFAULT_MAX_ATTACHMENTS,
) -> list[ExtractedAttachment]:
    """Decode and read every attachment, in order; BadRequest `invalid_request` for the first bad one.

    `details` of the error: `attachment` (0-based index), `filename`, `reason` (`too_many`, `too_large`,
    `invalid_base64`, `empty`, `unsupported_type`, `corrupt_file`, `encrypted`, `no_text`, ...).
    """
    items = items or []
    if len(items) > max_count:
        _reject(
            max_count, items[max_count], "too_many",
            f"At most {max_count} attachments can be sent with a message; {len(items)} were sent.",
            max_count=max_count, count=len(items),
        )
    return [_extract_one(index, item, max_bytes) for index, item in enumerate(items)]


def _extract_one(index: int, item: dict[str, Any], max_bytes: int) -> ExtractedAttachment:
    if not isinstance(item, dict):
        _reject(index, item, "invalid_item", f"Attachment {index} must be an object with filename and data.")
    filename = str(item.get("filename") or "").strip()
    if not filename:
        _reject(index, item, "missing_filename", f"Attachment {index} has no filename.")
    data, declared_type = _decode(index, item, filename, max_bytes)
    try:
        parsed = load_document(data, filename, declared_type)
    except IngestError as exc:
        reason = _INGEST_REASONS.get(exc.code, exc.code)
        _reject(index, item, reason, f"Attachment {filename} cannot be read: {exc.message}.")
    except Exception as exc:  # a third-party parser choking on hostile bytes is bad input, not a 500
        log.warning("attachment %s failed to parse: %r", filename, exc)
        _reject(index, item, "corrupt_file", f"Attachment {filename} is damaged or not the format it claims.")
    text = parsed.text.strip()
    if not text:
        _reject(index, item, "no_text", f"Attachment {filename} has no text that could be extracted.")
    return ExtractedAttachment(
        filename=filename,
        content_type=parsed.mime_type or declared_type,
        size_bytes=len(data),
        text=text,
        tokens=count_tokens(text),
    )


def _decode(index: int, item: dict[str, Any], filename: str, max_bytes: int) -> tuple[bytes, str | None]:
    """The attachment's bytes and its declared content type (from the item, else from a data URL)."""
    raw = item.get("data")
    declared = item.get("content_type") or None
    if not isinstance(raw, str) or not raw:
        _reject(index, item, "empty", f"Attachment {filename} has no data.")
    # Refuse a grossly oversized payload before copying it around; 4 base64 characters carry 3 bytes.
    if len(raw) > 2 * _encoded_length(max_bytes) + 1024:
        _too_large(index, item, filename, len(raw) * 3 // 4, max_bytes)
    if raw.startswith("data:"):
        header, comma, raw = raw.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            _reject(index, item, "invalid_base64",
                    f"Attachment {filename} is a data URL without ';base64,'; send the file base64-encoded.")
        declared = declared or header[5:].rsplit(";", 1)[0].split(";")[0] or None
    encoded = _WHITESPACE.sub("", raw)
    size = len(encoded) * 3 // 4 - (len(encoded) - len(encoded.rstrip("=")))
    if size > max_bytes:
        _too_large(index, item, filename, size, max_bytes)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        _reject(index, item, "invalid_base64", f"Attachment {filename} is not valid base64 data.")
    if not data:
        _reject(index, item, "empty", f"Attachment {filename} is empty.")
    return data, declared


def _encoded_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def _too_large(index: int, item: dict[str, Any], filename: str, size: int, max_bytes: int) -> NoReturn:
    _reject(
        index, item, "too_large",
        f"Attachment {filename} is {_human(size)}; the limit is {_human(max_bytes)} per file.",
        size_bytes=size, max_bytes=max_bytes,
    )


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"


def _reject(index: int, item: Any, reason: str, message: str, **extra: Any) -> NoReturn:
    filename = item.get("filename") if isinstance(item, dict) else None
    raise BadRequest(
        message,
        code="invalid_request",
        details={"attachment": index, "filename": filename, "reason": reason, **extra},
    )
