"""The CLI's one table from gRPC status to exit code, and the --json shape of messages."""

from __future__ import annotations

import grpc
import pytest
import typer
from typer.testing import CliRunner

from seisan.cards.v1 import cards_pb2
from seisan.common.v1 import common_pb2
from seisan.receipts.v1 import receipts_pb2
from seisan_shared.cli import exitcodes
from seisan_shared.cli.context import CliError, require_token, rpc_failure
from seisan_shared.cli.output import enum_text, money_json, money_text, to_json


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (grpc.StatusCode.OK, 0),
        (grpc.StatusCode.NOT_FOUND, 3),
        (grpc.StatusCode.UNAUTHENTICATED, 4),
        (grpc.StatusCode.PERMISSION_DENIED, 4),
        (grpc.StatusCode.INVALID_ARGUMENT, 5),
        (grpc.StatusCode.OUT_OF_RANGE, 5),
        (grpc.StatusCode.UNAVAILABLE, 6),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 6),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 6),
        (grpc.StatusCode.FAILED_PRECONDITION, 7),
        (grpc.StatusCode.ALREADY_EXISTS, 7),
        (grpc.StatusCode.ABORTED, 7),
        (grpc.StatusCode.INTERNAL, 1),
        (grpc.StatusCode.UNKNOWN, 1),
        (grpc.StatusCode.UNIMPLEMENTED, 1),
        (grpc.StatusCode.CANCELLED, 1),
        (grpc.StatusCode.DATA_LOSS, 1),
    ],
)
def test_every_status_has_its_exit_code(status: grpc.StatusCode, code: int) -> None:
    assert exitcodes.exit_code_for(status) == code


def test_every_status_is_decided_and_codes_stay_in_range() -> None:
    listed = set(exitcodes.EXIT_BY_STATUS)
    for status in grpc.StatusCode:
        code = exitcodes.exit_code_for(status)
        assert 0 <= code <= 7
        assert status in listed or code == exitcodes.EXIT_FAILURE
    # The help epilog documents every code the table can produce.
    documented = {code for code, _ in exitcodes.EXIT_CODE_ROWS}
    assert set(exitcodes.EXIT_BY_STATUS.values()) | {1, 2} <= documented
    for code, _ in exitcodes.EXIT_CODE_ROWS:
        assert f"{code}  " in exitcodes.epilog()


class _Refused(grpc.RpcError):
    def __init__(self, status: grpc.StatusCode, details: str) -> None:
        self._status, self._details = status, details

    def code(self) -> grpc.StatusCode:
        return self._status

    def details(self) -> str:
        return self._details


def test_rpc_failure_uses_the_table_and_names_the_status() -> None:
    app = typer.Typer()

    @app.command()
    def boom(status: str) -> None:
        raise rpc_failure(_Refused(grpc.StatusCode[status], "no receipt r-1"), "show")

    runner = CliRunner()
    gone = runner.invoke(app, ["NOT_FOUND"])
    assert gone.exit_code == 3 and "show: NOT_FOUND: no receipt r-1" in gone.output
    down = runner.invoke(app, ["UNAVAILABLE"])
    assert down.exit_code == 6 and "seisan up" in down.output


def test_no_token_is_not_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEISAN_TOKEN", raising=False)
    with pytest.raises(CliError) as err:
        require_token(None)
    assert err.value.exit_code == exitcodes.EXIT_DENIED
    assert require_token("demo-aiko") == "demo-aiko"


def test_money_is_minor_units_currency_and_text() -> None:
    assert money_json(111200, "JPY") == {
        "amount_minor": 111200,
        "currency": "JPY",
        "formatted": "111,200 JPY",
    }
    assert money_text(-123456, "USD") == "-1,234.56 USD"
    assert money_text(5, "BHD") == "0.005 BHD"
    assert money_text(0, "") == "-"


def test_messages_become_the_stable_json_shape() -> None:
    charge = cards_pb2.CardCharge(
        charge_id="tx-1",
        amount=common_pb2.Money(minor_units=1112, currency="JPY"),
        transaction_date=common_pb2.Date(year=2026, month=11, day=2),
        status=cards_pb2.CHARGE_STATUS_DECLARED_MISSING,
    )
    data = to_json(charge)
    assert data["amount"] == {"amount_minor": 1112, "currency": "JPY", "formatted": "1,112 JPY"}
    assert data["transaction_date"] == "2026-11-02"
    assert data["status"] == "declared_missing"
    # Every field is present: unset messages are null, scalars their default.
    assert data["original_amount"] is None and data["posting_date"] is None
    assert data["mcc"] == "" and data["match_id"] == ""
    assert set(data) == {f.name for f in cards_pb2.CardCharge.DESCRIPTOR.fields}


def test_nested_repeated_and_64_bit_values() -> None:
    receipt = receipts_pb2.Receipt(receipt_id="r-1", review_reasons=["total unreadable"])
    receipt.fields.total.amount.minor_units = 2**40
    receipt.fields.total.amount.currency = "JPY"
    receipt.fields.total.confidence = 0.5
    data = to_json(receipt)
    assert data["fields"]["total"]["amount"]["amount_minor"] == 2**40  # a number, not a string
    assert data["fields"]["merchant"] is None
    assert data["review_reasons"] == ["total unreadable"]
    assert enum_text(receipts_pb2.ReceiptStatus.DESCRIPTOR, 99) == "99"
