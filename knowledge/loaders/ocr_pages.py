"""Which pages of a PDF need OCR, and what OCR made of them (used by the PDF loader page by page)."""
from __future__ import annotations

import logging
import time
from typing import Any

from knowledge import ocr
from knowledge.types import IngestError, Section

log = logging.getLogger(__name__)

# A page of body text holds 20-40 visible characters per square inch; a scan under a one-line stamp
# ("Case 1:21-cv-01234 Document 5 Page 2 of 5") about 0.5. Under this density the text layer is not
# the page's content.
SPARSE_CHARS_PER_SQ_IN = 2.0


def visible_chars(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace())


def _pdfium_document(data: bytes, name: str):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except Exception as exc:  # pypdf opened it, pdfium did not: keep the text layer, say why OCR failed
        raise IngestError("corrupt_file", f"{name} could not be rendered for OCR: {exc}", name=name) from exc


class OcrPass:
    """Decides, page by page, between a PDF page's text layer and OCR of its rendering.

    Collects ``warnings`` (low confidence, OCR off) and what OCR cost, for the document's metadata.
    """

    def __init__(self, data: bytes, name: str, mode: str = "auto", on_page=None) -> None:
        if mode not in ocr.OCR_MODES:
            raise ValueError(f"ocr must be one of {ocr.OCR_MODES}, got {mode!r}")
        self.data, self.name, self.mode = data, name, mode
        # Called after each recognised page (a second or more each): the sync saves progress and a heartbeat
        # there and may stop for a cancel, so a 300-page scan neither looks dead nor ignores a cancel.
        self.on_page = on_page or (lambda: None)
        self.warnings: list[dict[str, Any]] = []
        self.unread_pages: list[int] = []  # scanned pages left unread because OCR is off
        self.ocr_pages: list[int] = []
        self.confidences: list[float] = []
        self.seconds = 0.0
        self._pdf = None

    def _page(self, number: int):
        if self._pdf is None:
            self._pdf = _pdfium_document(self.data, self.name)
        return self._pdf[number - 1]

    def _has_image(self, number: int) -> bool:
        import pypdfium2.raw as pdfium_c

        page = self._page(number)
        return any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3))

    def page(self, number: int, text: str, area_sq_in: float) -> Section | None:
        """The section for page ``number`` (1-based) given its text layer, or None when it has no text."""
        sparse = visible_chars(text) < SPARSE_CHARS_PER_SQ_IN * area_sq_in
        if self.mode == "off" or not sparse and self.mode == "auto":
            if sparse and self.mode == "off" and self._safe_has_image(number):
                self.unread_pages.append(number)
                self.warnings.append({"code": "ocr_off", "page": number,
                                      "message": f"page {number}: no text layer; OCR is off"})
            return Section(text=text, page=number) if text else None
        if self.mode == "auto" and not self._safe_has_image(number):
            return Section(text=text, page=number) if text else None  # a short page, not a scan
        return self._recognise(number, text)

    def _safe_has_image(self, number: int) -> bool:
        try:
            return self._has_image(number)
        except Exception:  # pdfium cannot open or walk the page: keep its text layer, as before OCR existed
            log.warning("could not inspect page %d of %s for images", number, self.name, exc_info=True)
            return False

    def _recognise(self, number: int, text: str) -> Section | None:
        started = time.perf_counter()
        try:
            image = self._page(number).render(scale=ocr.RENDER_DPI / 72).to_pil()
            result = ocr.recognise(image)
        except IngestError as exc:
            self.warnings.append({"code": "ocr_failed", "page": number, "message": f"page {number}: {exc.message}"})
            return Section(text=text, page=number) if text else None
        except Exception as exc:  # a page pdfium cannot render must not cost the document its other pages
            log.warning("OCR failed on page %d of %s", number, self.name, exc_info=True)
            self.warnings.append({"code": "ocr_failed", "page": number,
                                  "message": f"page {number}: could not be rendered for OCR ({type(exc).__name__})"})
            return Section(text=text, page=number) if text else None
        finally:
            self.seconds += time.perf_counter() - started
        self.on_page()
        self.ocr_pages.append(number)
        if result.confidence is None or visible_chars(result.text) <= visible_chars(text):
            # OCR saw no more than the text layer has (a photo, a blank scan): keep the exact text layer.
            return Section(text=text, page=number) if text else None
        self.confidences.append(result.confidence)
        if result.confidence < ocr.LOW_CONFIDENCE:
            self.warnings.append({
                "code": "ocr_low_confidence", "page": number, "confidence": result.confidence,
                "message": f"page {number}: OCR confidence {result.confidence:.2f} is low; its text may be wrong",
            })
        return Section(text=result.text, page=number,
                       metadata={"ocr": True, "ocr_confidence": result.confidence})

    def summary(self) -> dict[str, Any]:
        """What OCR did to this document, for ParsedDocument.metadata (empty when it did nothing)."""
        if not self.ocr_pages:
            return {}
        mean = sum(self.confidences) / len(self.confidences) if self.confidences else None
        return {"ocr": {"pages": self.ocr_pages, "seconds": round(self.seconds, 3),
                        "mean_confidence": round(mean, 4) if mean is not None else None}}
