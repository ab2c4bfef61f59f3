"""The real PP-OCRv5 engine on real SROIE scans and on a generated Japanese receipt.

The engine loads once per session (about half a second); each read takes one
to three seconds on the 2-core machine. The SROIE scans come from
``../shared/data/sroie-dev`` beside the repository; tests skip, saying so, when
that folder or a Japanese font is missing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from seisan_intake.adapters.ocr_ppocr import PpOcrV5Engine, default_threads
from seisan_intake.domain.extraction import extract
from seisan_intake.entrypoints.eval import label_amount, label_date, load_working_image, score

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SROIE = REPO.parent / "shared" / "data" / "sroie-dev"
# Three scans from the development split: a legal name with a registration number, a
# restaurant without one, and a receipt whose date is printed "10 OCT 2017".
SROIE_IDS = ("X51005663278", "X51005711404", "X51006389963")


@pytest.fixture(scope="session")
def engine() -> Iterator[PpOcrV5Engine]:
    built = PpOcrV5Engine()
    built.warm_up()
    yield built
    built.close()


def _sroie(receipt_id: str) -> tuple[Path, dict[str, str]]:
    image = SROIE / "images" / f"{receipt_id}.jpg"
    label = SROIE / "labels" / f"{receipt_id}.txt"
    if not image.is_file() or not label.is_file():
        pytest.skip(f"SROIE sample {receipt_id} not found under {SROIE}")
    return image, json.loads(label.read_text(encoding="utf-8"))


@pytest.mark.parametrize("receipt_id", SROIE_IDS)
def test_sroie_scan_total_date_and_company(engine: PpOcrV5Engine, receipt_id: str) -> None:
    image, label = _sroie(receipt_id)
    lines = engine.read(load_working_image(image))
    assert len(lines) > 10
    assert all(0.0 <= line.confidence <= 1.0 for line in lines)
    extracted = extract(lines)
    correct, got = score(label, extracted)
    assert correct == {"total": True, "date": True, "company": True}, (label, got)
    assert extracted.currency is not None and extracted.currency.value == "MYR"


def _generator(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_japanese_receipts", REPO / "tools" / "gen_japanese_receipts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_generated_japanese_receipt(
    engine: PpOcrV5Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = _generator(monkeypatch)
    try:
        generator.find_font()
    except SystemExit as missing:
        pytest.skip(str(missing))
    (image_path,) = generator.generate(tmp_path, count=1, seed=7)
    label = json.loads((tmp_path / "labels" / f"{image_path.stem}.txt").read_text("utf-8"))
    extracted = extract(engine.read(load_working_image(image_path)))
    assert extracted.currency is not None and extracted.currency.value == "JPY"
    assert extracted.total is not None
    assert extracted.total.value == label_amount(label["total"])
    assert extracted.transaction_date is not None
    assert (
        extracted.transaction_date.value
        == label_date(label)
        == date.fromisoformat(label["date_iso"])
    )
    # Katakana survives OCR: the merchant's name is read, not dropped.
    assert extracted.merchant is not None and "ビックカメラ" in extracted.merchant.value


def test_engine_is_lazy_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    importing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, seisan_intake.adapters.ocr_ppocr as m; m.PpOcrV5Engine();"
            "assert 'onnxruntime' not in sys.modules, 'model runtime loaded at import'",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert importing.returncode == 0, importing.stderr
    image, _ = _sroie(SROIE_IDS[0])
    monkeypatch.chdir(tmp_path)
    fresh = PpOcrV5Engine()
    assert fresh.read(load_working_image(image))
    assert list(tmp_path.iterdir()) == []  # the wheel's ./cache is not written
    fresh.close()


def test_default_threads_fit_the_machine() -> None:
    assert 1 <= default_threads() <= 4
