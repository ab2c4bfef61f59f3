"""The web app's pure parts: amounts, languages, sessions, charts, and the live feed's fan-out."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from seisan.receipts.v1 import events_pb2, receipts_pb2
from seisan_gateway.adapters.feed import ReceiptChange, ReceiptFeed, decode
from seisan_gateway.domain import charts, display, i18n
from seisan_gateway.domain.sessions import SessionStore
from seisan_shared.events import new_event


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (1112, "JPY", "¥1,112"),
        (1059, "USD", "$10.59"),
        (-350, "USD", "-$3.50"),
        (1590, "MYR", "RM 15.90"),
        (12345, "BHD", "12.345 BHD"),
        (123456789, "JPY", "¥123,456,789"),
        (100000000, "EUR", "€1,000,000.00"),
        (5, "USD", "$0.05"),
        (0, "JPY", "¥0"),
    ],
)
def test_amounts_follow_each_currencys_digits(minor: int, currency: str, shown: str) -> None:
    assert display.money(minor, currency) == shown


def test_an_unknown_currency_prints_its_units_and_code() -> None:
    assert display.money(12, "XYZ") == "12 XYZ"
    assert display.money(12, "") == ""


@pytest.mark.parametrize(
    ("cookie", "accept", "chosen"),
    [
        ("ja", "en", "ja"),
        ("en", "ja", "en"),
        (None, "ja,en;q=0.5", "ja"),
        (None, "en-US,ja;q=0.9", "en"),
        (None, "fr-FR, ja;q=0.1", "ja"),
        (None, "fr", "en"),
        (None, None, "en"),
        ("xx", "ja-JP", "ja"),
        (None, "ja;q=bogus, en;q=0.2", "en"),
    ],
)
def test_language_cookie_then_accept_language(
    cookie: str | None, accept: str | None, chosen: str
) -> None:
    assert i18n.negotiate(cookie, accept) == chosen


def test_translation_falls_back_to_english_and_fills_values() -> None:
    assert i18n.translate("ja", "Sign in") == "サインイン"
    assert i18n.translate("ja", "Signed in as {name}", name="aiko") == "aiko としてサインイン中"
    assert i18n.translate("ja", "no such text") == "no such text"
    assert i18n.translate("en", "Sign in") == "Sign in"


def test_every_status_word_has_a_japanese_form() -> None:
    for enum, prefix in ((receipts_pb2.ReceiptStatus, "RECEIPT_STATUS_"),):
        for name in enum.keys():
            word = name.removeprefix(prefix).lower().replace("_", " ")
            if word != "unspecified":
                assert word in i18n.JA, word


def test_sessions_expire_when_idle_and_check_csrf() -> None:
    now = [0.0]
    store = SessionStore(idle_seconds=60, clock=lambda: now[0])
    session = store.create("aiko", frozenset({"staff"}), "demo-aiko")
    assert store.get(session.session_id) is session
    assert session.csrf_ok(session.csrf_token)
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok("x")
    now[0] = 59
    assert store.get(session.session_id) is session  # activity keeps it alive
    now[0] = 59 + 61
    assert store.get(session.session_id) is None
    other = store.create("ben", frozenset({"staff"}), "demo-ben")
    assert other.session_id != session.session_id and other.csrf_token != session.csrf_token
    store.end(other.session_id)
    assert store.get(other.session_id) is None and len(store) == 0


def test_age_buckets_count_every_missing_receipt_once() -> None:
    today = date(2026, 11, 30)
    days = [
        date(2026, 11, 30),
        date(2026, 11, 23),
        date(2026, 11, 22),
        date(2026, 10, 31),
        date(2026, 10, 1),
        date(2026, 9, 30),
        date(2025, 1, 1),
        date(2026, 12, 5),
    ]
    buckets = dict(charts.age_buckets(days, today))
    assert buckets == {"0–7": 3, "8–14": 1, "15–30": 1, "31–60": 1, "61+": 2}
    assert sum(buckets.values()) == len(days)


def test_charts_escape_labels_and_scale_to_the_largest_value() -> None:
    svg = charts.horizontal_bars(
        [charts.Bar("<script>", 100, "¥100"), charts.Bar("b & c", 50, "¥50")], title="t"
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "b &amp; c" in svg
    assert 'width="360"' in svg and 'width="180"' in svg  # plot width 360: 100 full, 50 half
    line = charts.ratio_line(
        [charts.Point("a", 0.5, "50%"), charts.Point("b", 1.0, "100%")], title="r"
    )
    assert line.count("<circle") == 2 and "<polyline" in line


@pytest.mark.parametrize(
    ("mcc", "category"),
    [
        ("5814", "meals"),
        ("4121", "travel"),
        ("7011", "lodging"),
        ("5943", "supplies"),
        ("5999", "other"),
        ("", "other"),
        ("abcd", "other"),
    ],
)
def test_merchant_category_codes_become_expense_categories(mcc: str, category: str) -> None:
    assert charts.category_of_mcc(mcc) == category


def _event(kind: str, payload: object) -> bytes:
    return new_event(kind, source="intake", aggregate_id="r1", payload=payload).SerializeToString()  # type: ignore[arg-type]


def test_the_feed_decodes_receipt_events_and_ignores_the_rest() -> None:
    extracted = decode(
        _event("receipt.extracted", events_pb2.ReceiptExtracted(receipt_id="r1", submitter="aiko"))
    )
    assert extracted == ReceiptChange(
        "r1", "aiko", "receipt.extracted", receipts_pb2.RECEIPT_STATUS_EXTRACTED
    )
    requested = events_pb2.ReceiptRequested()
    assert decode(_event("receipt.requested", requested)) is None
    assert decode(b"\xff\x00 not protobuf") is None


async def test_the_feed_delivers_only_to_the_receipts_owner() -> None:
    feed = ReceiptFeed()
    with feed.listen("aiko") as aiko, feed.listen("ben") as ben:
        feed.deliver(ReceiptChange("r1", "aiko", "receipt.extracted", 2))
        assert (await asyncio.wait_for(aiko.get(), 1)).receipt_id == "r1"
        assert ben.empty()
        for n in range(500):  # a stalled browser: the queue is bounded, nothing raises
            feed.deliver(ReceiptChange(f"r{n}", "ben", "receipt.captured", 1))
        assert ben.qsize() == 100
    assert feed.listeners() == 0


def test_every_text_the_pages_show_has_a_japanese_form() -> None:
    import re
    from pathlib import Path

    from seisan_gateway.entrypoints import labels, web

    package = Path(web.__file__).resolve().parents[1]
    shown: set[str] = set(labels.MESSAGES.values())
    for source in [*package.rglob("*.html"), *package.rglob("*.py")]:
        shown |= set(re.findall(r"""\bt\(\s*["']([^"']+)["']""", source.read_text()))
    shown |= {text for _, text in web._nav(_everyone())}
    assert len(shown) > 80
    assert sorted(text for text in shown if text not in i18n.JA) == []


def _everyone():  # type: ignore[no-untyped-def]
    return SessionStore(60).create("emi", frozenset({"staff", "approver", "treasury"}), "t")
