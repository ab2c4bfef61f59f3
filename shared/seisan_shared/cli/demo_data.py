"""What `seisan demo` shows: the receipts it draws and the statement that pays for them."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from seisan.receipts.v1 import receipts_pb2

FONTS = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/truetype/vlgothic/VL-Gothic-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@dataclass(frozen=True)
class DemoReceipt:
    """One receipt the demo draws, and the card charge (if any) that paid for it."""

    key: str
    merchant: str
    merchant_latin: str  # when no Japanese font is installed
    descriptor: str  # as the card issuer prints the merchant
    yen: int
    day: date
    paid_with: int
    cardholder: str  # whose card was charged; "" when paid personally
    card_last4: str = ""
    lines: tuple[str, ...] = ()


def cast_of(today: date, rng: random.Random) -> list[DemoReceipt]:
    def yen(base: int) -> int:  # amounts differ between runs so reruns stay distinct
        return base + rng.randrange(0, 40)

    card = receipts_pb2.PAID_WITH_COMPANY_CARD
    return [
        DemoReceipt(
            "coffee", "BLUE BOTTLE COFFEE", "BLUE BOTTLE COFFEE", "SQ *BLUE BOTTLE COFFEE",
            yen(600), today - timedelta(days=3), card, "aiko", "4242",
            ("Latte", "VISA ****4242"),
        ),
        DemoReceipt(
            "taxi", "TOKYO TAXI CO.", "TOKYO TAXI CO.", "TOKYO TAXI CO",
            yen(900), today - timedelta(days=2), card, "aiko", "4242", ("Fare",),
        ),
        DemoReceipt(
            "colleague", "STARBUCKS COFFEE SHINJUKU", "STARBUCKS COFFEE SHINJUKU",
            "STARBUCKS SHINJUKU", yen(440), today - timedelta(days=2), card, "ben", "5555",
            ("Caffe Latte",),
        ),
        DemoReceipt(
            "personal", "有限会社 佐藤商店", "SATO SHOTEN", "",
            yen(700), today - timedelta(days=1), receipts_pb2.PAID_WITH_PERSONAL, "", "",
            ("ボールペン",),
        ),
    ]  # fmt: skip


def _font(size: int) -> tuple[Any, bool]:
    for path in FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size), "dejavu" not in path.lower()
    return ImageFont.load_default(size), False


def draw_receipt(r: DemoReceipt, run_no: int) -> bytes:
    """A clean thermal-printer-like receipt as a JPEG: merchant, date, items, total."""
    font, japanese = _font(34)
    merchant = r.merchant if japanese else r.merchant_latin
    item = r.lines[0] if japanese or r.lines[0].isascii() else "Item"
    lines = [merchant, f"{r.day:%Y-%m-%d} 12:{run_no % 60:02d}", f"No. {run_no}"]
    lines += [f"{item}   ¥{r.yen}", f"TOTAL   ¥{r.yen}"]
    lines += [x for x in r.lines[1:]]
    image = Image.new("RGB", (760, 80 + 60 * len(lines)), "white")
    pen = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        pen.text((40, 40 + 60 * i), text, fill="black", font=font)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def statement_csv(receipts: list[DemoReceipt], missing_yen: int, today: date, run_no: int) -> str:
    """The month's generic-CSV statement: one line per card receipt, and one with no receipt."""
    rows = ["charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
            "currency,original_amount,original_currency"]  # fmt: skip
    for n, r in enumerate((r for r in receipts if r.cardholder), start=1):
        posted = r.day + timedelta(days=1)
        rows.append(
            f"demo-{run_no}-{n},{r.card_last4},{r.cardholder},{r.day},{posted},"
            f'"{r.descriptor}",5814,{r.yen},JPY,,'
        )
    day = today - timedelta(days=4)
    rows.append(
        f"demo-{run_no}-9,4242,aiko,{day},{day + timedelta(days=1)},"
        f'"AMAZON.CO.JP",5942,{missing_yen},JPY,,'
    )
    return "\n".join(rows) + "\n"
