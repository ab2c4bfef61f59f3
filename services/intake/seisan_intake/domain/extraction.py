"""Receipt field extraction: OCR lines in, fields with confidences out. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OcrLine:
    """One line of text as an OCR engine read it.

    ``box`` is (left, top, right, bottom) in pixels of the image the engine
    read; ``confidence`` is the engine's own 0..1 score for the text.
    """

    text: str
    confidence: float
    box: tuple[float, float, float, float]
