"""ReceiptIntake over real gRPC, on SQLite and PostgreSQL: uploads, bad inputs, who may do what.

Events are checked in the outbox (the same transaction as the receipt row);
the path from outbox to JetStream is proven in tests/e2e/test_event_path.py.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from PIL import Image

from seisan.common.v1 import common_pb2
from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_intake.adapters.blobstore import FilesystemBlobStore
from seisan_intake.adapters.images import ImagePipeline
from seisan_intake.adapters.uow import SqlUnitOfWork
from seisan_intake.bootstrap import MIGRATIONS
from seisan_intake.entrypoints.grpc_servicer import ReceiptIntakeServicer
from seisan_intake.handlers import IntakePorts
from seisan_shared import catalogue, events
from seisan_shared.auth import Principal, TokenStore
from seisan_shared.grpc.client import channel
from seisan_shared.grpc.server import ServiceRegistration, start_server
from seisan_shared.storage import Database, run_migrations
from seisan_shared.storage.tables import outbox
from support.images import receipt_jpeg

MAX_UPLOAD = 1_000_000
TOKENS = {
    "t-aiko": Principal("aiko", frozenset({"staff"})),
    "t-ben": Principal("ben", frozenset({"staff"})),
    "t-chika": Principal("chika", frozenset({"approver"})),
    "t-daichi": Principal("daichi", frozenset({"treasury"})),
    "t-emi": Principal("emi", frozenset({"admin"})),
}


@dataclass
class Intake:
    address: str
    db: Database
    blobs: Path
    channels: dict[str | None, grpc.aio.Channel] = field(default_factory=dict)

    def stub(self, token: str | None) -> receipts_pb2_grpc.ReceiptIntakeStub:
        if token not in self.channels:
            self.channels[token] = channel(self.address, token)
        return receipts_pb2_grpc.ReceiptIntakeStub(self.channels[token])

    async def upload(
        self, token: str, data: bytes, **meta: object
    ) -> receipts_pb2.UploadReceiptResponse:
        async def parts() -> AsyncIterator[receipts_pb2.UploadReceiptRequest]:
            yield receipts_pb2.UploadReceiptRequest(
                metadata=receipts_pb2.UploadMetadata(**meta)  # type: ignore[arg-type]
            )
            for i in range(0, len(data), 65536):
                yield receipts_pb2.UploadReceiptRequest(chunk=data[i : i + 65536])

        return await self.stub(token).UploadReceipt(parts(), timeout=20)

    async def outbox_events(self) -> list[events.Envelope]:
        async with self.db.transaction() as s:
            rows = (await s.execute(sa.select(outbox.c.payload).order_by(outbox.c.seq))).all()
        return [events.decode(r[0]) for r in rows]

    async def receipt_count(self) -> int:
        async with self.db.transaction() as s:
            return int((await s.execute(sa.text("select count(*) from receipts"))).scalar_one())

    def blob_files(self) -> list[Path]:
        return [p for p in self.blobs.rglob("*") if p.is_file()] if self.blobs.exists() else []


@pytest.fixture
async def intake(database: Database, tmp_path: Path) -> AsyncIterator[Intake]:
    await run_migrations(database, MIGRATIONS)
    catalogue.import_all()
    ports = IntakePorts(
        uow=lambda: SqlUnitOfWork(database),
        blobs=FilesystemBlobStore(tmp_path / "blobs"),
        images=ImagePipeline(max_pixels=20_000_000, working_long_side=2000),
    )
    server = await start_server(
        [
            ServiceRegistration(
                "seisan.receipts.v1.ReceiptIntake",
                ReceiptIntakeServicer(ports, max_upload_bytes=MAX_UPLOAD),
                receipts_pb2_grpc.add_ReceiptIntakeServicer_to_server,
            )
        ],
        tokens=TokenStore.from_principals(TOKENS),
    )
    harness = Intake(server.address, database, tmp_path / "blobs")
    try:
        yield harness
    finally:
        for ch in harness.channels.values():
            await ch.close()
        await server.stop(0)


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, "white").save(buf, "PNG")
    return buf.getvalue()


def _encode(fmt: str) -> bytes:
    buf = io.BytesIO()
    image = Image.open(io.BytesIO(receipt_jpeg(7)))
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    image.save(buf, fmt)
    return buf.getvalue()


async def test_upload_stores_receipt_and_queues_captured_event(intake: Intake):
    reply = await intake.upload(
        "t-aiko", receipt_jpeg(1), paid_with=receipts_pb2.PAID_WITH_PERSONAL, note="taxi"
    )
    assert reply.receipt_id and not reply.duplicate
    assert reply.status == receipts_pb2.RECEIPT_STATUS_PROCESSING
    got = (
        await intake.stub("t-aiko").GetReceipt(
            receipts_pb2.GetReceiptRequest(receipt_id=reply.receipt_id)
        )
    ).receipt
    assert (got.submitter, got.note, got.content_type) == ("aiko", "taxi", "image/jpeg")
    assert got.paid_with == receipts_pb2.PAID_WITH_PERSONAL
    captured = [e for e in await intake.outbox_events() if e.type == "receipt.captured"]
    assert len(captured) == 1 and captured[0].aggregate_id == reply.receipt_id
    payload = events.unpack_payload(captured[0])
    assert payload.receipt_id == reply.receipt_id and payload.sha256 == got.sha256
    assert payload.image_ref and payload.original_ref  # references, never bytes
    audit = [e for e in await intake.outbox_events() if e.type == "audit.recorded"]
    assert len(audit) == 1 and events.unpack_payload(audit[0]).actor == "aiko"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
async def test_accepts_png_webp_and_heic_by_content(intake: Intake, fmt: str):
    reply = await intake.upload("t-aiko", _encode(fmt), filename="receipt.pdf")  # name ignored
    got = (
        await intake.stub("t-aiko").GetReceipt(
            receipts_pb2.GetReceiptRequest(receipt_id=reply.receipt_id)
        )
    ).receipt
    expected = {"PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heic"}[fmt]
    assert got.content_type == expected


BAD_INPUTS = [
    ("zero bytes", b"", "empty upload"),
    ("pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n", "PDF document"),
    ("gif", b"GIF89a" + b"\x00" * 100, "GIF image"),
    ("random bytes", bytes(range(256)) * 10, "unsupported file type"),
    ("truncated jpeg", receipt_jpeg(3)[:2000], "truncated or corrupt"),
    ("corrupt png", _png((50, 50))[:40] + b"\x00" * 200, "truncated or corrupt"),
    ("decompression bomb", _png((20_000, 20_000), "1"), "decompression bomb"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
async def test_bad_input_is_refused_and_nothing_is_written(
    intake: Intake, name: str, data: bytes, message: str
):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intake.upload("t-aiko", data)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()
    assert await intake.receipt_count() == 0
    assert await intake.outbox_events() == []
    assert intake.blob_files() == []
    # the service keeps serving
    ok = await intake.upload("t-aiko", receipt_jpeg(4))
    assert ok.receipt_id


async def test_oversize_stream_is_refused_with_the_limit_named(intake: Intake):
    big = receipt_jpeg(5, size=(3000, 3000), quality=100)
    big += b"\x00" * max(0, MAX_UPLOAD + 1 - len(big))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intake.upload("t-aiko", big)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "upload too large" in err.value.details() and "1,000,000" in err.value.details()
    assert await intake.receipt_count() == 0


async def test_exact_duplicate_returns_existing_and_near_duplicate_is_flagged(intake: Intake):
    first = await intake.upload("t-aiko", receipt_jpeg(10, quality=90))
    again = await intake.upload("t-aiko", receipt_jpeg(10, quality=90))
    assert again.duplicate and again.receipt_id == first.receipt_id
    near = await intake.upload("t-aiko", receipt_jpeg(10, quality=60))  # same photo, re-encoded
    assert not near.duplicate and near.receipt_id != first.receipt_id
    got = (
        await intake.stub("t-aiko").GetReceipt(
            receipts_pb2.GetReceiptRequest(receipt_id=near.receipt_id)
        )
    ).receipt
    assert got.possible_duplicate_of == first.receipt_id
    other = await intake.upload("t-aiko", receipt_jpeg(11))
    got_other = (
        await intake.stub("t-aiko").GetReceipt(
            receipts_pb2.GetReceiptRequest(receipt_id=other.receipt_id)
        )
    ).receipt
    assert got_other.possible_duplicate_of == ""
    assert await intake.receipt_count() == 3  # both real "identical" purchases survive
    captured = [e for e in await intake.outbox_events() if e.type == "receipt.captured"]
    assert len(captured) == 3


async def test_exif_orientation_applied_and_metadata_stripped(intake: Intake):
    data = receipt_jpeg(20, size=(600, 900), exif_orientation=6, gps=True)
    assert Image.open(io.BytesIO(data)).getexif().get(0x8825) is not None
    reply = await intake.upload("t-aiko", data)
    stub = intake.stub("t-aiko")
    got = (
        await stub.GetReceipt(receipts_pb2.GetReceiptRequest(receipt_id=reply.receipt_id))
    ).receipt
    assert (got.width, got.height) == (900, 600)  # rotated by the EXIF orientation
    parts = stub.GetReceiptImage(receipts_pb2.GetReceiptImageRequest(receipt_id=reply.receipt_id))
    viewing = b"".join([p.chunk async for p in parts])
    shown = Image.open(io.BytesIO(viewing))
    assert shown.size == (900, 600)
    assert len(shown.getexif()) == 0 and "icc_profile" not in shown.info
    original_parts = stub.GetReceiptImage(
        receipts_pb2.GetReceiptImageRequest(
            receipt_id=reply.receipt_id, variant=receipts_pb2.IMAGE_VARIANT_ORIGINAL
        )
    )
    assert b"".join([p.chunk async for p in original_parts]) == data  # evidence kept as sent


async def test_no_token_and_bad_token_are_unauthenticated(intake: Intake):
    for token in (None, "wrong"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await intake.stub(token).ListReceipts(receipts_pb2.ListReceiptsRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_staff_see_and_change_only_their_own_receipts(intake: Intake):
    mine = (await intake.upload("t-aiko", receipt_jpeg(30))).receipt_id
    await intake.upload("t-ben", receipt_jpeg(31))
    ben = intake.stub("t-ben")
    denied = [
        ben.GetReceipt(receipts_pb2.GetReceiptRequest(receipt_id=mine)),
        ben.CorrectReceipt(
            receipts_pb2.CorrectReceiptRequest(
                receipt_id=mine,
                fields=receipts_pb2.ReceiptFields(merchant=receipts_pb2.ExtractedText(value="x")),
            )
        ),
        ben.DeleteReceipt(receipts_pb2.DeleteReceiptRequest(receipt_id=mine)),
    ]
    for call in denied:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in ben.GetReceiptImage(receipts_pb2.GetReceiptImageRequest(receipt_id=mine)):
            pass
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # ListReceipts: staff get their own even when asking for someone else's
    listed = await ben.ListReceipts(receipts_pb2.ListReceiptsRequest(submitter="aiko"))
    assert {r.submitter for r in listed.receipts} == {"ben"}
    own = await intake.stub("t-aiko").ListReceipts(receipts_pb2.ListReceiptsRequest())
    assert [r.receipt_id for r in own.receipts] == [mine]


async def test_approver_treasury_admin_read_all_but_only_submitter_treasury_admin_read_original(
    intake: Intake,
):
    rid = (await intake.upload("t-aiko", receipt_jpeg(40))).receipt_id
    for token in ("t-chika", "t-daichi", "t-emi"):
        stub = intake.stub(token)
        got = await stub.GetReceipt(receipts_pb2.GetReceiptRequest(receipt_id=rid))
        assert got.receipt.submitter == "aiko"
        everyone = await stub.ListReceipts(receipts_pb2.ListReceiptsRequest())
        assert rid in {r.receipt_id for r in everyone.receipts}
        parts = stub.GetReceiptImage(receipts_pb2.GetReceiptImageRequest(receipt_id=rid))
        assert b"".join([p.chunk async for p in parts])[:3] == b"\xff\xd8\xff"
    original = receipts_pb2.GetReceiptImageRequest(
        receipt_id=rid, variant=receipts_pb2.IMAGE_VARIANT_ORIGINAL
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in intake.stub("t-chika").GetReceiptImage(original):
            pass
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "evidence" in err.value.details()
    for token in ("t-daichi", "t-emi", "t-aiko"):
        data = b"".join([p.chunk async for p in intake.stub(token).GetReceiptImage(original)])
        assert data == receipt_jpeg(40)
    # approvers and treasury read, they do not change someone else's receipt
    for token in ("t-chika", "t-daichi"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await intake.stub(token).DeleteReceipt(
                receipts_pb2.DeleteReceiptRequest(receipt_id=rid)
            )
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_correction_is_audited_and_published(intake: Intake):
    rid = (await intake.upload("t-aiko", receipt_jpeg(50))).receipt_id
    fields = receipts_pb2.ReceiptFields(
        merchant=receipts_pb2.ExtractedText(value="Blue Bottle Coffee"),
        total=receipts_pb2.ExtractedMoney(
            amount=common_pb2.Money(minor_units=1112, currency="JPY")
        ),
    )
    reply = await intake.stub("t-aiko").CorrectReceipt(
        receipts_pb2.CorrectReceiptRequest(receipt_id=rid, fields=fields, reason="OCR misread")
    )
    assert reply.receipt.fields.merchant.value == "Blue Bottle Coffee"
    assert reply.receipt.fields.total.amount.minor_units == 1112
    assert reply.receipt.fields.total.confidence == 1.0
    kinds = [e.type for e in await intake.outbox_events()]
    assert kinds.count("receipt.corrected") == 1
    corrected = next(e for e in await intake.outbox_events() if e.type == "receipt.corrected")
    payload = events.unpack_payload(corrected)
    assert payload.corrected_by == "aiko"
    assert {(c.field, c.old_value, c.new_value) for c in payload.changes} == {
        ("merchant", "", "Blue Bottle Coffee"),
        ("total", "", "1112 JPY"),
    }
    audits = [
        events.unpack_payload(e) for e in await intake.outbox_events() if e.type == "audit.recorded"
    ]
    correction = next(a for a in audits if a.action == "receipt.correct")
    assert correction.actor == "aiko" and correction.reason == "OCR misread"
    assert "Blue Bottle Coffee" in correction.after_json
    # search by counterparty, amount and date range uses the corrected fields
    found = await intake.stub("t-aiko").ListReceipts(
        receipts_pb2.ListReceiptsRequest(
            merchant="blue bottle", currency="JPY", amount_min=1000, amount_max=1200
        )
    )
    assert [r.receipt_id for r in found.receipts] == [rid]
    none = await intake.stub("t-aiko").ListReceipts(
        receipts_pb2.ListReceiptsRequest(merchant="blue bottle", currency="JPY", amount_min=2000)
    )
    assert list(none.receipts) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (receipts_pb2.ReceiptFields(), "no fields"),
        (
            receipts_pb2.ReceiptFields(
                total=receipts_pb2.ExtractedMoney(
                    amount=common_pb2.Money(minor_units=100, currency="XXQ")
                )
            ),
            "unknown currency",
        ),
        (
            receipts_pb2.ReceiptFields(
                card_last4=receipts_pb2.ExtractedText(value="4111111111111111")
            ),
            "four digits",
        ),
    ],
)
async def test_bad_corrections_are_invalid_argument(intake: Intake, fields, message):
    rid = (await intake.upload("t-aiko", receipt_jpeg(60))).receipt_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await intake.stub("t-aiko").CorrectReceipt(
            receipts_pb2.CorrectReceiptRequest(receipt_id=rid, fields=fields)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()


async def test_delete_only_while_not_matched_or_claimed(intake: Intake):
    stub = intake.stub("t-aiko")
    rid = (await intake.upload("t-aiko", receipt_jpeg(70))).receipt_id
    await stub.DeleteReceipt(receipts_pb2.DeleteReceiptRequest(receipt_id=rid, reason="dup"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetReceipt(receipts_pb2.GetReceiptRequest(receipt_id=rid))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    locked = (await intake.upload("t-aiko", receipt_jpeg(71))).receipt_id
    async with intake.db.transaction() as s:
        await s.execute(
            sa.text("update receipts set status='matched' where receipt_id=:r"), {"r": locked}
        )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteReceipt(receipts_pb2.DeleteReceiptRequest(receipt_id=locked))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "matched" in err.value.details()
    # a deleted receipt uploaded again comes back under its id
    again = await intake.upload("t-aiko", receipt_jpeg(70))
    assert again.receipt_id == rid and not again.duplicate


async def test_matches_and_claims_from_other_services_lock_the_receipt(intake: Intake):
    from seisan.cards.v1 import cards_pb2
    from seisan.cards.v1 import events_pb2 as cards_events
    from seisan.payouts.v1 import events_pb2 as payouts_events
    from seisan.payouts.v1 import payouts_pb2
    from seisan_intake.entrypoints import status_consumer
    from seisan_shared.events import new_event

    stub = intake.stub("t-aiko")
    rid = (await intake.upload("t-aiko", receipt_jpeg(80))).receipt_id

    async def deliver(event_type: str, payload) -> None:  # type: ignore[no-untyped-def]
        envelope = new_event(event_type, source="other", aggregate_id="x", payload=payload)
        async with intake.db.transaction() as session:
            await status_consumer.handle(envelope, session)

    async def status() -> int:
        got = await stub.GetReceipt(receipts_pb2.GetReceiptRequest(receipt_id=rid))
        return got.receipt.status

    match = cards_pb2.Match(match_id="m1", receipt_ids=[rid], charge_ids=["c1"])
    await deliver("match.confirmed", cards_events.MatchConfirmed(match=match))
    assert await status() == receipts_pb2.RECEIPT_STATUS_MATCHED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteReceipt(receipts_pb2.DeleteReceiptRequest(receipt_id=rid))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # a plain rejection of a proposal does not touch it; an Unmatch releases it
    match.status = cards_pb2.MATCH_STATUS_REJECTED
    await deliver("match.rejected", cards_events.MatchRejected(match=match))
    assert await status() == receipts_pb2.RECEIPT_STATUS_MATCHED
    match.status = cards_pb2.MATCH_STATUS_UNMATCHED
    await deliver("match.rejected", cards_events.MatchRejected(match=match))
    assert await status() == receipts_pb2.RECEIPT_STATUS_PROCESSING  # OCR has not run yet

    claim = payouts_pb2.Claim(claim_id="cl1", lines=[payouts_pb2.ClaimLine(receipt_id=rid)])
    await deliver("claim.submitted", payouts_events.ClaimSubmitted(claim=claim))
    assert await status() == receipts_pb2.RECEIPT_STATUS_CLAIMED
    await deliver("claim.rejected", payouts_events.ClaimRejected(claim=claim))
    assert await status() == receipts_pb2.RECEIPT_STATUS_PROCESSING
    await stub.DeleteReceipt(receipts_pb2.DeleteReceiptRequest(receipt_id=rid))
