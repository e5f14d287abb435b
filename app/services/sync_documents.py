"""What a sync records about each document's reading: OCR mode sensitivity, warnings, stage timings."""
from __future__ import annotations

from knowledge.loaders import OCR_LOADERS, get_loader_or_none

MAX_WARNINGS_IN_MESSAGE = 20


def reads_pixels(name: str) -> bool:
    """Whether a document's text depends on the OCR mode (PDFs and images)."""
    return isinstance(get_loader_or_none(name), OCR_LOADERS)


def indexed_state(warnings: list[dict]) -> dict:
    """Status and reason of a document whose chunks are written: warnings (per page) make the reason."""
    if not warnings:
        return {"status": "indexed", "error_code": None, "error_message": None}
    codes = sorted({w["code"] for w in warnings})
    message = "; ".join(w["message"] for w in warnings[:MAX_WARNINGS_IN_MESSAGE])
    if len(warnings) > MAX_WARNINGS_IN_MESSAGE:
        message += f"; and {len(warnings) - MAX_WARNINGS_IN_MESSAGE} more"
    return {"status": "indexed_with_warnings", "error_code": codes[0] if len(codes) == 1 else "warnings",
            "error_message": message}


def run_timings(parsing: dict, writers) -> dict:
    """A run's seconds per stage: parsing (OCR included), OCR alone (and its pages), embedding, store writes."""
    timings = {key: round(value, 3) for key, value in parsing.items()}
    timings["embed"] = round(sum(w.stats.embed_seconds for w in writers), 3)
    timings["write"] = round(sum(w.stats.write_seconds for w in writers), 3)
    return timings
