"""Card statement import: bytes in, a whole ParsedStatement out, or StatementRejected.

``parse_statement(data, fmt)`` reads the generic CSV, OFX/QFX credit-card
statements, Visa VCF 4.0, Mastercard CDF 3.0, Diners S3DF and American Express
GL1025. With ``fmt=None`` the format is recognised from the content. Parsing
is all-or-nothing: no partial list of charges ever comes back. Card numbers are
reduced to their last four digits and redacted from every text field and error
message. Stripe Issuing charges arrive by webhook instead: see
:mod:`seisan_cards.adapters.statements.stripe_issuing`.
"""

from __future__ import annotations

from seisan_cards.adapters.statements import (
    amex_gl1025,
    generic_csv,
    mastercard_cdf,
    ofx,
    visa_vcf,
)
from seisan_cards.adapters.statements.common import decode_utf8_or_latin1, reject
from seisan_cards.domain.charges import ParsedStatement, StatementFormat, StatementRejected

__all__ = [
    "ParsedStatement",
    "StatementFormat",
    "StatementRejected",
    "detect_format",
    "parse_statement",
]

_PARSERS = {
    StatementFormat.GENERIC_CSV: generic_csv.parse,
    StatementFormat.OFX: ofx.parse,
    StatementFormat.VISA_VCF: visa_vcf.parse,
    StatementFormat.MASTERCARD_CDF: mastercard_cdf.parse,
    StatementFormat.DINERS_S3DF: mastercard_cdf.parse,
    StatementFormat.AMEX_GL1025: amex_gl1025.parse,
}

FILE_FORMATS = tuple(_PARSERS)


def detect_format(data: bytes) -> StatementFormat:
    """The statement format of ``data``, recognised from its first bytes."""
    if not data.strip():
        raise reject("the file is empty", line=1)
    xml_format = mastercard_cdf.looks_like(data)
    if xml_format is not None:
        return xml_format
    if ofx.looks_like(data):
        return StatementFormat.OFX
    head = decode_utf8_or_latin1(data[:65536])
    if amex_gl1025.looks_like(data[:4096].decode("latin-1")):
        return StatementFormat.AMEX_GL1025
    if visa_vcf.looks_like(head):
        return StatementFormat.VISA_VCF
    if generic_csv.looks_like(head):
        return StatementFormat.GENERIC_CSV
    raise reject(
        "unrecognised statement format; expected the generic CSV (with its header row),"
        " OFX/QFX, Visa VCF 4.0, Mastercard CDF 3.0, Diners S3DF or American Express GL1025",
        line=1,
    )


def parse_statement(data: bytes, fmt: StatementFormat | None = None) -> ParsedStatement:
    """Parse a whole statement file; raise StatementRejected naming line and field if it is bad."""
    if fmt is None:
        fmt = detect_format(data)
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise reject(f"{fmt.value} is not a file format; its charges arrive by webhook")
    statement = parser(data)
    if statement.format != fmt:
        raise reject(
            f"the file is a {statement.format.value} file, not {fmt.value}", line=1, field="format"
        )
    return statement
