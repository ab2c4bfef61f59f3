"""The Pillow image pipeline: decide the type by content, refuse what is unsafe, normalise.

Accepted: JPEG, PNG, WebP, HEIC/HEIF (pillow-heif). Refused with a message
naming the problem: anything else (by magic bytes, whatever the name or the
declared type says), zero bytes, decompression bombs (pixel limit checked from
the header before decoding, and Pillow's bomb warnings raised as errors),
truncated or corrupt files. The stored viewing copy has EXIF orientation
applied and every piece of metadata (GPS especially) stripped; large JPEGs
are decoded with draft mode straight to the working size.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagehash
from PIL import Image, ImageFile, ImageOps

from seisan_intake.domain.errors import ImageRejected

_MAGIC: list[tuple[str, str]] = [
    ("image/jpeg", "jpeg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
    ("image/heic", "heic"),
]
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif"}
_KNOWN_OTHERS = [
    (b"%PDF", "PDF document"),
    (b"GIF8", "GIF image"),
    (b"BM", "BMP image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x7fELF", "executable"),
    (b"<svg", "SVG drawing"),
    (b"<?xml", "XML document"),
]


def sniff(data: bytes) -> str:
    """The MIME type of an accepted image format from its first bytes, else ImageRejected."""
    if not data:
        raise ImageRejected("empty upload: 0 bytes received")
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "image/avif" if data[8:12] == b"avif" else "image/heic"
    for magic, name in _KNOWN_OTHERS:
        if data.lstrip()[: len(magic)] == magic:
            raise ImageRejected(
                f"unsupported file type: {name}; send a JPEG, PNG, WebP or HEIC photo"
            )
    raise ImageRejected(
        "unsupported file type: not a JPEG, PNG, WebP or HEIC image (decided by content)"
    )


@dataclass(frozen=True)
class NormalizedImage:
    content_type: str
    sha256: str
    width: int
    height: int
    perceptual_hash: str
    # Orientation applied, metadata stripped, long side ≤ the working size (JPEG).
    viewing_jpeg: bytes
    # The same pixels, for OCR, without a JPEG round trip.
    working: Image.Image


class ImagePipeline:
    """Validates and normalises uploads. Build once in main (it registers the HEIF opener)."""

    def __init__(self, *, max_pixels: int = 50_000_000, working_long_side: int = 2000) -> None:
        import pillow_heif

        pillow_heif.register_heif_opener()
        self.max_pixels = max_pixels
        self.working_long_side = working_long_side

    def normalize(self, data: bytes) -> NormalizedImage:
        content_type = sniff(data)
        digest = hashlib.sha256(data).hexdigest()
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                image = self._decode(data)
            except ImageRejected:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ImageRejected(f"decompression bomb refused: {exc}") from None
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise ImageRejected(f"truncated or corrupt image: {exc}") from None
        width, height = image.size
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=85, optimize=False)  # no exif/icc: metadata stripped
        return NormalizedImage(
            content_type=content_type,
            sha256=digest,
            width=width,
            height=height,
            # phash shrinks to 32×32 anyway; a 1/4-size copy makes it 5× cheaper, same bits
            # for the same photo (it is always computed this way).
            perceptual_hash=str(imagehash.phash(image.reduce(4))),
            viewing_jpeg=buf.getvalue(),
            working=image,
        )

    def _decode(self, data: bytes) -> Image.Image:
        opened = Image.open(io.BytesIO(data))
        width, height = opened.size
        if width <= 0 or height <= 0:
            raise ImageRejected("corrupt image: zero width or height")
        if width * height > self.max_pixels:
            raise ImageRejected(
                f"decompression bomb refused: {width}×{height} = {width * height:,} pixels "
                f"exceeds the limit of {self.max_pixels:,}"
            )
        target = self.working_long_side
        if opened.format == "JPEG" and max(width, height) > target:
            scale = target / max(width, height)
            opened.draft("RGB", (int(width * scale), int(height * scale)))
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        opened.load()
        image: Image.Image = ImageOps.exif_transpose(opened) or opened
        if image.mode != "RGB":
            image = image.convert("RGB")
        if max(image.size) > target:
            image.thumbnail((target, target), Image.Resampling.BILINEAR)
        return image
