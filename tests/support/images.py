"""Receipt-like images made on the fly (nothing binary is committed)."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw


def receipt_jpeg(
    seed: int,
    *,
    size: tuple[int, int] = (600, 900),
    lines: list[str] | None = None,
    exif_orientation: int | None = None,
    gps: bool = False,
    quality: int = 90,
    fmt: str = "JPEG",
) -> bytes:
    """A white receipt with text lines and a seed-specific block pattern (distinct phash)."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    for _ in range(12):  # coarse blocks make perceptual hashes differ between seeds
        x, y = rng.randrange(w), rng.randrange(h)
        shade = rng.randrange(0, 200)
        draw.rectangle([x, y, x + w // 4, y + h // 6], fill=(shade, shade, shade))
    for i, text in enumerate(lines or [f"RECEIPT {seed}", "TOTAL 12.50"]):
        draw.text((20, 20 + 24 * i), text, fill="black")
    buf = io.BytesIO()
    kwargs: dict[str, object] = {}
    if fmt == "JPEG":
        kwargs["quality"] = quality
    if exif_orientation is not None or gps:
        exif = Image.Exif()
        if exif_orientation is not None:
            exif[0x0112] = exif_orientation
        if gps:
            exif[0x8825] = {1: "N", 2: (35.0, 41.0, 22.0), 3: "E", 4: (139.0, 41.0, 30.0)}
        kwargs["exif"] = exif
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()
