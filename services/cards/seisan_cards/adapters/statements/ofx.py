"""OFX / QFX credit-card statements: OFX 1.x (SGML) and OFX 2.x (XML).

Only credit-card statements (``<CCSTMTRS>``) are imported. A bank
(``<STMTRS>``) or investment (``<INVSTMTRS>``) statement is refused with a
message saying so: its lines are transfers, cheques and fees of an account that
has no card, they would never match a receipt, and folding them into the card
liability would break the statement close check.

One tokenizer reads both versions: SGML leaves (``<TRNAMT>-5.50``) are closed
implicitly by the next tag; XML closing tags are accepted too; so are the
"XML header, SGML body" files some banks produce. Card credit statements sign
``TRNAMT`` from the account holder's side (a purchase is negative); the sign is
turned around so a charge is positive.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from seisan_cards.adapters.statements.common import (
    ChargeLine,
    assemble,
    clean_text,
    currency_from_alpha,
    line_of_offset,
    reject,
    shown,
)
from seisan_cards.adapters.statements.pan import last4_of_account, redact_pans
from seisan_cards.domain.charges import ParsedStatement, StatementFormat
from seisan_shared.money import Money, MoneyError, exponent, from_decimal

_TOKEN = re.compile(
    r"<!\[CDATA\[(?P<cdata>.*?)\]\]>"
    r"|<!--.*?-->"
    r"|<\?.*?\?>"
    r"|<(?P<close>/?)(?P<tag>[A-Za-z][A-Za-z0-9._]*)\s*>"
    r"|(?P<text>[^<]+)"
    r"|(?P<bad><)",
    re.S,
)
_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"']")
_OFX_DATE = re.compile(
    r"([0-9]{4})([0-9]{2})([0-9]{2})(?:[0-9]{0,6}(?:\.[0-9]{1,3})?)?(?:\s*\[[^\]]*\])?"
)
_SGML_HEADER = re.compile(rb"^\s*(ENCODING|CHARSET)\s*:\s*(\S+)\s*$", re.M)


@dataclass
class Node:
    tag: str
    line: int
    value: str | None = None
    children: list[Node] = field(default_factory=list)

    def child(self, tag: str) -> Node | None:
        return next((c for c in self.children if c.tag == tag), None)

    def all(self, tag: str) -> list[Node]:
        return [c for c in self.children if c.tag == tag]

    def text(self, tag: str) -> str:
        node = self.child(tag)
        return (node.value or "") if node is not None else ""

    def walk(self, tag: str) -> list[Node]:
        found = []
        for c in self.children:
            if c.tag == tag:
                found.append(c)
            found.extend(c.walk(tag))
        return found


def looks_like(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"OFXHEADER") or b"<?OFX" in head or b"<OFX>" in head.upper()


def parse(data: bytes) -> ParsedStatement:
    root = _tree(data)
    ofx = root.child("OFX")
    if ofx is None:
        raise reject("no <OFX> element: not an OFX file", line=1)
    statements = ofx.walk("CCSTMTRS")
    for other, what in (("STMTRS", "a bank account"), ("INVSTMTRS", "an investment account")):
        found = ofx.walk(other)
        if found:
            raise reject(
                f"the file holds {what} statement (<{other}>); only credit-card statements"
                " (<CCSTMTRS>) are imported: export the card account on its own",
                line=found[0].line,
                field=other,
            )
    if not statements:
        raise reject("no credit-card statement (<CCSTMTRS>) in the file", line=ofx.line)
    for response in ofx.walk("CCSTMTTRNRS"):
        _check_status(response)

    lines: list[ChargeLine] = []
    starts: list[date] = []
    ends: list[date] = []
    for statement in statements:
        lines.extend(_statement_lines(statement, starts, ends))
    period = (min(starts) if starts else None, max(ends) if ends else None)
    return assemble(StatementFormat.OFX, data, lines, period=period, id_field="FITID")


def _check_status(response: Node) -> None:
    status = response.child("STATUS")
    code = status.text("CODE").strip() if status else "0"
    if code not in ("0", ""):
        message = status.text("MESSAGE") if status else ""
        raise reject(
            f"the bank reported error {code} for this statement {shown(message)}",
            line=status.line if status else response.line,
            field="STATUS",
        )


def _statement_lines(statement: Node, starts: list[date], ends: list[date]) -> list[ChargeLine]:
    currency = currency_from_alpha(
        _required(statement, "CURDEF"), line=statement.line, field="CURDEF"
    )
    account = statement.child("CCACCTFROM")
    if account is None:
        raise reject("missing <CCACCTFROM>", line=statement.line, field="CCACCTFROM")
    acct_node = account.child("ACCTID")
    last4 = last4_of_account(account.text("ACCTID"))
    if last4 is None:
        raise reject(
            "the card account number does not end in four digits",
            line=acct_node.line if acct_node else account.line,
            field="ACCTID",
        )
    tranlist = statement.child("BANKTRANLIST")
    if tranlist is None:
        return []
    for tag, bucket in (("DTSTART", starts), ("DTEND", ends)):
        node = tranlist.child(tag)
        if node is not None and node.value:
            bucket.append(_date(node))
    return [_charge(tx, currency, last4) for tx in tranlist.all("STMTTRN")]


def _charge(tx: Node, currency: str, last4: str) -> ChargeLine:
    amount_node = _required_node(tx, "TRNAMT")
    trnamt = _decimal(amount_node)
    posted = _date(_required_node(tx, "DTPOSTED"))
    user = tx.child("DTUSER")
    transaction_date = _date(user) if user is not None and user.value else posted

    # Card statements sign TRNAMT from the account holder's side: purchases are negative.
    amount_currency = currency
    original: Money | None = None
    foreign = tx.child("CURRENCY")
    orig = tx.child("ORIGCURRENCY")
    if foreign is not None:
        # TRNAMT is in the foreign currency; CURRATE converts it to CURDEF.
        rate, foreign_currency = _rate(foreign)
        original = _money(-trnamt, foreign_currency, amount_node)
        amount = _money(_rounded(-trnamt * rate, currency), currency, amount_node)
    else:
        amount = _money(-trnamt, amount_currency, amount_node)
        if orig is not None:
            # TRNAMT is in CURDEF; the original amount is derived with the stated rate.
            rate, orig_currency = _rate(orig)
            if rate == 0:
                raise reject("CURRATE must not be zero", line=orig.line, field="CURRATE")
            original = _money(_rounded(-trnamt / rate, orig_currency), orig_currency, orig)
    if original is not None and original.currency == amount.currency:
        original = None

    fitid = tx.text("FITID").strip()
    merchant = tx.text("NAME") or _payee_name(tx) or tx.text("MEMO")
    sic = tx.text("SIC").strip()
    return ChargeLine(
        line=tx.line,
        feed_transaction_id=(
            f"{StatementFormat.OFX.value}:{last4}:{redact_pans(fitid)}" if fitid else ""
        ),
        card_last4=last4,
        cardholder="",
        transaction_date=transaction_date,
        posting_date=posted,
        merchant=clean_text(merchant),
        mcc=sic if re.fullmatch(r"[0-9]{4}", sic) else "",
        amount=amount,
        original_amount=original,
    )


def _payee_name(tx: Node) -> str:
    payee = tx.child("PAYEE")
    return payee.text("NAME") if payee is not None else ""


def _rate(node: Node) -> tuple[Decimal, str]:
    rate = _decimal(_required_node(node, "CURRATE"))
    currency = currency_from_alpha(_required(node, "CURSYM"), line=node.line, field="CURSYM")
    return rate, currency


def _rounded(value: Decimal, currency: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_EVEN)


def _money(value: Decimal, currency: str, node: Node) -> Money:
    try:
        return Money(from_decimal(value, currency), currency)
    except MoneyError as err:
        raise reject(str(err), line=node.line, field=node.tag) from None


def _decimal(node: Node) -> Decimal:
    raw = (node.value or "").strip()
    if not re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)", raw.replace(",", ".")):
        raise reject(f"{shown(raw)} is not an amount", line=node.line, field=node.tag)
    try:
        return Decimal(raw.replace(",", "."))
    except InvalidOperation:  # pragma: no cover - the pattern above admits only numbers
        raise reject(f"{shown(raw)} is not an amount", line=node.line, field=node.tag) from None


def _date(node: Node) -> date:
    """OFX datetime (YYYYMMDD[HHMMSS[.XXX]][[gmt offset:tz]]): the date as the bank wrote it."""
    raw = (node.value or "").strip()
    match = re.match(
        r"([0-9]{4})([0-9]{2})([0-9]{2})(?:[0-9]{0,6}(?:\.[0-9]{1,3})?)?(?:\s*\[[^\]]*\])?$", raw
    )
    if match:
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            pass
    raise reject(f"{shown(raw)} is not an OFX date", line=node.line, field=node.tag)


def _required_node(parent: Node, tag: str) -> Node:
    node = parent.child(tag)
    if node is None or not (node.value or "").strip():
        raise reject(f"<{tag}> is missing", line=parent.line, field=tag)
    return node


def _required(parent: Node, tag: str) -> str:
    return _required_node(parent, tag).value or ""


# --- tokenizer ---------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    head = data[: max(data.find(b"<OFX"), 0) or 1024]
    encoding = "utf-8"
    declared = _ENCODING.search(head)
    if declared:
        encoding = declared.group(1).decode("ascii")
    else:
        header = dict(
            (k.decode("ascii").upper(), v.decode("ascii", "replace").upper())
            for k, v in _SGML_HEADER.findall(head)
        )
        charset = header.get("CHARSET", "")
        if header.get("ENCODING") == "UTF-8":
            encoding = "utf-8"
        elif charset in ("1252", "WINDOWS-1252"):
            encoding = "cp1252"
        elif charset in ("ISO-8859-1", "8859-1", "LATIN-1"):
            encoding = "latin-1"
        elif header.get("ENCODING") == "USASCII":
            encoding = "cp1252" if charset not in ("", "NONE") else "ascii"
    try:
        return data.decode(encoding).lstrip("\ufeff")
    except LookupError:
        raise reject(f"unknown text encoding {encoding!r}", line=1, field="encoding") from None
    except UnicodeDecodeError as err:
        raise reject(
            f"not valid {encoding} text", line=line_of_offset(data, err.start), field="encoding"
        ) from None


def _tree(data: bytes) -> Node:
    text = _decode(data)
    start = text.upper().find("<OFX>")
    if start < 0:
        raise reject("no <OFX> element: not an OFX file", line=1)
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_at(offset: int) -> int:
        return bisect_right(newlines, offset - 1) + 1

    root = Node("#root", 1)
    stack = [root]
    last_leaf: str | None = None
    for match in _TOKEN.finditer(text, start):
        line = line_at(match.start())
        if match.group("bad") is not None:
            raise reject("stray '<' (not a tag)", line=line)
        tag = match.group("tag")
        if tag is not None:
            tag = tag.upper()
            if match.group("close"):
                if last_leaf == tag:
                    last_leaf = None
                    continue
                names = [n.tag for n in stack]
                if tag not in names[1:]:
                    raise reject(f"</{tag}> closes nothing", line=line, field=tag)
                while stack[-1].tag != tag:
                    stack.pop()
                stack.pop()
            else:
                node = Node(tag, line)
                stack[-1].children.append(node)
                stack.append(node)
            last_leaf = None
            continue
        value = match.group("cdata")
        if value is None:
            value = match.group("text")
            if value is None or not value.strip():
                continue
            value = html.unescape(value)
        top = stack[-1]
        if top is root or top.children or top.value is not None:
            raise reject(f"text {shown(value.strip())} outside an element", line=line)
        top.value = value.strip()
        stack.pop()
        last_leaf = top.tag
    if len(stack) > 1:
        open_node = stack[1]
        raise reject(
            f"<{open_node.tag}> opened on line {open_node.line} is never closed (truncated file?)",
            line=line_at(len(text)),
            field=open_node.tag,
        )
    return root
