"""Damaged files: every cut and every corrupted byte either still parses into a whole,
consistent statement or is refused with StatementRejected — never another exception,
never a partial result, and never a card number in the message."""

import random
from pathlib import Path

import pytest

from seisan_cards.adapters.statements import parse_statement
from seisan_cards.adapters.statements.pan import find_pans
from seisan_cards.domain.charges import ParsedStatement, StatementRejected, statement_total

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "statements"
SAMPLES = [
    "corporate-card/vcf/p1/data",
    "corporate-card/vcf/p4/data",
    "corporate-card/cdf/p2/data",
    "corporate-card/amex/p1/data",
    "corporate-card/s3df/p1/data",
    "ofx/ofxparse__anzcc.ofx",
]
CSV = (
    b"charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
    b"currency,original_amount,original_currency\n"
    b"a,4111111111111111,Sato,2026-01-01,2026-01-02,SQ *CAFE,5812,10.59,USD,1600,JPY\n"
    b'b,1111,"Ito, K",2026-01-03,,"AMZN Mktp",,-3.00,USD,,\n'
)
PANS_IN_SAMPLES = {"2344534566756756", "12345678910111213", "012345678910113", "4111111111111111"}


def _inputs() -> list[tuple[str, bytes]]:
    found = [("generic.csv", CSV)]
    for name in SAMPLES:
        path = DATA / name
        if path.exists():
            found.append((name, path.read_bytes()))
    return found


def _check(data: bytes) -> None:
    try:
        statement = parse_statement(data, None)
    except StatementRejected as err:
        message = str(err)
        assert find_pans(message) == []
        assert not any(pan in message for pan in PANS_IN_SAMPLES)
        return
    assert isinstance(statement, ParsedStatement)
    assert dict(statement.total) == statement_total(statement.charges)
    assert find_pans(repr(statement)) == []


@pytest.mark.parametrize(("name", "data"), _inputs(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_cut_parses_whole_or_is_refused(name, data):
    step = max(1, len(data) // 150)
    for end in range(0, len(data), step):
        _check(data[:end])


@pytest.mark.parametrize(("name", "data"), _inputs(), ids=lambda v: v if isinstance(v, str) else "")
def test_corrupted_bytes_parse_whole_or_are_refused(name, data):
    rng = random.Random(f"seisan-{name}")
    alphabet = b"0123456789 \t\n<>/&;\"',.-+*abcXYZ\xff\xc3"
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(len(damaged))] = rng.choice(alphabet)
        _check(bytes(damaged))
