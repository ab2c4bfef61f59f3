"""The evaluation harness and the Japanese receipt generator, with a fake OCR engine."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from seisan_intake.adapters.ocr import OcrEngine
from seisan_intake.domain.extraction import OcrLine
from seisan_intake.entrypoints.eval import (
    evaluate,
    fold_company,
    label_amount,
    label_date,
    run,
)

REPO = Path(__file__).resolve().parents[2]


class ScriptedEngine(OcrEngine):
    """Returns the lines scripted for an image, recognised by its width."""

    def __init__(self, script: dict[int, list[str]]) -> None:
        self.script = script
        self.reads = 0

    def read(self, image: Image.Image) -> list[OcrLine]:
        self.reads += 1
        return [
            OcrLine(text, 0.95, (10.0, 10.0 + 30 * i, 300.0, 36.0 + 30 * i))
            for i, text in enumerate(self.script[image.width])
        ]


def write_set(root: Path, receipts: dict[str, tuple[int, dict[str, str]]]) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    for stem, (width, label) in receipts.items():
        Image.new("RGB", (width, 40), "white").save(images / f"{stem}.jpg")
        (labels / f"{stem}.txt").write_text(json.dumps(label), encoding="utf-8")
    (images / "notes.md").write_text("not an image")
    Image.new("RGB", (99, 40)).save(images / "unlabelled.png")
    return images, labels


def test_evaluate_scores_fields_and_prints_the_summary_last(tmp_path: Path) -> None:
    images, labels = write_set(
        tmp_path,
        {
            "A1": (
                101,
                {"company": "Soon  Huat Enterprise", "date": "11/01/2019", "total": "RM 327.00"},
            ),
            "B2": (
                102,
                {
                    "company": "ファミリーマート 新宿店",
                    "date": "令和6年5月12日",
                    "total": "¥1,100-",
                },
            ),
        },
    )
    engine = ScriptedEngine(
        {
            101: ["SOON HUAT ENTERPRISE", "Date: 11/01/2019", "TOTAL RM 327.00"],
            102: ["ローソン 新宿店", "令和6年5月12日 14:32", "合計 ¥1,100"],
        }
    )
    report = evaluate(images, labels, engine)
    assert engine.reads == 2 and report.n == 2
    assert report.accuracy("total") == 1.0
    assert report.accuracy("date") == 1.0
    assert report.accuracy("company") == 0.5
    out = io.StringIO()
    run(images, labels, engine=engine, out=out, verbose=True)
    printed = out.getvalue().splitlines()
    assert "miss B2 company: expected 'ファミリーマート 新宿店' got 'ローソン 新宿店'" in printed
    assert re.fullmatch(
        r"receipts: n=2 total=1\.000 date=1\.000 company=0\.500 seconds_per_receipt=\d+\.\d\d",
        printed[-1],
    )


def test_evaluate_limit_and_an_empty_set(tmp_path: Path) -> None:
    images, labels = write_set(
        tmp_path, {"A1": (101, {"company": "X", "date": "2024-01-01", "total": "1.00"})}
    )
    engine = ScriptedEngine({101: ["X"]})
    assert evaluate(images, labels, engine, limit=0).n == 0
    report = evaluate(images, labels, engine)
    assert report.accuracy("total") == 0.0  # no currency, no total
    assert evaluate(images, labels, engine, default_currency="USD").accuracy("total") == 0.0


@pytest.mark.parametrize(
    ("printed", "amount"),
    [
        ("9.00", Decimal("9.00")),
        ("$8.20", Decimal("8.20")),
        ("RM 1,234.50", Decimal("1234.50")),
        ("¥4,527-", Decimal("4527")),
        ("1,234円", Decimal("1234")),
        ("RM51.30", Decimal("51.30")),
        ("n/a", None),
    ],
)
def test_label_amounts(printed: str, amount: Decimal | None) -> None:
    assert label_amount(printed) == amount


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ({"date": "25/12/2018"}, date(2018, 12, 25)),
        ({"date": "05 MAR 2018"}, date(2018, 3, 5)),
        ({"date": "12/03/18"}, date(2018, 3, 12)),
        ({"date": "2016/05/01"}, date(2016, 5, 1)),
        ({"date": "令和6年5月12日 14:32", "date_iso": "2024-05-12"}, date(2024, 5, 12)),
        ({"date": "令和元年5月1日"}, date(2019, 5, 1)),
        ({"date": ""}, None),
    ],
)
def test_label_dates(label: dict[str, str], expected: date | None) -> None:
    assert label_date(label) == expected


def test_company_folding() -> None:
    assert fold_company("BENS INDEPENDENT GROCER SDN. BHD") == fold_company(
        "Bens Independent Grocer SDN.BHD"
    )
    assert fold_company("ファミリーマート　新宿店") == fold_company("ファミリーマート新宿店")
    assert fold_company("ＡＢＣ") == fold_company("abc")
    assert fold_company("ABC") != fold_company("ABD")


def _generator(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_japanese_receipts", REPO / "tools" / "gen_japanese_receipts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_generated_receipts_are_deterministic_and_labelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = _generator(monkeypatch)
    try:
        generator.find_font()
    except SystemExit as missing:
        pytest.skip(str(missing))
    first = generator.generate(tmp_path / "a", count=2, seed=11)
    second = generator.generate(tmp_path / "b", count=2, seed=11)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    other = generator.generate(tmp_path / "c", count=1, seed=12)
    assert other[0].read_bytes() != first[0].read_bytes()
    label = json.loads((tmp_path / "a" / "labels" / f"{first[0].stem}.txt").read_text("utf-8"))
    assert {"company", "date", "address", "total", "date_iso"} <= set(label)
    assert label_date(label) == date.fromisoformat(label["date_iso"])
    assert label_amount(label["total"]) is not None
    with Image.open(first[0]) as image:
        assert 1600 <= max(image.size) <= 2000  # the size the intake pipeline hands to OCR
