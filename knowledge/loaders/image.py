"""Images (PNG, JPEG, TIFF including multi-page, WebP, BMP, GIF): text by OCR, one section per frame/page."""
from __future__ import annotations

import io
import time

from PIL import Image, ImageSequence, UnidentifiedImageError

from knowledge import ocr
from knowledge.loaders.ocr_pages import visible_chars
from knowledge.types import IngestError, ParsedDocument, Section

# Decompression bombs: a 20 kB PNG can claim 100 000 x 100 000 pixels. A 600 dpi A3 scan is ~70 Mpx.
MAX_PIXELS = 100_000_000
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "TIFF": "image/tiff", "WEBP": "image/webp",
         "BMP": "image/bmp", "GIF": "image/gif"}


class ImageLoader:
    """Image files, read with OCR (knowledge.ocr). Each page of a multi-page TIFF is a ``page`` of its own."""

    extensions = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")

    def run(self, data: bytes, name: str, ocr_mode: str = "auto", on_page=None) -> ParsedDocument:
        """Recognise the text of every frame, calling ``on_page()`` after each (see knowledge.loaders.ocr_pages).
        OCR "off" leaves an image nothing to index (``no_text``)."""
        if ocr_mode == "off":
            raise IngestError("no_text", f"{name} is an image: no text layer; OCR is off for this source",
                              name=name)
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise IngestError("too_large", f"{name} is {image.width}x{image.height} pixels; the limit is "
                                  f"{MAX_PIXELS // 1_000_000} megapixels", name=name)
            frames = [frame.copy() for frame in ImageSequence.Iterator(image)]
        except IngestError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise IngestError("corrupt_file", f"{name} is not a readable image: {exc}", name=name) from exc
        sections: list[Section] = []
        warnings: list[dict] = []
        confidences: list[float] = []
        started = time.perf_counter()
        for number, frame in enumerate(frames, start=1):
            try:
                result = ocr.recognise(frame)
            except Exception as exc:  # a frame the OCR cannot take (odd mode, 1-pixel strip): keep the others
                warnings.append({"code": "ocr_failed", "page": number,
                                 "message": f"page {number}: OCR failed ({type(exc).__name__})"})
                continue
            if on_page is not None:
                on_page()
            if result.confidence is None or not visible_chars(result.text):
                continue
            confidences.append(result.confidence)
            sections.append(Section(text=result.text, page=number,
                                    metadata={"ocr": True, "ocr_confidence": result.confidence}))
            if result.confidence < ocr.LOW_CONFIDENCE:
                where = f"page {number}: " if len(frames) > 1 else ""
                warnings.append({"code": "ocr_low_confidence", "page": number, "confidence": result.confidence,
                                 "message": f"{where}OCR confidence {result.confidence:.2f} is low; "
                                            "its text may be wrong"})
        seconds = time.perf_counter() - started
        if not sections:
            raise IngestError("no_text", f"{name}: OCR found no text in the image", name=name,
                              page_count=len(frames))
        metadata = {"ocr": {"pages": [s.page for s in sections], "seconds": round(seconds, 3),
                            "mean_confidence": round(sum(confidences) / len(confidences), 4)},
                    "pixels": f"{image.width}x{image.height}"}
        return ParsedDocument(sections=sections, mime_type=_MIME.get(image.format or "", "image/*"),
                              page_count=len(frames), metadata=metadata, warnings=warnings)
