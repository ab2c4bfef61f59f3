"""Receipt extraction accuracy on a labelled set: `seisan eval receipts --images DIR --labels DIR`.

Labels are SROIE-style: one JSON file per image, same stem, ``.txt`` or
``.json``, keys company/date/address/total as printed on the receipt (optional
``date_iso`` when the printed date needs interpretation, as in the generated
Japanese set). Each image runs through the real OCR engine and `extract`.
Dates compare as calendar dates, totals as amounts, company names after
folding case, full-width forms and white space (all of it: OCR drops and adds
spaces freely). The last printed line is

    receipts: n=<N> total=<acc> date=<acc> company=<acc> seconds_per_receipt=<s>

where seconds_per_receipt is the mean wall time of OCR plus extraction.
"""

from __future__ import annotations

import json
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from PIL import Image, ImageOps

from seisan_intake.adapters.ocr import OcrEngine
from seisan_intake.domain.extraction import ExtractedReceipt, extract
from seisan_intake.domain.receipt_text import dates_in
from seisan_shared.money import exponent

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")
WORKING_LONG_SIDE = 2000
FIELDS = ("total", "date", "company")


@dataclass(frozen=True)
class ReceiptOutcome:
    receipt_id: str
    correct: dict[str, bool]
    expected: dict[str, str]
    got: dict[str, str]
    seconds: float
    cpu_seconds: float = 0.0  # this process's CPU time: steadier than wall time on a busy machine


@dataclass(frozen=True)
class EvalReport:
    outcomes: tuple[ReceiptOutcome, ...] = field(default_factory=tuple)

    @property
    def n(self) -> int:
        return len(self.outcomes)

    def accuracy(self, name: str) -> float:
        if not self.outcomes:
            return 0.0
        return sum(outcome.correct[name] for outcome in self.outcomes) / self.n

    @property
    def seconds_per_receipt(self) -> float:
        if not self.outcomes:
            return 0.0
        return sum(outcome.seconds for outcome in self.outcomes) / self.n

    @property
    def cpu_seconds_per_receipt(self) -> float:
        if not self.outcomes:
            return 0.0
        return sum(outcome.cpu_seconds for outcome in self.outcomes) / self.n

    def summary_line(self) -> str:
        return (
            f"receipts: n={self.n} total={self.accuracy('total'):.3f} "
            f"date={self.accuracy('date'):.3f} company={self.accuracy('company'):.3f} "
            f"seconds_per_receipt={self.seconds_per_receipt:.2f}"
        )


def load_working_image(path: Path) -> Image.Image:
    """Open like the intake pipeline does: orientation applied, RGB, long side ≤ 2,000 px."""
    with Image.open(path) as opened:
        if opened.format == "JPEG":
            opened.draft("RGB", (WORKING_LONG_SIDE, WORKING_LONG_SIDE))
        image = ImageOps.exif_transpose(opened).convert("RGB")
    scale = WORKING_LONG_SIDE / max(image.size)
    if scale < 1:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def labelled_images(images: Path, labels: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    for path in sorted(images.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        label_path = next(
            (
                labels / f"{path.stem}{suffix}"
                for suffix in (".txt", ".json")
                if (labels / f"{path.stem}{suffix}").is_file()
            ),
            None,
        )
        if label_path is None:
            continue
        yield path.stem, path, json.loads(label_path.read_text(encoding="utf-8"))


def fold_company(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def label_amount(text: str) -> Decimal | None:
    """'9.00' / '$8.20' / 'RM 1,234.50' / '¥4,527-' / '1,234円' → Decimal, else None."""
    cleaned = unicodedata.normalize("NFKC", text)
    cleaned = re.sub(r"[^\d.,\-]", "", cleaned).rstrip("-").replace(",", "")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def label_date(label: dict[str, str]) -> date | None:
    if label.get("date_iso"):
        return date.fromisoformat(label["date_iso"])
    found = dates_in(unicodedata.normalize("NFKC", label.get("date", "")), month_first=False)
    return found[0][0] if found else None


def score(
    label: dict[str, str], extracted: ExtractedReceipt
) -> tuple[dict[str, bool], dict[str, str]]:
    got_total = None
    if extracted.total is not None and extracted.currency is not None:
        digits = exponent(extracted.currency.value)
        got_total = Decimal(extracted.total.value).scaleb(-digits)
    got_date = extracted.transaction_date.value if extracted.transaction_date else None
    got_company = extracted.merchant.value if extracted.merchant else ""
    expected_total = label_amount(label.get("total", ""))
    expected_date = label_date(label)
    correct = {
        "total": got_total is not None and got_total == expected_total,
        "date": got_date is not None and got_date == expected_date,
        "company": bool(got_company)
        and fold_company(got_company) == fold_company(label.get("company", "")),
    }
    got = {
        "total": str(got_total) if got_total is not None else "-",
        "date": got_date.isoformat() if got_date else "-",
        "company": got_company or "-",
    }
    return correct, got


def evaluate(
    images: Path,
    labels: Path,
    engine: OcrEngine,
    *,
    default_currency: str | None = None,
    prepare: Callable[[Path], Image.Image] = load_working_image,
    limit: int | None = None,
    progress: Callable[[ReceiptOutcome], None] | None = None,
) -> EvalReport:
    """Run OCR and extraction on every labelled image under ``images``; compare with ``labels``."""
    outcomes: list[ReceiptOutcome] = []
    for receipt_id, path, label in labelled_images(images, labels):
        if limit is not None and len(outcomes) >= limit:
            break
        image = prepare(path)
        started, cpu_started = time.perf_counter(), time.process_time()
        extracted = extract(engine.read(image), default_currency=default_currency)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        correct, got = score(label, extracted)
        expected = {name: str(label.get(name, "")) for name in FIELDS}
        outcome = ReceiptOutcome(receipt_id, correct, expected, got, seconds, cpu_seconds)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return EvalReport(tuple(outcomes))


def print_report(report: EvalReport, out: TextIO = sys.stdout, *, verbose: bool = False) -> None:
    """Misses (when verbose), per-field accuracy, then the summary line last."""
    if verbose:
        for outcome in report.outcomes:
            for name in FIELDS:
                if not outcome.correct[name]:
                    print(
                        f"miss {outcome.receipt_id} {name}: expected {outcome.expected[name]!r}"
                        f" got {outcome.got[name]!r}",
                        file=out,
                    )
    for name in FIELDS:
        hits = sum(outcome.correct[name] for outcome in report.outcomes)
        print(f"{name:8} {report.accuracy(name):.3f} ({hits}/{report.n})", file=out)
    print(f"cpu_seconds_per_receipt {report.cpu_seconds_per_receipt:.2f}", file=out)
    print(report.summary_line(), file=out)


def run(
    images: Path,
    labels: Path,
    *,
    default_currency: str | None = None,
    limit: int | None = None,
    verbose: bool = False,
    engine: OcrEngine | None = None,
    out: TextIO = sys.stdout,
) -> EvalReport:
    """What `seisan eval receipts` does: build the default engine, evaluate, print."""
    if engine is None:
        from seisan_intake.adapters.ocr_ppocr import PpOcrV5Engine

        engine = PpOcrV5Engine()
    engine.warm_up()  # model loading is not part of seconds_per_receipt
    try:
        report = evaluate(images, labels, engine, default_currency=default_currency, limit=limit)
    finally:
        engine.close()
    print_report(report, out, verbose=verbose)
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="receipt extraction accuracy")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--currency", default=None, help="when a receipt names none")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="print every miss")
    args = parser.parse_args(argv)
    report = run(
        args.images,
        args.labels,
        default_currency=args.currency,
        limit=args.limit,
        verbose=args.verbose,
    )
    return 0 if report.n else 1


if __name__ == "__main__":
    raise SystemExit(main())
