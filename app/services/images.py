"""Images people upload (avatars, the workspace logo): checked, decoded and re-encoded by Pillow, so what
Magnet stores and serves is pixels it wrote itself: no EXIF (location, camera), no other metadata, no
polyglot payload riding along in the original bytes.
"""
from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from app.extensions import db
from app.models import StoredImage

CONTENT_TYPE = "image/webp"
ACCEPTED_FORMATS = {"PNG", "JPEG", "GIF", "WEBP", "BMP"}
# Far above any avatar or logo, far below what would exhaust memory when decoded (a "decompression bomb").
MAX_PIXELS = 4096 * 4096


def reencode(data: bytes, *, max_bytes: int, max_side: int) -> tuple[bytes, str]:
    """The image re-encoded as WebP (one type to serve; it keeps transparency), no larger than `max_side`
    on either side, with its EXIF orientation applied and every piece of metadata dropped."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"The image is {len(data)} bytes; the limit is {max_bytes}.",
                              details={"limit_bytes": max_bytes, "size_bytes": len(data)})
    image = _decode(data)
    image = ImageOps.exif_transpose(image) or image
    keep_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if keep_alpha else "RGB")
    image.thumbnail((max_side, max_side))
    # A new image from the pixels alone: nothing of the original's info (exif, icc, xmp, comments) survives.
    clean = Image.frombytes(image.mode, image.size, image.tobytes())
    out = io.BytesIO()
    clean.save(out, format="WEBP", quality=85)
    return out.getvalue(), CONTENT_TYPE


def _decode(data: bytes) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            if image.format not in ACCEPTED_FORMATS:
                raise UnsupportedMediaType(f"Images only: PNG, JPEG, GIF, WebP or BMP (got {image.format}).",
                                           details={"format": image.format})
            if image.width * image.height > MAX_PIXELS:
                raise ValidationFailed(f"The image is {image.width}x{image.height} pixels; the limit is "
                                       f"{MAX_PIXELS} pixels in all.", code="image_too_large")
            image.load()
            return image
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UnsupportedMediaType("The file is not an image Magnet can read (PNG, JPEG, GIF, WebP or BMP).",
                                       code="not_an_image") from exc
        except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt image data
            raise ValidationFailed("The image is damaged and cannot be read.", code="broken_image") from exc


def replace(old_id: str | None, data: bytes, content_type: str) -> StoredImage:
    """Store a new image (in the caller's transaction) and drop the one it replaces."""
    image = StoredImage(content_type=content_type, size_bytes=len(data), data=data)
    db.session.add(image)
    db.session.flush()
    if old_id:
        db.session.execute(db.delete(StoredImage).where(StoredImage.id == old_id))
    return image


def read(image_id: str | None) -> StoredImage:
    image = db.session.get(StoredImage, image_id) if image_id else None
    if image is None:
        raise NotFound("No image here.")
    return image
