"""Offline OCR of page images (rapidocr-onnxruntime: PP-OCR models shipped inside its wheel).

One engine per process, created on first use and shared: loading the models takes a second or two, and
a sync worker recognises many pages. Calls are serialised by a lock because the engine is not documented
as thread-safe; a sync runs its documents one after another anyway.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

OCR_MODES = ("auto", "off", "force")
# Mean recognition confidence (0-1, weighted by characters) under which a page is flagged: clean renders
# score about 0.95, a blurred or skewed fax page 0.6-0.8, and there its text has many wrong characters.
LOW_CONFIDENCE = 0.80
# Pages are rendered at this resolution before recognition: PP-OCR reads 10-12 pt text well at 200 dpi,
# and higher costs time (area grows with the square) without fewer errors on ordinary documents.
RENDER_DPI = 200

_engine = None
_lock = threading.Lock()


@dataclass(frozen=True)
class OcrResult:
    """The text recognised on one image, read top to bottom and left to right, with its confidence."""

    text: str
    confidence: float | None  # None when nothing was recognised
    seconds: float


def _get_engine():
    global _engine
    if _engine is None:
        from rapidocr_onnxruntime import RapidOCR  # imported lazily: onnxruntime is heavy to import

        _engine = RapidOCR()
    return _engine


def warm_up() -> None:
    """Load the OCR models now rather than on the first scanned page."""
    with _lock:
        _get_engine()


def _lines(boxes: list) -> list[list]:
    """Group recognised boxes into text lines: a box joins a line when their vertical spans mostly overlap."""
    items = sorted(boxes, key=lambda b: (min(p[1] for p in b[0]), min(p[0] for p in b[0])))
    lines: list[list] = []
    for box in items:
        top, bottom = min(p[1] for p in box[0]), max(p[1] for p in box[0])
        for line in lines:
            l_top, l_bottom = line[0]
            overlap = min(bottom, l_bottom) - max(top, l_top)
            if overlap > 0.5 * min(bottom - top, l_bottom - l_top):
                line[1].append(box)
                break
        else:
            lines.append([(top, bottom), [box]])
    return [sorted(line[1], key=lambda b: min(p[0] for p in b[0])) for line in lines]


def recognise(image) -> OcrResult:
    """Recognise the text of a PIL image. Lines are joined with newlines, boxes on a line with spaces."""
    rgb = np.asarray(image.convert("RGB"))
    started = time.perf_counter()
    with _lock:
        engine = _get_engine()
        # rapidocr takes OpenCV's channel order (BGR) for arrays. Its 180-degree direction classifier is off:
        # on long lines of upright document text it flips some lines (about 1 in 5 on a dense page), which
        # then come out as garbage below the score cut and are lost; pages of documents are upright.
        result, _ = engine(np.ascontiguousarray(rgb[:, :, ::-1]), use_cls=False)
    seconds = time.perf_counter() - started
    if not result:
        return OcrResult(text="", confidence=None, seconds=seconds)
    lines = _lines(result)
    text = "\n".join(" ".join(str(box[1]).strip() for box in line) for line in lines).strip()
    weights = [max(len(str(box[1]).strip()), 1) for box in result]
    confidence = sum(float(box[2]) * w for box, w in zip(result, weights, strict=True)) / sum(weights)
    return OcrResult(text=text, confidence=round(confidence, 4), seconds=seconds)
