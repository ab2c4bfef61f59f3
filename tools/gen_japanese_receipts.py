"""Render synthetic Japanese receipts, photographed badly, with SROIE-style labels.

    .venv/bin/python tools/gen_japanese_receipts.py OUT_DIR [--count 30] [--seed 7]

writes ``OUT_DIR/images/JP<seed>-<n>.jpg`` and ``OUT_DIR/labels/JP<seed>-<n>.txt``
(JSON: company, date, address, total as printed, plus ``date_iso`` and
``currency`` so an evaluator need not re-parse the printed date). The same seed
gives the same files. Output is test data: never commit it.

A receipt is drawn the way a thermal printer prints it (IPAGothic or VL Gothic),
then photographed like a phone would: laid on a darker table, rotated a few
degrees, lit unevenly and dimmed, blurred, grainy and JPEG-compressed, at the
size the intake pipeline hands to OCR (long side about 1,800 px).

Needs a Japanese font: Debian ``fonts-ipafont-gothic`` or ``fonts-vlgothic``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf",
    "/usr/share/fonts/truetype/fonts-japanese-gothic.ttf",
    "/usr/share/fonts/truetype/vlgothic/VL-Gothic-Regular.ttf",
    "/usr/share/fonts/truetype/takao-gothic/TakaoGothic.ttf",
)

MERCHANTS = (
    "ファミリーマート 新宿西口店",
    "セブン-イレブン 渋谷道玄坂店",
    "ローソン 梅田二丁目店",
    "スターバックス コーヒー 春日井店",
    "株式会社 山田文具店",
    "居酒屋 はなまる 神田店",
    "ドトールコーヒーショップ 横浜駅前店",
    "マツモトキヨシ 池袋東口店",
    "ビックカメラ 有楽町店",
    "タクシー 日本交通",
    "カフェ ミモザ",
    "有限会社 佐藤商店",
)
ADDRESSES = (
    "東京都新宿区西新宿1-2-3",
    "東京都渋谷区道玄坂2-10-7",
    "大阪府大阪市北区梅田2-4-9",
    "愛知県春日井市鳥居松町5-45",
    "東京都千代田区神田須田町1-5",
    "神奈川県横浜市西区南幸1-1-1",
    "東京都豊島区南池袋1-28-2",
    "京都府京都市中京区三条通8",
)
ITEMS = (
    ("おにぎり 鮭", 150, True),
    ("緑茶 500ml", 140, True),
    ("ホットコーヒー M", 180, True),
    ("サンドイッチ", 320, True),
    ("カフェラテ トール", 450, True),
    ("ボールペン 黒", 220, False),
    ("ノート A5", 180, False),
    ("乾電池 単3 4本", 498, False),
    ("USBケーブル", 1280, False),
    ("生ビール 中", 550, False),
    ("枝豆", 380, False),
    ("唐揚げ", 680, False),
    ("クリアファイル", 110, False),
    ("のど飴", 248, True),
    ("タクシー運賃", 2860, False),
)
WEEKDAYS = "月火水木金土日"


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    label: dict[str, str]


def find_font() -> Path:
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit(
        "no Japanese font found: apt-get install -y fonts-ipafont-gothic (or fonts-vlgothic)"
    )


def invoice_number(rng: random.Random) -> str:
    body = "".join(str(rng.randrange(10)) for _ in range(12))
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(body), start=1))
    return f"T{9 - total % 9}{body}"


def yen(amount: int, rng: random.Random, style: int) -> str:
    text = f"{amount:,}"
    return (f"¥{text}", f"{text}円", f"￥{text}", f"¥{text}-")[style]


def printed_date(when: datetime, rng: random.Random) -> str:
    style = rng.randrange(4)
    weekday = WEEKDAYS[when.weekday()]
    if style == 0:
        return f"{when.year}年{when.month}月{when.day}日({weekday}) {when:%H:%M}"
    if style == 1:
        era_year = when.year - 2018
        year = "元" if era_year == 1 else str(era_year)
        return f"令和{year}年{when.month}月{when.day}日 {when:%H:%M}"
    if style == 2:
        return f"{when:%Y/%m/%d}({weekday}) {when:%H:%M}"
    return f"{when:%Y-%m-%d} {when:%H:%M:%S}"


def receipt_lines(rng: random.Random) -> tuple[list[tuple[str, str, int]], dict[str, str]]:
    """(left text, right text, size) rows and the label."""
    merchant = rng.choice(MERCHANTS)
    address = rng.choice(ADDRESSES)
    start = datetime(2019, 6, 1, 8, 0)
    when = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 365 * 7))
    when = when.replace(hour=rng.randrange(7, 23))
    date_text = printed_date(when, rng)
    style = rng.randrange(4)
    items = rng.sample(ITEMS, rng.randint(2, 6))
    quantities = [rng.choice((1, 1, 1, 2, 3)) for _ in items]
    subtotal = sum(price * qty for (_, price, _), qty in zip(items, quantities, strict=True))
    exclusive = rng.random() < 0.4  # 外税: tax added to the subtotal
    reduced = sum(p * q for (_, p, r), q in zip(items, quantities, strict=True) if r)
    standard = subtotal - reduced
    if exclusive:
        tax8, tax10 = reduced * 8 // 100, standard * 10 // 100
        total = subtotal + tax8 + tax10
    else:
        tax8, tax10 = reduced * 8 // 108, standard * 10 // 110
        total = subtotal
    rows: list[tuple[str, str, int]] = []
    if rng.random() < 0.35:
        rows.append(("領収書", "", 40))
    rows.append((merchant, "", 34))
    rows.append((address, "", 24))
    rows.append(
        (
            f"TEL {rng.choice(('03', '06', '052', '045'))}-{rng.randrange(1000, 9999)}"
            f"-{rng.randrange(1000, 9999)}",
            "",
            24,
        )
    )
    if rng.random() < 0.8:
        rows.append((f"登録番号 {invoice_number(rng)}", "", 24))
    rows.append((date_text, "", 26))
    rows.append((f"レジ{rng.randrange(1, 9):03d}  責No.{rng.randrange(1, 99):03d}", "", 22))
    rows.append(("-" * 32, "", 22))
    for (name, price, is_reduced), qty in zip(items, quantities, strict=True):
        mark = "※" if is_reduced else ""
        if qty > 1:
            rows.append((name, "", 26))
            rows.append((f"  {qty}個 × 単{price:,}", yen(price * qty, rng, style % 3) + mark, 26))
        else:
            rows.append((name, yen(price, rng, style % 3) + mark, 26))
    rows.append(("-" * 32, "", 22))
    rows.append(("小計", yen(subtotal, rng, style % 3), 26))
    if exclusive:
        if tax10:
            rows.append(("消費税等(10%)", yen(tax10, rng, style % 3), 26))
        if tax8:
            rows.append(("消費税等(8%)", yen(tax8, rng, style % 3), 26))
    total_text = yen(total, rng, style)
    rows.append(("合計", total_text, 34))
    if not exclusive:
        if standard:
            rows.append(
                (f"(10%対象 {yen(standard, rng, 0)}", f"内消費税 {yen(tax10, rng, 0)})", 22)
            )
        if reduced:
            rows.append((f"(8%対象 {yen(reduced, rng, 0)}", f"内消費税 {yen(tax8, rng, 0)})", 22))
    payment = rng.choice(("cash", "card", "electronic"))
    if payment == "cash":
        paid = ((total // 1000) + 1) * 1000 if rng.random() < 0.7 else total
        rows.append(("お預り", yen(paid, rng, style % 3), 26))
        rows.append(("お釣り", yen(paid - total, rng, style % 3), 26))
    elif payment == "card":
        brand = rng.choice(("VISA", "MASTER", "JCB", "AMEX"))
        last4 = f"{rng.randrange(10000):04d}"
        rows.append((f"クレジット {brand}", yen(total, rng, style % 3), 26))
        rows.append((f"カード番号 ************{last4}", "", 22))
    else:
        rows.append(
            (
                rng.choice(("交通系IC", "PayPay", "iD", "QUICPay", "楽天Edy")),
                yen(total, rng, style % 3),
                26,
            )
        )
        rows.append(("電子マネー支払", "", 22))
    if reduced:
        rows.append(("※印は軽減税率(8%)対象商品", "", 22))
    rows.append(("毎度ありがとうございます", "", 22))
    label = {
        "company": merchant,
        "date": date_text,
        "address": address,
        "total": total_text,
        "date_iso": when.date().isoformat(),
        "currency": "JPY",
        "payment": payment,
    }
    return rows, label


def draw_receipt(rows: list[tuple[str, str, int]], font_path: Path) -> Image.Image:
    width, margin, gap = 640, 28, 10
    fonts = {size: ImageFont.truetype(str(font_path), size) for _, _, size in rows}
    height = margin * 2 + sum(size + gap for _, _, size in rows)
    paper = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(paper)
    y = margin
    for left, right, size in rows:
        font = fonts[size]
        if size >= 34 and not right:  # titles and the merchant are centred
            text_w = draw.textlength(left, font=font)
            draw.text(((width - text_w) / 2, y), left, font=font, fill=20)
        else:
            draw.text((margin, y), left, font=font, fill=25)
        if right:
            right_w = draw.textlength(right, font=font)
            draw.text((width - margin - right_w, y), right, font=font, fill=25)
        y += size + gap
    return paper


def _perspective(image: Image.Image, rng: random.Random, fill: int) -> Image.Image:
    """A mild keystone, as when the phone is not held square over the receipt."""
    import numpy as np

    w, h = image.size
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    moved = [
        (x + rng.uniform(-0.04, 0.04) * w, y + rng.uniform(-0.03, 0.03) * h) for x, y in corners
    ]
    # Solve for the 8 coefficients mapping output (moved) points to input (corner) points.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(moved, corners, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    coefficients = np.linalg.solve(np.array(rows, dtype=float), np.array(rhs, dtype=float))
    return image.transform(
        image.size,
        Image.Transform.PERSPECTIVE,
        tuple(float(c) for c in coefficients),
        resample=Image.Resampling.BICUBIC,
        fillcolor=fill,
    )


def photograph(paper: Image.Image, rng: random.Random) -> Image.Image:
    """Lay the receipt on a table, tilt, dim, blur, add grain; long side ~1,800 px."""
    import numpy as np

    pad_x, pad_y = int(paper.width * rng.uniform(0.15, 0.35)), int(paper.height * 0.06)
    table_tone = rng.randrange(60, 140)
    canvas = Image.new("L", (paper.width + 2 * pad_x, paper.height + 2 * pad_y), table_tone)
    canvas.paste(paper, (pad_x, pad_y))
    long_side = rng.randrange(1700, 1950)
    ratio = long_side / max(canvas.size)
    canvas = canvas.resize(
        (int(canvas.width * ratio), int(canvas.height * ratio)), Image.Resampling.LANCZOS
    )
    canvas = canvas.rotate(
        rng.uniform(-6, 6), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=table_tone
    )
    canvas = _perspective(canvas, rng, table_tone)
    ratio = long_side / max(canvas.size)  # rotation grew the canvas: back to the working size
    canvas = canvas.resize(
        (int(canvas.width * ratio), int(canvas.height * ratio)), Image.Resampling.BICUBIC
    )
    noise_rng = np.random.default_rng(rng.randrange(2**32))
    pixels = np.asarray(canvas, dtype=np.float32)
    h, w = pixels.shape
    # Uneven light: a gradient from one side, then dimmed overall.
    angle = rng.uniform(0, 2 * np.pi)
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[np.newaxis, :]
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, np.newaxis]
    gradient = (np.cos(angle) * xx + np.sin(angle) * yy + 1) / 2
    light = rng.uniform(0.55, 0.85) * (1 - 0.3 * gradient)
    pixels = pixels * light + noise_rng.normal(0, rng.uniform(3, 9), pixels.shape).astype(
        np.float32
    )
    gray = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    gray = gray.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.3)))
    tint = (1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 0.97))  # warm indoor light
    return Image.merge("RGB", [gray.point(lambda v, t=t: int(v * t)) for t in tint])


def render(rng: random.Random, font_path: Path) -> Rendered:
    rows, label = receipt_lines(rng)
    return Rendered(photograph(draw_receipt(rows, font_path), rng), label)


def generate(out_dir: Path, count: int, seed: int) -> list[Path]:
    """Write ``count`` receipts and labels under ``out_dir``; return the image paths."""
    font_path = find_font()
    images, labels = out_dir / "images", out_dir / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    written = []
    for n in range(count):
        rng = random.Random(f"{seed}-{n}")
        receipt = render(rng, font_path)
        stem = f"JP{seed}-{n:03d}"
        path = images / f"{stem}.jpg"
        receipt.image.save(path, "JPEG", quality=rng.randrange(72, 90))
        (labels / f"{stem}.txt").write_text(
            json.dumps(receipt.label, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    written = generate(args.out_dir, args.count, args.seed)
    print(f"wrote {len(written)} receipts to {args.out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
