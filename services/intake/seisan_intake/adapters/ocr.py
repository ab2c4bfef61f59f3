"""The OCR engine port: an image in, text lines with confidences and boxes out.

Engines are built lazily by their adapters (never at import time) and must work
offline. Unit tests use fakes that subclass `OcrEngine`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from PIL import Image

from seisan_intake.domain.extraction import OcrLine

__all__ = ["OcrEngine", "OcrLine"]


class OcrEngine(ABC):
    """Reads the text of one receipt image.

    ``image`` is already normalised by the intake pipeline: EXIF orientation
    applied, RGB, long side about 1,600–2,000 px. Lines come back in reading
    order (top to bottom, then left to right), boxes in the pixel coordinates
    of ``image``. Implementations are safe to call from one thread at a time;
    callers that run several OCR jobs at once use one engine per worker.
    """

    name: str = "ocr"

    @abstractmethod
    def read(self, image: Image.Image) -> list[OcrLine]: ...

    def warm_up(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Load models now rather than on the first `read`."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless overridden
        """Release models and threads."""
