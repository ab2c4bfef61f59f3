"""Matching at import and the decisions people take on it, over real gRPC (SQLite, PostgreSQL).

Receipts reach the service as intake publishes them (through the consumer's handler);
a statement import then auto-confirms, suggests or leaves open. Confirm, reject, manual
match, unmatch and declare are checked with their role rules from both sides, their
events and audit records in the outbox, and the close check after each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

import grpc
import pytest

from seisan.cards.v1 import cards_pb2
from seisan.common.v1.common_pb2 import Date
from seisan_shared import subjects
from seisan_shared.storage import Database
from support.cards import CardsHarness, csv_statement, running_cards

STATEMENT = csv_statement(
    "tx-1,4242,aiko,2026-11-02,2026-11-03,SQ *BLUE BOTTLE,5814,1112,JPY,,",
    "tx-2,4242,aiko,2026-11-10,2026-11-11,STARBUCKS 1234,5814,480,JPY,,",
    "tx-3,4242,aiko,2026-11-14,2026-11-15,HOTEL OKURA,7011,30000,JPY,,",
    "tx-4,1111,ben,2026-11-07,2026-11-08,AMZN Mktp JP,5942,3980,JPY,,",
    "tx-5,1111,ben,2026-11-09,2026-11-09,JR EAST,4111,2500,JPY,,",
    "tx-6,4242,aiko,2026-11-20,2026-11-21,TOKYO MK TAXI,4121,3200,JPY,,",
    "tx-7,1111,ben,2026-11-21,2026-11-22,UNIQLO GINZA,5651,-500,JPY,,",
)


@dataclass
class Reconciled:
    cards: CardsHarness
    statement_id: str

    async def charges(self, token: str = "t-daichi", **request: object) -> dict[str, object]:
        reply = await self.cards.stub(token).ListCharges(
            cards_pb2.ListChargesRequest(**request)  # type: ignore[arg-type]
        )
        return {c.charge_id: c for c in reply.charges}

    async def status(self, charge_id: str) -> int:
        charge = (await self.charges())[charge_id]
        return charge.status  # type: ignore[attr-defined,no-any-return]

    async def match_of(self, charge_id: str) -> cards_pb2.Match:
        reply = await self.cards.stub("t-daichi").ListCharges(cards_pb2.ListChargesRequest())
        wanted = next(c.match_id for c in reply.charges if c.charge_id == charge_id)
        return next(m for m in reply.matches if m.match_id == wanted)

    async def closes(self) -> None:
        report = await self.cards.report(statement_id=self.statement_id)
        (entry,) = report.statements
        check = entry.close_check
        assert check.balanced and check.difference.minor_units == 0
        assert check.statement_total.minor_units == 1112 + 480 + 30000 + 3980 + 2500 + 3200 - 500


@pytest.fixture
async def reconciled(database: Database) -> AsyncIterator[Reconciled]:
    async with running_cards(database) as cards:
        await cards.receipt(
            "r1", "aiko", merchant="Blue Bottle Coffee", day=date(2026, 11, 2), total=1112
        )
        await cards.receipt(
            "r5", "ben", merchant="Starbucks Coffee", day=date(2026, 11, 10), total=480
        )
        await cards.receipt(
            "r7a", "aiko", merchant="Hotel Okura", day=date(2026, 11, 14), total=18000
        )
        await cards.receipt(
            "r7b", "aiko", merchant="Hotel Okura", day=date(2026, 11, 14), total=12000
        )
        await cards.receipt("r3", "ben", merchant="Amazon.co.jp", day=date(2026, 11, 6), total=3980)
        await cards.receipt("r9", "aiko", merchant="Lawson", day=date(2026, 11, 25), total=700)
        reply = await cards.import_file("t-daichi", STATEMENT, filename="nov.csv")
        yield Reconciled(cards, reply.statement.statement_id)


async def test_import_auto_confirms_suggests_and_leaves_open(reconciled: Reconciled):
    cards = reconciled.cards
    charges = await reconciled.charges()
    status = {cid: c.status for cid, c in charges.items()}  # type: ignore[attr-defined]
    assert status == {
        "tx-1": cards_pb2.CHARGE_STATUS_MATCHED,
        "tx-2": cards_pb2.CHARGE_STATUS_SUGGESTED,  # receipt submitted by someone else
        "tx-3": cards_pb2.CHARGE_STATUS_MATCHED,  # two receipts summing to the hotel bill
        "tx-4": cards_pb2.CHARGE_STATUS_MATCHED,
        "tx-5": cards_pb2.CHARGE_STATUS_UNMATCHED,
        "tx-6": cards_pb2.CHARGE_STATUS_UNMATCHED,
        "tx-7": cards_pb2.CHARGE_STATUS_UNMATCHED,
    }
    confirmed = await cards.payloads(subjects.MATCH_CONFIRMED)
    proposed = await cards.payloads(subjects.MATCH_PROPOSED)
    assert sorted(tuple(p.match.charge_ids) for p in confirmed) == [("tx-1",), ("tx-3",), ("tx-4",)]
    assert all(
        p.match.automatic and p.match.status == cards_pb2.MATCH_STATUS_CONFIRMED for p in confirmed
    )
    split = next(p.match for p in confirmed if list(p.match.charge_ids) == ["tx-3"])
    assert sorted(split.receipt_ids) == ["r7a", "r7b"]
    (suggestion,) = [p.match for p in proposed]
    assert list(suggestion.receipt_ids) == ["r5"]
    assert suggestion.status == cards_pb2.MATCH_STATUS_SUGGESTED
    assert suggestion.threshold_version
    assert {s.signal for s in suggestion.breakdown} >= {
        cards_pb2.MATCH_SIGNAL_AMOUNT,
        cards_pb2.MATCH_SIGNAL_MERCHANT,
        cards_pb2.MATCH_SIGNAL_DATE,
        cards_pb2.MATCH_SIGNAL_SUBMITTER,
    }
    submitter = next(
        s for s in suggestion.breakdown if s.signal == cards_pb2.MATCH_SIGNAL_SUBMITTER
    )
    assert submitter.score == 0.0 and "ben" in submitter.reason
    assert any("exact" in r for r in suggestion.reasons)
    # Automatic confirmations are decisions too: audited, by the engine.
    audits = [
        p for p in await cards.payloads(subjects.AUDIT_RECORDED) if p.action == "match.auto_confirm"
    ]
    assert len(audits) == 3 and all(a.actor.startswith("engine:") for a in audits)
    await reconciled.closes()

    report = await cards.report(statement_id=reconciled.statement_id)
    (entry,) = report.statements
    t = entry.totals
    assert (t.matched_count, t.matched_amount.minor_units) == (3, 1112 + 30000 + 3980)
    assert (t.suggested_count, t.suggested_amount.minor_units) == (1, 480)
    assert (t.unmatched_count, t.unmatched_amount.minor_units) == (3, 2500 + 3200 - 500)
    holders = {h.cardholder: h.totals[0] for h in report.cardholders}
    assert set(holders) == {"aiko", "ben"}
    assert holders["aiko"].unmatched_count == 1 and holders["ben"].matched_count == 1


async def test_confirm_is_treasury_only_and_final(reconciled: Reconciled):
    cards = reconciled.cards
    suggestion = await reconciled.match_of("tx-2")
    for token in ("t-aiko", "t-ben", "t-chika"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await cards.stub(token).ConfirmMatch(
                cards_pb2.ConfirmMatchRequest(match_id=suggestion.match_id)
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await reconciled.status("tx-2") == cards_pb2.CHARGE_STATUS_SUGGESTED

    reply = await cards.stub("t-daichi").ConfirmMatch(
        cards_pb2.ConfirmMatchRequest(match_id=suggestion.match_id)
    )
    assert reply.match.status == cards_pb2.MATCH_STATUS_CONFIRMED
    assert reply.match.decided_by == "daichi" and not reply.match.automatic
    assert await reconciled.status("tx-2") == cards_pb2.CHARGE_STATUS_MATCHED
    confirmed = [p.match for p in await cards.payloads(subjects.MATCH_CONFIRMED)]
    assert any(m.match_id == suggestion.match_id and m.decided_by == "daichi" for m in confirmed)
    audit = [
        p for p in await cards.payloads(subjects.AUDIT_RECORDED) if p.action == "match.confirm"
    ]
    assert (
        len(audit) == 1 and audit[0].actor == "daichi" and audit[0].entity_id == suggestion.match_id
    )
    assert '"proposed"' in audit[0].before_json and '"confirmed"' in audit[0].after_json

    for call, request in (
        (
            cards.stub("t-daichi").ConfirmMatch,
            cards_pb2.ConfirmMatchRequest(match_id=suggestion.match_id),
        ),
        (
            cards.stub("t-daichi").RejectMatch,
            cards_pb2.RejectMatchRequest(match_id=suggestion.match_id),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request)  # type: ignore[operator]
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub("t-daichi").ConfirmMatch(cards_pb2.ConfirmMatchRequest(match_id="mt_nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await reconciled.closes()


async def test_a_rejected_pair_is_never_proposed_again(reconciled: Reconciled):
    cards = reconciled.cards
    suggestion = await reconciled.match_of("tx-2")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub("t-aiko").RejectMatch(
            cards_pb2.RejectMatchRequest(match_id=suggestion.match_id, reason="mine")
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    reply = await cards.stub("t-daichi").RejectMatch(
        cards_pb2.RejectMatchRequest(match_id=suggestion.match_id, reason="ben's own coffee")
    )
    assert reply.match.status == cards_pb2.MATCH_STATUS_REJECTED
    assert reply.match.decision_reason == "ben's own coffee"
    assert await reconciled.status("tx-2") == cards_pb2.CHARGE_STATUS_UNMATCHED
    (rejected,) = [p.match for p in await cards.payloads(subjects.MATCH_REJECTED)]
    assert rejected.match_id == suggestion.match_id
    assert rejected.breakdown and rejected.threshold_version == suggestion.threshold_version
    proposals_before = len(await cards.outbox_events(subjects.MATCH_PROPOSED))

    # The same receipt corrected (a new event) still never pairs with tx-2 again...
    await cards.feed(
        await cards.receipt_event(
            subjects.RECEIPT_CORRECTED,
            "r5",
            "ben",
            merchant="Starbucks",
            day=date(2026, 11, 10),
            total=480,
        )
    )
    # ...nor does a re-import of a statement carrying the charge.
    again = csv_statement("tx-2,4242,aiko,2026-11-10,2026-11-11,STARBUCKS 1234,5814,480,JPY,,")
    await cards.import_file("t-daichi", again, filename="again.csv")
    assert await reconciled.status("tx-2") == cards_pb2.CHARGE_STATUS_UNMATCHED
    assert len(await cards.outbox_events(subjects.MATCH_PROPOSED)) == proposals_before
    # Another receipt for it is still welcome.
    await cards.receipt("r5b", "aiko", merchant="Starbucks", day=date(2026, 11, 10), total=480)
    assert await reconciled.status("tx-2") == cards_pb2.CHARGE_STATUS_MATCHED
    await reconciled.closes()


async def test_manual_match_and_unmatch_are_audited(reconciled: Reconciled):
    cards = reconciled.cards
    await cards.receipt(
        "r-jr", "ben", merchant="ＪＲ東日本 券売機", day=date(2026, 11, 1), total=2500
    )
    assert await reconciled.status("tx-5") == cards_pb2.CHARGE_STATUS_UNMATCHED

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub("t-ben").ManualMatch(
            cards_pb2.ManualMatchRequest(charge_ids=["tx-5"], receipt_ids=["r-jr"])
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    made = (
        await cards.stub("t-daichi").ManualMatch(
            cards_pb2.ManualMatchRequest(
                charge_ids=["tx-5"], receipt_ids=["r-jr"], reason="commuter pass, bought early"
            )
        )
    ).match
    assert made.origin == cards_pb2.MATCH_ORIGIN_MANUAL
    assert made.status == cards_pb2.MATCH_STATUS_CONFIRMED and made.decided_by == "daichi"
    assert await reconciled.status("tx-5") == cards_pb2.CHARGE_STATUS_MATCHED

    # A receipt already in a confirmed match cannot be matched again, and unknown ids are named.
    for charge_ids, receipt_ids, code in (
        (["tx-6"], ["r-jr"], grpc.StatusCode.FAILED_PRECONDITION),
        (["tx-6"], ["r-unknown"], grpc.StatusCode.NOT_FOUND),
        (["tx-unknown"], ["r9"], grpc.StatusCode.NOT_FOUND),
        (["tx-6", "tx-5"], ["r9", "r1"], grpc.StatusCode.INVALID_ARGUMENT),
        (["tx-6"], ["r9", "r3"], grpc.StatusCode.FAILED_PRECONDITION),  # r3 is matched
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await cards.stub("t-daichi").ManualMatch(
                cards_pb2.ManualMatchRequest(charge_ids=charge_ids, receipt_ids=receipt_ids)
            )
        assert err.value.code() == code, (charge_ids, receipt_ids)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub("t-chika").Unmatch(cards_pb2.UnmatchRequest(match_id=made.match_id))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    undone = (
        await cards.stub("t-emi").Unmatch(
            cards_pb2.UnmatchRequest(match_id=made.match_id, reason="wrong trip")
        )
    ).match
    assert undone.status == cards_pb2.MATCH_STATUS_UNMATCHED and undone.decided_by == "emi"
    assert await reconciled.status("tx-5") == cards_pb2.CHARGE_STATUS_UNMATCHED
    actions = [
        (p.action, p.actor, p.reason)
        for p in await cards.payloads(subjects.AUDIT_RECORDED)
        if p.entity_id == made.match_id
    ]
    assert actions == [
        ("match.manual", "daichi", "commuter pass, bought early"),
        ("match.unmatch", "emi", "wrong trip"),
    ]
    unmatched = [p.match for p in await cards.payloads(subjects.MATCH_REJECTED)]
    assert [m.status for m in unmatched if m.match_id == made.match_id] == [
        cards_pb2.MATCH_STATUS_UNMATCHED
    ]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub("t-daichi").Unmatch(cards_pb2.UnmatchRequest(match_id=made.match_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await reconciled.closes()


async def test_manual_split_must_sum_and_overrides_a_proposal(reconciled: Reconciled):
    cards = reconciled.cards
    await cards.receipt("r6a", "aiko", merchant="MK Taxi", day=date(2026, 11, 20), total=2000)
    await cards.receipt("r6b", "aiko", merchant="MK Taxi", day=date(2026, 11, 20), total=1000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub("t-daichi").ManualMatch(
            cards_pb2.ManualMatchRequest(charge_ids=["tx-6"], receipt_ids=["r6a", "r6b"])
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sum" in (err.value.details() or "")
    await cards.receipt("r6c", "aiko", merchant="MK Taxi", day=date(2026, 11, 20), total=200)
    suggestion = await reconciled.match_of("tx-2")
    made = (
        await cards.stub("t-daichi").ManualMatch(
            cards_pb2.ManualMatchRequest(
                charge_ids=["tx-6"], receipt_ids=["r6a", "r6b", "r6c"], reason="three rides"
            )
        )
    ).match
    assert sorted(made.receipt_ids) == ["r6a", "r6b", "r6c"]
    assert await reconciled.status("tx-6") == cards_pb2.CHARGE_STATUS_MATCHED
    # A manual match over a suggested charge rejects the suggestion (and says why).
    taken = (
        await cards.stub("t-daichi").ManualMatch(
            cards_pb2.ManualMatchRequest(charge_ids=["tx-2"], receipt_ids=["r9"])
        )
    ).match
    rejected = [p.match for p in await cards.payloads(subjects.MATCH_REJECTED)]
    old = next(m for m in rejected if m.match_id == suggestion.match_id)
    assert taken.match_id in old.decision_reason
    assert await reconciled.status("tx-2") == cards_pb2.CHARGE_STATUS_MATCHED
    await reconciled.closes()


async def test_staff_see_only_their_own_charges(reconciled: Reconciled):
    mine = await reconciled.charges("t-aiko")
    assert set(mine) == {"tx-1", "tx-2", "tx-3", "tx-6"}
    # Asking for someone else's changes nothing: staff always get their own.
    assert set(await reconciled.charges("t-aiko", cardholder="ben")) == set(mine)
    missing = await reconciled.charges("t-ben", status=cards_pb2.CHARGE_STATUS_UNMATCHED)
    assert set(missing) == {"tx-5", "tx-7"}
    assert set(await reconciled.charges("t-daichi", cardholder="ben")) == {"tx-4", "tx-5", "tx-7"}
    period = await reconciled.charges(
        "t-daichi",
        period_start={"year": 2026, "month": 11, "day": 9},
        period_end={"year": 2026, "month": 11, "day": 14},
    )
    assert set(period) == {"tx-2", "tx-3", "tx-5"}


async def test_paging_through_charges(reconciled: Reconciled):
    stub = reconciled.cards.stub("t-daichi")
    seen: list[str] = []
    token = ""
    while True:
        reply = await stub.ListCharges(cards_pb2.ListChargesRequest(page_size=3, page_token=token))
        seen += [c.charge_id for c in reply.charges]
        if not reply.next_page_token:
            break
        token = reply.next_page_token
    assert sorted(seen) == [f"tx-{i}" for i in range(1, 8)] and len(seen) == 7
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListCharges(cards_pb2.ListChargesRequest(page_token="garbage"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_cardholders_declare_only_their_own_unmatched_charges(reconciled: Reconciled):
    cards = reconciled.cards
    request = cards_pb2.DeclareMissingReceiptRequest(
        charge_id="tx-6",
        description="taxi to client",
        business_purpose="client meeting",
        attest=True,
    )
    for token in ("t-ben", "t-daichi", "t-emi"):  # not the cardholder, whatever the role
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await cards.stub(token).DeclareMissingReceipt(request)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub("t-aiko").DeclareMissingReceipt(
            cards_pb2.DeclareMissingReceiptRequest(
                charge_id="tx-6", description="taxi", business_purpose="client", attest=False
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:  # already matched
        await cards.stub("t-aiko").DeclareMissingReceipt(
            cards_pb2.DeclareMissingReceiptRequest(
                charge_id="tx-1", description="coffee", business_purpose="meeting", attest=True
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    reply = await cards.stub("t-aiko").DeclareMissingReceipt(request)
    assert reply.charge.status == cards_pb2.CHARGE_STATUS_DECLARED_MISSING
    assert reply.declaration.cardholder == "aiko"
    assert "aiko" in reply.declaration.attestation and "3200 JPY" in reply.declaration.attestation
    assert await reconciled.status("tx-6") == cards_pb2.CHARGE_STATUS_DECLARED_MISSING
    with pytest.raises(grpc.aio.AioRpcError) as err:  # once only
        await cards.stub("t-aiko").DeclareMissingReceipt(request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    (audit,) = [
        p
        for p in await cards.payloads(subjects.AUDIT_RECORDED)
        if p.action == "charge.declare_missing"
    ]
    assert audit.actor == "aiko" and audit.entity_id == "tx-6" and "attestation" in audit.after_json

    report = await cards.report(statement_id=reconciled.statement_id)
    totals = report.statements[0].totals
    assert (totals.declared_count, totals.declared_amount.minor_units) == (1, 3200)
    assert report.statements[0].close_check.declared.minor_units == 3200
    await reconciled.closes()
    # A later receipt does not reopen a declared charge.
    await cards.receipt(
        "r-taxi", "aiko", merchant="Tokyo MK Taxi", day=date(2026, 11, 20), total=3200
    )
    assert await reconciled.status("tx-6") == cards_pb2.CHARGE_STATUS_DECLARED_MISSING


async def test_request_missing_receipts_publishes_one_request_per_cardholder(
    reconciled: Reconciled,
):
    cards = reconciled.cards
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub("t-aiko").RequestMissingReceipts(cards_pb2.RequestMissingReceiptsRequest())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    reply = await cards.stub("t-daichi").RequestMissingReceipts(
        cards_pb2.RequestMissingReceiptsRequest(
            statement_id=reconciled.statement_id,
            due_date=Date(year=2026, month=12, day=10),
            message="November statement: please upload or declare",
        )
    )
    asked = {r.cardholder: sorted(r.charge_ids) for r in reply.requests}
    assert asked == {"aiko": ["tx-6"], "ben": ["tx-5"]}  # the credit tx-7 asks for nothing
    published = await cards.payloads(subjects.RECEIPT_REQUESTED)
    assert {p.cardholder: [c.charge_id for c in p.charges] for p in published} == asked
    ben = next(p for p in published if p.cardholder == "ben")
    assert ben.requested_by == "daichi" and ben.due_date.day == 10
    assert ben.charges[0].amount.minor_units == 2500 and ben.charges[0].card_last4 == "1111"
    assert ben.statement_id == reconciled.statement_id
    only_ben = await cards.stub("t-daichi").RequestMissingReceipts(
        cards_pb2.RequestMissingReceiptsRequest(cardholder="ben")
    )
    assert [r.cardholder for r in only_ben.requests] == ["ben"]
