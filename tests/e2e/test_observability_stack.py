"""One correlation id from an upload to the match it ends in, across three processes.

intake (gRPC) → receipt.captured → the OCR worker → receipt.extracted → cards' consumer →
match.confirmed / match.proposed. Every one of those events, and every JSON log line the
processes wrote while handling them, carries the id the client sent in ``x-correlation-id``.
Each process serves /metrics; a real scrape shows the calls, the OCR, the events consumed.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from seisan.audit.v1 import audit_pb2, audit_pb2_grpc
from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan.payouts.v1 import payouts_pb2, payouts_pb2_grpc
from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_shared.audit import audit_event
from seisan_shared.bus.client import stored_messages
from seisan_shared.events import Envelope
from seisan_shared.grpc.client import sync_channel
from support.processes import ServiceProcess, free_port

pytestmark = pytest.mark.slow

SROIE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sroie-dev"
SAMPLE = "X51005268262"  # HOME MASTER HARDWARE & ELECTRICAL, 22/12/2017, 15.90
STATEMENT = (
    b"charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
    b"currency,original_amount,original_currency\n"
    b"tx-hm,4242,aiko,2017-12-22,2017-12-23,HOME MASTER HARDWARE,5251,15.90,MYR,,\n"
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(condition: Callable[[], object], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.5)


def events_with(nats_url: str, correlation_id: str) -> list[Envelope]:
    async def read() -> list[Envelope]:
        nc = await nats.connect(nats_url)
        try:
            stored = await stored_messages(nc.jetstream(), "seisan.>")
        finally:
            await nc.close()
        found = [Envelope.FromString(data) for data in stored]
        return [e for e in found if e.correlation_id == correlation_id]

    return asyncio.run(read())


def json_lines(process: ServiceProcess) -> list[dict[str, object]]:
    lines = []
    for line in process.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_one_correlation_id_from_upload_to_match_in_events_logs_and_metrics(stack, intake_address):
    if not SROIE.exists():
        pytest.skip(f"shared data not found at {SROIE}")
    cid = f"corr-e2e-{uuid.uuid4().hex[:8]}"
    cards_address = f"127.0.0.1:{free_port()}"
    ports = {name: free_port() for name in ("intake", "worker", "cards")}
    common = {"SEISAN_LOG_FORMAT": "json", "SEISAN_INTAKE_GRPC_ADDRESS": intake_address}
    intake = stack.service(
        "seisan_intake",
        "intake",
        **common,
        SEISAN_INTAKE_METRICS_ADDRESS=f"127.0.0.1:{ports['intake']}",
    ).start()
    worker = stack.service(
        "seisan_intake.worker",
        "worker",
        **common,
        SEISAN_INTAKE_WORKER_METRICS_ADDRESS=f"127.0.0.1:{ports['worker']}",
    ).start()
    cards = stack.service(
        "seisan_cards",
        "cards",
        **common,
        SEISAN_CARDS_GRPC_ADDRESS=cards_address,
        SEISAN_CARDS_METRICS_ADDRESS=f"127.0.0.1:{ports['cards']}",
    ).start()
    try:
        intake.wait_serving(intake_address)
        cards.wait_serving(cards_address)
        upload_calls = {
            "grpc_service": "seisan.receipts.v1.ReceiptIntake",
            "grpc_method": "UploadReceipt",
            "grpc_code": "OK",
        }
        before = scrape(ports["intake"])
        assert value(before, "seisan_grpc_server_handled_total", **upload_calls) == 0

        with sync_channel(cards_address, "demo-daichi") as channel:
            imported = cards_pb2_grpc.CardReconciliationStub(channel).ImportStatement(
                iter(
                    [
                        cards_pb2.ImportStatementRequest(
                            metadata=cards_pb2.ImportStatementMetadata(filename="dec.csv")
                        ),
                        cards_pb2.ImportStatementRequest(chunk=STATEMENT),
                    ]
                ),
                timeout=30,
            )
        assert imported.imported_count == 1, imported

        image = (SROIE / "images" / f"{SAMPLE}.jpg").read_bytes()
        with sync_channel(intake_address, "demo-aiko", correlation_id=cid) as channel:
            stub = receipts_pb2_grpc.ReceiptIntakeStub(channel)
            parts = [
                receipts_pb2.UploadReceiptRequest(
                    metadata=receipts_pb2.UploadMetadata(
                        paid_with=receipts_pb2.PAID_WITH_COMPANY_CARD
                    )
                ),
                *(
                    receipts_pb2.UploadReceiptRequest(chunk=image[i : i + 65536])
                    for i in range(0, len(image), 65536)
                ),
            ]
            receipt_id = stub.UploadReceipt(iter(parts), timeout=30).receipt_id

        found: list[Envelope] = []

        def matched() -> bool:
            found[:] = events_with(stack.nats.url, cid)
            return any(e.type.startswith("match.") for e in found)

        wait_for(matched, 240, f"a match event with correlation id {cid}")
        kinds = {e.type for e in found}
        assert {"receipt.captured", "receipt.extracted"} <= kinds, kinds
        assert kinds & {"match.confirmed", "match.proposed"}, kinds
        assert {e.aggregate_id for e in found if e.type.startswith("receipt.")} == {receipt_id}

        # Logs: the call line in intake, the OCR line in the worker, all with the id.
        intake_lines = [r for r in json_lines(intake) if r.get("correlation_id") == cid]
        assert any(str(r.get("grpc_method")).endswith("/UploadReceipt") for r in intake_lines)
        worker_lines = [r for r in json_lines(worker) if r.get("correlation_id") == cid]
        assert any(receipt_id in str(r["message"]) for r in worker_lines), worker.log()[-2000:]
        assert all(r["service"] == "intake-worker" for r in worker_lines)

        # Metrics: a real scrape of each process.
        after = scrape(ports["intake"])
        assert value(after, "seisan_grpc_server_handled_total", **upload_calls) == 1
        buckets = [
            k
            for k in after
            if k[0] == "seisan_grpc_server_handling_seconds_bucket"
            and ("grpc_method", "UploadReceipt") in k[1]
        ]
        assert len(buckets) >= 10
        assert value(after, "seisan_events_published_total", subject="seisan.receipt.captured") == 1
        # The relay counts an event once it has marked it published, a moment after the ack
        # that let cards consume it: poll, do not race it.
        wait_for(
            lambda: (
                value(
                    scrape(ports["worker"]),
                    "seisan_events_published_total",
                    subject="seisan.receipt.extracted",
                )
                == 1
            ),
            90,
            "the worker's relay counted receipt.extracted",
        )
        ocr = scrape(ports["worker"])
        assert value(ocr, "seisan_ocr_seconds_count") == 1
        assert value(ocr, "seisan_events_consumed_total", consumer="intake-ocr") == 1

        def cards_counted() -> bool:
            got = scrape(ports["cards"])
            matches = sum(value(got, "seisan_matches", status=s) for s in ("confirmed", "proposed"))
            consumed = value(got, "seisan_events_consumed_total", consumer="cards-receipts")
            return consumed >= 1 and matches == 1

        wait_for(cards_counted, 60, "cards metrics: receipt consumed, one match")
    finally:
        for process in (worker, cards, intake):
            process.terminate()
    assert intake.proc is not None and intake.proc.returncode == 0, intake.log()[-2000:]


def test_audit_and_payouts_serve_metrics_and_log_the_events_correlation_id(stack):
    addresses = {name: f"127.0.0.1:{free_port()}" for name in ("audit", "payouts")}
    ports = {name: free_port() for name in ("audit", "payouts")}
    audit = stack.service(
        "seisan_audit",
        "audit",
        SEISAN_LOG_FORMAT="json",
        SEISAN_AUDIT_GRPC_ADDRESS=addresses["audit"],
        SEISAN_AUDIT_METRICS_ADDRESS=f"127.0.0.1:{ports['audit']}",
    ).start()
    payouts = stack.service(
        "seisan_payouts",
        "payouts",
        SEISAN_LOG_FORMAT="json",
        SEISAN_PAYOUTS_GRPC_ADDRESS=addresses["payouts"],
        SEISAN_PAYOUTS_METRICS_ADDRESS=f"127.0.0.1:{ports['payouts']}",
        SEISAN_PAYOUTS_WEBHOOK_PORT=str(free_port()),
    ).start()
    cid = f"corr-audit-{uuid.uuid4().hex[:8]}"
    try:
        audit.wait_serving(addresses["audit"])
        payouts.wait_serving(addresses["payouts"])

        async def publish() -> None:
            nc = await nats.connect(stack.nats.url)
            try:
                bus_event = audit_event(
                    source="test",
                    actor="aiko",
                    action="receipt.uploaded",
                    entity_type="receipt",
                    entity_id="r-1",
                    before=None,
                    after={"status": "captured"},
                    correlation_id=cid,
                )
                await nc.jetstream().publish(
                    "seisan.audit.recorded",
                    bus_event.SerializeToString(),
                    headers={"Nats-Msg-Id": bus_event.event_id},
                )
            finally:
                await nc.close()

        asyncio.run(publish())
        wait_for(
            lambda: (
                value(scrape(ports["audit"]), "seisan_events_consumed_total", consumer="audit") == 1
            ),
            60,
            "the audit consumer counted the event",
        )
        with sync_channel(addresses["audit"], "demo-daichi") as channel:
            records = audit_pb2_grpc.AuditTrailStub(channel).ListRecords(
                audit_pb2.ListRecordsRequest(), timeout=10
            )
        assert [e.record.correlation_id for e in records.entries] == [cid]
        with sync_channel(addresses["payouts"], "demo-aiko") as channel:
            payouts_pb2_grpc.ReimbursementPayoutStub(channel).ListClaims(
                payouts_pb2.ListClaimsRequest(), timeout=10
            )

        audited = scrape(ports["audit"])
        assert (
            value(
                audited,
                "seisan_grpc_server_handled_total",
                grpc_service="seisan.audit.v1.AuditTrail",
                grpc_method="ListRecords",
                grpc_code="OK",
            )
            == 1
        )
        paid = scrape(ports["payouts"])
        assert (
            value(
                paid,
                "seisan_grpc_server_handled_total",
                grpc_service="seisan.payouts.v1.ReimbursementPayout",
                grpc_method="ListClaims",
                grpc_code="OK",
            )
            == 1
        )
        # State gauges are there from the first sample, every known state at 0.
        for state in ("created", "sent", "paid", "failed"):
            assert ("seisan_payouts", (("status", state),)) in paid
        assert ("seisan_claims", (("status", "approved"),)) in paid
        assert ("seisan_events_consumed_total", (("consumer", "payouts-receipts"),)) in paid
        assert ("process_resident_memory_bytes", ()) in paid
    finally:
        payouts.terminate()
        audit.terminate()
    assert audit.proc is not None and audit.proc.returncode == 0, audit.log()[-2000:]
    assert payouts.proc is not None and payouts.proc.returncode == 0, payouts.log()[-2000:]
    call_lines = [r for r in json_lines(audit) if r.get("logger") == "seisan.grpc"]
    assert call_lines and all(r["service"] == "audit" for r in call_lines)
