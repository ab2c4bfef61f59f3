"""Charts as inline SVG, drawn on the server: no script, no CDN, readable without JavaScript.

Each function takes plain numbers and labels and returns one ``<svg>`` element
(text escaped) with a ``<title>`` per mark, so hovering a bar or point says
exactly what it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

WIDTH = 640
BAR_HEIGHT = 26
PALETTE = ("#2f6fb3", "#d9822b", "#3a9a5b", "#b8405e", "#7b5ea7", "#5b8c99")


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    # What to print at the end of the bar (a formatted amount, a count).
    text: str


@dataclass(frozen=True)
class Point:
    label: str
    # 0..1
    ratio: float
    text: str


def horizontal_bars(bars: Sequence[Bar], *, title: str, colour: int = 0) -> str:
    """One bar per item, longest = full width; labels on the left, values on the right."""
    label_w, value_w = 170, 110
    plot_w = WIDTH - label_w - value_w
    height = max(1, len(bars)) * BAR_HEIGHT + 10
    top = max((b.value for b in bars), default=0) or 1
    fill = PALETTE[colour % len(PALETTE)]
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = 5 + i * BAR_HEIGHT
        width = round(plot_w * max(bar.value, 0) / top)
        parts.append(
            f"<g><title>{escape(bar.label)}: {escape(bar.text)}</title>"
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(bar.label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(width, 1)}" height="{BAR_HEIGHT - 8}" '
            f'fill="{fill}" rx="2"/>'
            f'<text x="{label_w + width + 6}" y="{y + 17}">{escape(bar.text)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def ratio_line(points: Sequence[Point], *, title: str) -> str:
    """Points in order (oldest first) on a 0–100 % scale, joined by a line."""
    height, left, right, top_pad, bottom = 260, 44, 16, 14, 56
    plot_w, plot_h = WIDTH - left - right, height - top_pad - bottom
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for pct in (0, 25, 50, 75, 100):
        y = top_pad + plot_h * (1 - pct / 100)
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{pct}%</text>'
        )
    n = len(points)
    coords = []
    for i, point in enumerate(points):
        x = left + (plot_w * (i + 0.5) / n if n else 0)
        y = top_pad + plot_h * (1 - min(max(point.ratio, 0.0), 1.0))
        coords.append((x, y, point))
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>'
        )
    for x, y, point in coords:
        parts.append(
            f"<g><title>{escape(point.label)}: {escape(point.text)}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{PALETTE[0]}"/>'
            f'<text x="{x:.1f}" y="{height - bottom + 18}" text-anchor="middle" '
            f'class="tick">{escape(point.label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


# Age buckets of a missing receipt, in days since the charge.
AGE_BUCKETS: tuple[tuple[int, int | None], ...] = ((0, 7), (8, 14), (15, 30), (31, 60), (61, None))


def age_buckets(transaction_dates: Sequence[date], today: date) -> list[tuple[str, int]]:
    """How many charges fall in each age bucket ('0–7', '8–14', …, '61+'), all buckets shown."""
    counts = [0] * len(AGE_BUCKETS)
    for day in transaction_dates:
        age = (today - day).days
        for i, (low, high) in enumerate(AGE_BUCKETS):
            if age >= low and (high is None or age <= high):
                counts[i] += 1
                break
        else:
            counts[0] += 1  # a date in the future counts as new
    labels = [f"{low}–{high}" if high is not None else f"{low}+" for low, high in AGE_BUCKETS]
    return list(zip(labels, counts, strict=True))


# ISO 18245 merchant category codes → the expense categories people use.
_MCC_CATEGORIES: tuple[tuple[str, tuple[range, ...]], ...] = (
    ("meals", (range(5811, 5815),)),
    (
        "travel",
        (
            range(3000, 3300),
            range(4011, 4012),
            range(4111, 4132),
            range(4411, 4412),
            range(4511, 4512),
            range(4582, 4583),
            range(4722, 4723),
            range(4784, 4785),
            range(4789, 4790),
            range(5541, 5543),
            range(7512, 7513),
            range(7523, 7524),
        ),
    ),
    ("lodging", (range(3501, 3840), range(7011, 7012))),
    (
        "supplies",
        (
            range(5111, 5112),
            range(5943, 5944),
            range(5942, 5943),
            range(5044, 5045),
            range(5045, 5046),
            range(5732, 5735),
            range(5200, 5201),
            range(5251, 5252),
        ),
    ),
)


def category_of_mcc(mcc: str) -> str:
    """'5814' → 'meals'; unknown or empty → 'other'."""
    if not mcc.isdigit():
        return "other"
    code = int(mcc)
    for name, ranges in _MCC_CATEGORIES:
        if any(code in r for r in ranges):
            return name
    return "other"
