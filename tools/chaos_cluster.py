"""`make chaos-cluster`: the whole flow on a three-node NATS cluster while processes die.

What runs (all on loopback, state in a temp directory):

* three ``nats-server`` processes (the wheel's) in one cluster, route ports picked
  free at run time; the streams are R3 (``SEISAN_STREAM_REPLICAS=3``) and every
  service is given all three client URLs, so it fails over;
* the services on PostgreSQL (fresh databases ``seisan_chaos_<svc>_<pid>``,
  dropped afterwards), each as TWO replicas: intake, the OCR worker, cards,
  payouts and audit; the local Stripe-compatible server as its own process;
* the flow: Japanese receipts (``tools/gen_japanese_receipts.py``) uploaded, half
  on the corporate card and half paid personally; receipts OCR misread are
  corrected by their submitter; a generic-CSV card statement with a charge for
  every card receipt is imported and every match confirmed; every personal
  receipt claimed, approved and paid through Stripe;
* meanwhile, at random moments, one NATS server and one replica of each service
  is killed with SIGKILL and restarted (``--kills`` rounds of each kind).

Then every receipt, match, claim and payout is checked against what was sent:
through the gRPC APIs, the local Stripe server's own records (transfers and
payouts) and an independent JetStream subscriber that counts every event by
its ``Nats-Msg-Id`` and stream sequence (an event stored twice is a duplicate;
an event in a service's outbox but never on the stream is lost).

Before the chaos, OCR throughput is measured with one and with two workers
(``--ocr-batch`` receipts each). The last two lines are::

    ocr-scaling: one=<r1>/s two=<r2>/s ratio=<r>
    cluster: receipts=<N> events=<E> lost=<L> duplicated=<D> double_paid=<P> seconds=<S>

The exit status is 1 unless lost, duplicated and double_paid are all 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc
import nats
import nats.errors
import sqlalchemy as sa
import stripe
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from seisan.audit.v1 import audit_pb2, audit_pb2_grpc
from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan.common.v1 import common_pb2
from seisan.payouts.v1 import payouts_pb2, payouts_pb2_grpc
from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_payouts.testing import StripeAudit, audit_against_stripe
from seisan_shared import events, subjects
from seisan_shared.bus.natsserver import ClusterSpec, NatsServer, free_port
from seisan_shared.grpc.client import channel
from seisan_shared.storage import Database
from seisan_shared.storage.tables import outbox
from seisan_shared.stripe_local import LocalStripeProcess
from support.processes import ServiceProcess

T = TypeVar("T")
TOOLS = Path(__file__).resolve().parent
KEY = "sk_test_seisan_chaos_cluster"
SECRET = "whsec_seisan_chaos_cluster"
CARD_LAST4 = "4242"
CARDHOLDER = "Aiko Tanaka"
SERVICES = ("intake", "cards", "payouts", "audit")
KILL_KINDS = ("nats", "intake", "intake-worker", "cards", "payouts", "audit")
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def load() -> str:
    """The 1-minute load average over the cores: other work on the machine skews OCR figures."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the cluster and the processes -----------------------------------------------------------


def start_cluster(root: Path) -> list[NatsServer]:
    ports = [free_port() for _ in range(3)]
    servers = [
        NatsServer(
            root / f"nats-{i}",
            name=f"n{i}",
            cluster=ClusterSpec(
                "seisan-chaos", ports[i], [f"nats://127.0.0.1:{p}" for p in ports if p != ports[i]]
            ),
        )
        for i in range(3)
    ]
    for server in servers:
        server.start()
    for server in servers:
        server.wait_healthy(60)
    return servers


@dataclass
class Replica:
    kind: str
    index: int
    process: ServiceProcess
    address: str | None  # gRPC, None for workers
    restarts: int = 0
    _log_offset: int = 0

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.index}"

    def start(self) -> None:
        # The log file is appended to by every life: readiness is a line this life wrote.
        self._log_offset = len(self.process.log())
        self.process.start()

    def wait_ready(self, timeout: float = 90.0) -> None:
        if self.address is not None:
            self.process.wait_serving(self.address, timeout)
            return
        deadline = time.monotonic() + timeout
        while "OCR worker ready" not in self.process.log()[self._log_offset :]:
            proc = self.process.proc
            if proc is None or proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.process.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready:\n{self.process.log()[-3000:]}")
            time.sleep(0.2)

    @property
    def running(self) -> bool:
        proc = self.process.proc
        return proc is not None and proc.poll() is None


@dataclass
class Cluster:
    root: Path
    nats: list[NatsServer]
    replicas: dict[str, list[Replica]]
    stripe: LocalStripeProcess
    db_urls: dict[str, str]

    @property
    def nats_urls(self) -> str:
        return ",".join(s.url for s in self.nats)

    def addresses(self, kind: str) -> list[str]:
        return [r.address for r in self.replicas[kind] if r.address is not None]


async def create_databases(admin_url: str, tag: str) -> dict[str, str]:
    admin = await asyncpg.connect(admin_url, timeout=5)
    urls: dict[str, str] = {}
    try:
        base = admin_url.rsplit("/", 1)[0]
        for service in SERVICES:
            name = f"seisan_chaos_{service}_{tag}"
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
            urls[service] = f"{base}/{name}"
    finally:
        await admin.close()
    return urls


async def drop_databases(admin_url: str, urls: dict[str, str]) -> None:
    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        for url in urls.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


def build_replicas(
    root: Path, nats_urls: str, db_urls: dict[str, str], stripe_api: str, webhook_ports: list[int]
) -> dict[str, list[Replica]]:
    var = root / "var"
    logs = root / "logs"
    var.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    tokens = var / "tokens.toml"
    tokens.write_text(resources.files("seisan_shared").joinpath("demo_tokens.toml").read_text())
    directory = var / "cards.toml"
    directory.write_text(
        f'[[card]]\nlast4 = "{CARD_LAST4}"\nprincipal = "aiko"\nname = "{CARDHOLDER}"\n'
    )
    common = {
        "SEISAN_NATS_URL": nats_urls,
        "SEISAN_STREAM_REPLICAS": "3",
        "SEISAN_VAR_DIR": str(var),
        "SEISAN_TOKENS_FILE": str(tokens),
        "SEISAN_LOG_LEVEL": "INFO",
        "SEISAN_INTAKE_DATABASE_URL": db_urls["intake"],
        "SEISAN_INTAKE_BLOB_DIR": str(var / "blobs"),
        "SEISAN_INTAKE_OCR_THREADS": "1",
        "SEISAN_CARDS_DATABASE_URL": db_urls["cards"],
        "SEISAN_CARDS_CARD_DIRECTORY": str(directory),
        "SEISAN_PAYOUTS_DATABASE_URL": db_urls["payouts"],
        "SEISAN_PAYOUTS_STRIPE_API_BASE": stripe_api,
        "SEISAN_PAYOUTS_STRIPE_API_KEY": KEY,
        "SEISAN_PAYOUTS_STRIPE_WEBHOOK_SECRET": SECRET,
        "SEISAN_PAYOUTS_STRIPE_TIMEOUT_SECONDS": "5",
        "SEISAN_PAYOUTS_RAIL_POLL_SECONDS": "0.5",
        "SEISAN_PAYOUTS_RAIL_RETRY_AFTER_SECONDS": "1",
        "SEISAN_PAYOUTS_RECONCILE_AFTER_SECONDS": "5",
        "SEISAN_PAYOUTS_MAX_RECEIPT_AGE_DAYS": "100000",
        "SEISAN_AUDIT_DATABASE_URL": db_urls["audit"],
    }
    modules = {
        "intake": "seisan_intake",
        "intake-worker": "seisan_intake.worker",
        "cards": "seisan_cards",
        "payouts": "seisan_payouts",
        "audit": "seisan_audit",
    }
    replicas: dict[str, list[Replica]] = {}
    for kind, module in modules.items():
        for index in (1, 2):
            env = dict(common)
            address = None
            if kind != "intake-worker":
                address = f"127.0.0.1:{free_port()}"
                prefix = "SEISAN_" + kind.upper() + "_"
                env[prefix + "GRPC_ADDRESS"] = address
            if kind == "payouts":
                env["SEISAN_PAYOUTS_WEBHOOK_PORT"] = str(webhook_ports[index - 1])
            if kind == "audit":
                env["SEISAN_AUDIT_CHECKPOINT_PATH"] = str(var / f"audit-checkpoints-{index}.jsonl")
            process = ServiceProcess(module, env, logs, f"{kind}.{index}")
            replicas.setdefault(kind, []).append(Replica(kind, index, process, address))
    return replicas


# -- gRPC with fail-over between replicas ---------------------------------------------------


class Api:
    """Calls a service on whichever replica answers; retries what is safe to retry."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}
        self.read_at: dict[str, float] = {}  # the subscriber's: receipt id → OCR verdict seen
        self._next: Counter[str] = Counter()

    def _channel(self, address: str, token: str) -> grpc.aio.Channel:
        key = (address, token)
        if key not in self._channels:
            self._channels[key] = channel(address, token)
        return self._channels[key]

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()

    async def call(
        self,
        kind: str,
        token: str,
        invoke: Callable[[grpc.aio.Channel], Awaitable[T]],
        *,
        within: float = 120.0,
    ) -> T:
        """``invoke(channel)`` on one replica after another until one answers."""
        addresses = self.cluster.addresses(kind)
        deadline = time.monotonic() + within
        while True:
            self._next[kind] += 1
            address = addresses[self._next[kind] % len(addresses)]
            try:
                return await invoke(self._channel(address, token))
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.3)


# -- the flow -----------------------------------------------------------------------------


@dataclass
class Receipt:
    path: Path
    label: dict[str, str]
    card: bool
    submitter: str
    receipt_id: str = ""
    uploaded_at: float = 0.0

    @property
    def total(self) -> int:
        return int("".join(ch for ch in self.label["total"] if ch.isdigit()))

    @property
    def day(self) -> date:
        return date.fromisoformat(self.label["date_iso"])

    @property
    def token(self) -> str:
        return f"demo-{self.submitter}"


def generate_receipts(root: Path, count: int, seed: int) -> subprocess.Popen[bytes]:
    """Start drawing ``count`` receipts (and a few spare) under ``root/receipts``."""
    tool = str(TOOLS / "gen_japanese_receipts.py")
    spare = count // 4 + 4
    argv = [sys.executable, tool, str(root / "receipts"), "--count", str(count + spare)]
    argv += ["--seed", str(seed)]
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
    )


def load_receipts(root: Path, count: int) -> list[Receipt]:
    """``count`` receipts; card receipts never share (total, date), so matches are unambiguous."""
    out = root / "receipts"
    receipts: list[Receipt] = []
    seen: set[tuple[int, date]] = set()
    for image in sorted((out / "images").glob("*.jpg")):
        label = json.loads((out / "labels" / f"{image.stem}.txt").read_text(encoding="utf-8"))
        card = len(receipts) % 2 == 0
        submitter = "aiko" if card or len(receipts) % 4 == 1 else "ben"
        receipt = Receipt(image, label, card, submitter)
        key = (receipt.total, receipt.day)
        if key in seen:
            continue
        seen.add(key)
        receipts.append(receipt)
        if len(receipts) == count:
            break
    return receipts


def pb_date(day: date) -> common_pb2.Date:
    return common_pb2.Date(year=day.year, month=day.month, day=day.day)


async def upload(api: Api, receipt: Receipt) -> None:
    data = receipt.path.read_bytes()
    paid = receipts_pb2.PAID_WITH_COMPANY_CARD if receipt.card else receipts_pb2.PAID_WITH_PERSONAL

    async def go(ch: grpc.aio.Channel) -> receipts_pb2.UploadReceiptResponse:
        parts = [
            receipts_pb2.UploadReceiptRequest(
                metadata=receipts_pb2.UploadMetadata(paid_with=paid, filename=receipt.path.name)
            )
        ] + [
            receipts_pb2.UploadReceiptRequest(chunk=data[i : i + 65536])
            for i in range(0, len(data), 65536)
        ]
        stub = receipts_pb2_grpc.ReceiptIntakeStub(ch)
        reply: receipts_pb2.UploadReceiptResponse = await stub.UploadReceipt(
            iter(parts), timeout=15
        )
        return reply

    # The same bytes again return the first receipt: retrying an upload is safe.
    reply = await api.call("intake", receipt.token, go)
    receipt.receipt_id = reply.receipt_id
    receipt.uploaded_at = time.monotonic()


async def get_receipt(api: Api, receipt: Receipt) -> receipts_pb2.Receipt:
    async def go(ch: grpc.aio.Channel) -> receipts_pb2.Receipt:
        stub = receipts_pb2_grpc.ReceiptIntakeStub(ch)
        request = receipts_pb2.GetReceiptRequest(receipt_id=receipt.receipt_id)
        return (await stub.GetReceipt(request, timeout=10)).receipt

    return await api.call("intake", receipt.token, go)


async def wait_read(api: Api, batch: list[Receipt], within: float) -> None:
    """Wait until OCR has read every receipt of ``batch`` (asking the API every 2 s; the
    subscriber usually tells sooner)."""
    done: set[str] = set()
    deadline = time.monotonic() + within
    asked = 0.0
    while len(done) < len(batch):
        if time.monotonic() > deadline:
            raise AssertionError(f"OCR did not finish {len(batch) - len(done)} receipts")
        ask = time.monotonic() - asked > 2.0
        asked = time.monotonic() if ask else asked
        for receipt in batch:
            if receipt.receipt_id in done:
                continue
            if receipt.receipt_id in api.read_at:
                done.add(receipt.receipt_id)
            elif ask:
                got = await get_receipt(api, receipt)
                if got.status != receipts_pb2.RECEIPT_STATUS_PROCESSING:
                    done.add(receipt.receipt_id)
        await asyncio.sleep(0.1)


async def correct_if_misread(api: Api, receipt: Receipt) -> bool:
    """What a submitter does when OCR got the total or date wrong; whether it was needed."""
    got = await get_receipt(api, receipt)
    fields = got.fields
    if got.status in (receipts_pb2.RECEIPT_STATUS_MATCHED, receipts_pb2.RECEIPT_STATUS_CLAIMED):
        return False  # already used as read (the pairing is checked at the end)
    right = (
        got.status == receipts_pb2.RECEIPT_STATUS_EXTRACTED
        and fields.total.amount.minor_units == receipt.total
        and fields.total.amount.currency == "JPY"
        and (fields.transaction_date.date.year, fields.transaction_date.date.month)
        == (receipt.day.year, receipt.day.month)
        and fields.transaction_date.date.day == receipt.day.day
    )
    if right:
        return False
    fix = receipts_pb2.ReceiptFields(
        merchant=receipts_pb2.ExtractedText(value=receipt.label["company"]),
        transaction_date=receipts_pb2.ExtractedDate(date=pb_date(receipt.day)),
        total=receipts_pb2.ExtractedMoney(
            amount=common_pb2.Money(minor_units=receipt.total, currency="JPY")
        ),
    )

    async def go(ch: grpc.aio.Channel) -> None:
        stub = receipts_pb2_grpc.ReceiptIntakeStub(ch)
        request = receipts_pb2.CorrectReceiptRequest(
            receipt_id=receipt.receipt_id, fields=fix, reason="OCR misread (chaos run)"
        )
        await stub.CorrectReceipt(request, timeout=10)

    await api.call("intake", receipt.token, go)  # a repeated correction changes nothing
    return True


def statement_csv(card_receipts: list[Receipt], number: int) -> bytes:
    lines = [
        "charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
        "currency,original_amount,original_currency"
    ]
    for n, r in enumerate(card_receipts):
        merchant = r.label["company"].replace('"', "")
        posted = r.day + timedelta(days=1)
        lines.append(
            f'chaos-{number}-{n:04d},{CARD_LAST4},{CARDHOLDER},{r.day},{posted},"{merchant}",5999,'
            f"{r.total},JPY,,"
        )
    return ("\n".join(lines) + "\n").encode()


async def import_statement(api: Api, data: bytes, filename: str) -> None:
    async def go(ch: grpc.aio.Channel) -> None:
        stub = cards_pb2_grpc.CardReconciliationStub(ch)
        parts = [
            cards_pb2.ImportStatementRequest(
                metadata=cards_pb2.ImportStatementMetadata(
                    format=cards_pb2.STATEMENT_FORMAT_GENERIC_CSV, filename=filename
                )
            ),
            cards_pb2.ImportStatementRequest(chunk=data),
        ]
        await stub.ImportStatement(iter(parts), timeout=30)

    await api.call("cards", "demo-daichi", go)  # importing the same file twice creates nothing


async def list_charges(api: Api) -> tuple[list[cards_pb2.CardCharge], dict[str, cards_pb2.Match]]:
    async def go(ch: grpc.aio.Channel) -> tuple[list[Any], dict[str, Any]]:
        stub = cards_pb2_grpc.CardReconciliationStub(ch)
        charges: list[Any] = []
        matches: dict[str, Any] = {}
        token = ""
        while True:
            reply = await stub.ListCharges(
                cards_pb2.ListChargesRequest(page_size=200, page_token=token), timeout=10
            )
            charges += list(reply.charges)
            matches.update({m.match_id: m for m in reply.matches})
            token = reply.next_page_token
            if not token:
                return charges, matches

    return await api.call("cards", "demo-daichi", go)


async def confirm_matches(api: Api, expected: int, within: float) -> None:
    """Confirm every suggested match until each charge is matched."""
    deadline = time.monotonic() + within
    while True:
        charges, matches = await list_charges(api)
        matched = sum(1 for c in charges if c.status == cards_pb2.CHARGE_STATUS_MATCHED)
        if len(charges) >= expected and matched == len(charges):
            return
        if time.monotonic() > deadline:
            log(f"matching incomplete: {matched}/{len(charges)} charges matched")
            return
        for match in matches.values():
            if match.status != cards_pb2.MATCH_STATUS_SUGGESTED:
                continue

            async def go(ch: grpc.aio.Channel, match_id: str = match.match_id) -> None:
                stub = cards_pb2_grpc.CardReconciliationStub(ch)
                await stub.ConfirmMatch(
                    cards_pb2.ConfirmMatchRequest(match_id=match_id), timeout=10
                )

            with contextlib.suppress(grpc.aio.AioRpcError):  # already confirmed by a retry
                await api.call("cards", "demo-daichi", go)
        await asyncio.sleep(1.0)


async def list_claims(api: Api, token: str) -> list[payouts_pb2.Claim]:
    async def go(ch: grpc.aio.Channel) -> list[Any]:
        stub = payouts_pb2_grpc.ReimbursementPayoutStub(ch)
        found: list[Any] = []
        page = ""
        while True:
            reply = await stub.ListClaims(
                payouts_pb2.ListClaimsRequest(page_size=200, page_token=page), timeout=10
            )
            found += list(reply.claims)
            page = reply.next_page_token
            if not page:
                return found

    return await api.call("payouts", token, go)


def claim_of(claims: list[payouts_pb2.Claim], receipt_id: str) -> payouts_pb2.Claim | None:
    for claim in claims:
        if any(line.receipt_id == receipt_id for line in claim.lines):
            return claim
    return None


async def submit_claim(api: Api, receipt: Receipt, within: float = 120.0) -> str:
    """Submit a one-receipt claim. A reply lost to a crash is found again by listing claims
    (a second submission would be refused as a duplicate claim, not stored twice)."""
    deadline = time.monotonic() + within
    while True:
        try:

            async def go(ch: grpc.aio.Channel) -> str:
                stub = payouts_pb2_grpc.ReimbursementPayoutStub(ch)
                request = payouts_pb2.SubmitClaimRequest(
                    items=[
                        payouts_pb2.ClaimItem(receipt_id=receipt.receipt_id, category="supplies")
                    ],
                    description=f"chaos {receipt.path.stem}",
                )
                return (await stub.SubmitClaim(request, timeout=10)).claim.claim_id

            return await api.call("payouts", receipt.token, go, within=30)
        except grpc.aio.AioRpcError as exc:
            existing = claim_of(await list_claims(api, receipt.token), receipt.receipt_id)
            if existing is not None:
                return existing.claim_id
            if time.monotonic() > deadline:
                raise
            # The receipt's events may not have reached payouts yet: try again shortly.
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                log(f"submit {receipt.receipt_id}: {exc.code().name} {exc.details()}")
            await asyncio.sleep(1.0)


async def approve_claim(api: Api, claim_id: str) -> None:
    async def go(ch: grpc.aio.Channel) -> None:
        stub = payouts_pb2_grpc.ReimbursementPayoutStub(ch)
        await stub.ApproveClaim(payouts_pb2.ApproveClaimRequest(claim_id=claim_id), timeout=10)

    async def status(ch: grpc.aio.Channel) -> int:
        stub = payouts_pb2_grpc.ReimbursementPayoutStub(ch)
        reply = await stub.GetClaim(payouts_pb2.GetClaimRequest(claim_id=claim_id), timeout=10)
        return int(reply.claim.status)

    try:
        await api.call("payouts", "demo-chika", go)
    except grpc.aio.AioRpcError:
        # Approved already (the first reply was lost to a crash)?
        if await api.call("payouts", "demo-chika", status) == payouts_pb2.CLAIM_STATUS_SUBMITTED:
            raise


async def link_accounts(api: Api, employees: list[str]) -> None:
    for employee in employees:

        async def go(ch: grpc.aio.Channel, who: str = employee) -> None:
            stub = payouts_pb2_grpc.ReimbursementPayoutStub(ch)
            request = payouts_pb2.LinkPayeeAccountRequest(
                employee=who, create_test_account=True, currency="JPY"
            )
            await stub.LinkPayeeAccount(request, timeout=30)

        await api.call("payouts", "demo-daichi", go)


async def payout_run(api: Api, request_id: str) -> None:
    async def go(ch: grpc.aio.Channel) -> None:
        stub = payouts_pb2_grpc.ReimbursementPayoutStub(ch)
        request = payouts_pb2.CreatePayoutRunRequest(
            rail=payouts_pb2.PAYOUT_RAIL_STRIPE, currency="JPY", request_id=request_id
        )
        await stub.CreatePayoutRun(request, timeout=30)

    await api.call("payouts", "demo-daichi", go)  # the same request_id is the same run


async def list_payouts(api: Api) -> list[payouts_pb2.Payout]:
    async def go(ch: grpc.aio.Channel) -> list[Any]:
        stub = payouts_pb2_grpc.ReimbursementPayoutStub(ch)
        found: list[Any] = []
        page = ""
        while True:
            reply = await stub.ListPayouts(
                payouts_pb2.ListPayoutsRequest(page_size=200, page_token=page), timeout=10
            )
            found += list(reply.payouts)
            page = reply.next_page_token
            if not page:
                return found

    return await api.call("payouts", "demo-daichi", go)


# -- chaos --------------------------------------------------------------------------------


@dataclass
class Chaos:
    cluster: Cluster
    rng: random.Random
    rounds: int
    spacing: tuple[float, float]
    kills: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    _stop: bool = False

    async def run(self) -> None:
        """Two independent loops, services and NATS, so their faults overlap at times (a
        replica restarting while a NATS server is down or its streams elect a leader).
        Each goes on, round after round, until :meth:`stop` and at least ``rounds`` rounds."""
        services = [k for k in KILL_KINDS if k != "nats"]
        nats_gap = (self.spacing[0] * len(services), self.spacing[1] * len(services))
        await asyncio.gather(self._loop(services, self.spacing), self._loop(["nats"], nats_gap))

    async def _loop(self, kinds: list[str], spacing: tuple[float, float]) -> None:
        rng = random.Random(self.rng.random())
        rounds = 0
        while rounds < self.rounds or not self._stop:
            order = list(kinds)
            rng.shuffle(order)
            for kind in order:
                await asyncio.sleep(rng.uniform(*spacing))
                try:
                    await asyncio.to_thread(self.kill_and_restart, kind, rng)
                except Exception as exc:
                    self.problems.append(f"{kind}: {exc}")
                    log(f"chaos: {kind} did not come back: {exc}")
            rounds += 1

    def stop(self) -> None:
        self._stop = True

    def kill_and_restart(self, kind: str, rng: random.Random) -> None:
        down = rng.uniform(1.0, 4.0)
        if kind == "nats":
            # Every other time the leader of SEISAN_EVENTS: the publishes in flight lose it.
            leader = stream_leader(self.cluster.nats) if self.kills[kind] % 2 == 0 else None
            server = leader or rng.choice(self.cluster.nats)
            role = "the SEISAN_EVENTS leader " if server is leader else ""
            log(
                f"chaos: SIGKILL nats {role}{server.name} (:{server.client_port}), down {down:.1f}s"
            )
            server.kill()
            time.sleep(down)
            server.start()
            server.wait_healthy(60)
        else:
            replica = rng.choice(self.cluster.replicas[kind])
            log(f"chaos: SIGKILL {replica.name}, down {down:.1f}s")
            replica.process.kill()
            time.sleep(down)
            replica.restarts += 1
            replica.start()
            replica.wait_ready()
        self.kills[kind] += 1
        log(f"chaos: {kind} back")


def stream_leader(servers: list[NatsServer]) -> NatsServer | None:
    """The server leading ``SEISAN_EVENTS`` now (from any server's monitoring port)."""
    for server in servers:
        if not server.running:
            continue
        try:
            url = f"{server.monitoring_url}/jsz?streams=true"
            with urllib.request.urlopen(url, timeout=2) as reply:
                info = json.load(reply)
        except (OSError, ValueError):
            continue
        for account in info.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                if stream.get("name") == subjects.EVENTS_STREAM:
                    name = (stream.get("cluster") or {}).get("leader")
                    return next((s for s in servers if s.name == name), None)
    return None


# -- the independent subscriber -----------------------------------------------------------


@dataclass
class Tally:
    seqs: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    types: dict[str, str] = field(default_factory=dict)
    aggregates: dict[str, str] = field(default_factory=dict)
    deliveries: int = 0


class Subscriber:
    """A durable pull consumer of its own on ``seisan.>``: every stored event, by id and seq."""

    def __init__(self, urls: str) -> None:
        self.urls = [u for u in urls.split(",") if u]
        self.tally = Tally()
        self.read_at: dict[str, float] = {}  # receipt id → when OCR's verdict was seen
        self._nc: Any = None
        self._sub: Any = None
        self._stop = False

    async def start(self) -> None:
        async def quiet(*_: object) -> None:  # servers die on purpose here
            return None

        self._nc = await nats.connect(
            self.urls,
            name="chaos-subscriber",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=quiet,
            disconnected_cb=quiet,
        )
        js = self._nc.jetstream(timeout=10)
        self._sub = await js.pull_subscribe(
            "seisan.>",
            durable="chaos-subscriber",
            stream=subjects.EVENTS_STREAM,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT, ack_wait=30
            ),
        )

    async def run(self) -> None:
        while not self._stop:
            await self.poll()

    async def poll(self) -> int:
        try:
            msgs = await self._sub.fetch(200, timeout=2)
        except (nats.errors.TimeoutError, TimeoutError):
            return 0
        except Exception as exc:  # the server we talk to may be gone: the client reconnects
            log(f"subscriber: fetch failed ({exc!r}); retrying")
            await asyncio.sleep(0.5)
            return 0
        for msg in msgs:
            self.tally.deliveries += 1
            envelope = events.decode(msg.data)
            event_id = (msg.headers or {}).get("Nats-Msg-Id") or envelope.event_id
            if event_id != envelope.event_id:
                log(f"subscriber: Nats-Msg-Id {event_id} != event id {envelope.event_id}")
            self.tally.seqs[event_id].add(msg.metadata.sequence.stream)
            if envelope.type in (subjects.RECEIPT_EXTRACTED, subjects.RECEIPT_NEEDS_REVIEW):
                self.read_at.setdefault(envelope.aggregate_id, time.monotonic())
            self.tally.types[event_id] = envelope.type
            self.tally.aggregates[event_id] = envelope.aggregate_id
            with contextlib.suppress(Exception):
                await msg.ack()
        return len(msgs)

    async def drain(self, within: float = 60.0) -> None:
        """Read until the consumer has nothing pending."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            await self.poll()
            with contextlib.suppress(Exception):
                info = await self._sub.consumer_info()
                if not info.num_pending and not info.num_ack_pending:
                    return
        log("subscriber: gave up draining")

    async def dead_letters(self) -> int:
        """Messages in ``SEISAN_DLQ``: events some consumer gave up on."""
        info = await self._nc.jetstream(timeout=10).stream_info(subjects.DLQ_STREAM)
        return int(info.state.messages)

    def stop(self) -> None:
        self._stop = True

    async def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()


async def outbox_event_ids(url: str) -> list[tuple[str, bool]]:
    db = await Database(url).open()
    try:
        async with db.transaction() as session:
            rows = await session.execute(sa.select(outbox.c.event_id, outbox.c.published_at))
            return [(r[0], r[1] is not None) for r in rows]
    finally:
        await db.close()


# -- the run ------------------------------------------------------------------------------


@dataclass
class Outcome:
    receipts: int = 0
    events: int = 0
    lost: int = 0
    duplicated: int = 0
    double_paid: int = 0
    seconds: float = 0.0
    ocr_one: float = 0.0
    ocr_two: float = 0.0
    problems: list[str] = field(default_factory=list)

    def lose(self, problem: str, n: int = 1) -> None:
        self.lost += n
        self.problems.append(problem)

    def line(self) -> str:
        return (
            f"cluster: receipts={self.receipts} events={self.events} lost={self.lost} "
            f"duplicated={self.duplicated} double_paid={self.double_paid} "
            f"seconds={self.seconds:.0f}"
        )

    def scaling_line(self) -> str:
        ratio = self.ocr_two / self.ocr_one if self.ocr_one else 0.0
        return f"ocr-scaling: one={self.ocr_one:.2f}/s two={self.ocr_two:.2f}/s ratio={ratio:.2f}"


async def measure_ocr(api: Api, sub: Subscriber, batch: list[Receipt]) -> float:
    """Upload ``batch`` at once; receipts read per second, first upload to the last
    ``receipt.extracted`` / ``needs_review`` seen on the bus (no polling load meanwhile)."""
    start = time.monotonic()
    await asyncio.gather(*(upload(api, r) for r in batch))
    deadline = start + 600
    while not all(r.receipt_id in sub.read_at for r in batch):
        if time.monotonic() > deadline:
            raise AssertionError("OCR did not finish the measured batch in 600 s")
        await asyncio.sleep(0.05)
    return len(batch) / (max(sub.read_at[r.receipt_id] for r in batch) - start)


async def flow(
    args: argparse.Namespace,
    cluster: Cluster,
    api: Api,
    chaos: Chaos,
    outcome: Outcome,
    generator: subprocess.Popen[bytes],
    sub: Subscriber,
) -> list[Receipt]:
    rng = random.Random(args.seed)
    if await asyncio.to_thread(generator.wait) != 0:
        raise RuntimeError("tools/gen_japanese_receipts.py failed")
    receipts = load_receipts(cluster.root, args.receipts)
    outcome.receipts = len(receipts)
    employees = sorted({r.submitter for r in receipts if not r.card})
    await link_accounts(api, employees)

    workers = cluster.replicas["intake-worker"]
    bench = args.ocr_batch if args.ocr_batch * 2 < len(receipts) else 0
    if bench:
        one = await measure_ocr(api, sub, receipts[:bench])
        log(f"OCR, one worker: {one:.2f} receipts/s over {bench} (load {load()})")
        workers[1].start()
        await asyncio.to_thread(workers[1].wait_ready)
        two = await measure_ocr(api, sub, receipts[bench : 2 * bench])
        log(f"OCR, two workers: {two:.2f} receipts/s over {bench} (load {load()})")
        outcome.ocr_one, outcome.ocr_two = one, two
    else:
        workers[1].start()
        await asyncio.to_thread(workers[1].wait_ready)

    chaos_task = asyncio.create_task(chaos.run(), name="chaos")
    log(
        f"chaos on: SIGKILLs of {', '.join(KILL_KINDS)} until the flow ends (≥ {chaos.rounds} each)"
    )
    # Waves: upload, read, correct, import the wave's statement, claim, approve, pay — so
    # every step of the flow runs while processes are being killed.
    waves = [receipts[: 2 * bench]] if bench else []
    rest = receipts[2 * bench :]
    waves += [rest[i : i + args.wave] for i in range(0, len(rest), args.wave)]
    for number, wave in enumerate(waves):
        card = [r for r in wave if r.card]
        # Odd waves: the statement first, so charges wait for receipts still being read
        # (matched by the cards consumer); even waves: receipts first (matched on import).
        statement_first = number % 2 == 1
        if card and statement_first:
            await import_statement(api, statement_csv(card, number), f"chaos-{number}.csv")
        for receipt in wave:
            if not receipt.receipt_id:
                await upload(api, receipt)
                await asyncio.sleep(rng.uniform(0.0, args.upload_gap))
        await wait_read(api, wave, within=600)
        corrected = 0
        for receipt in wave:
            corrected += await correct_if_misread(api, receipt)
        if card and not statement_first:
            await import_statement(api, statement_csv(card, number), f"chaos-{number}.csv")
        personal = [r for r in wave if not r.card]
        for receipt in personal:
            await approve_claim(api, await submit_claim(api, receipt))
        await payout_run(api, f"chaos-run-{args.seed}-{number}")
        log(
            f"wave {number + 1}/{len(waves)}: {len(wave)} receipts read ({corrected} corrected), "
            f"{len(card)} charges imported, {len(personal)} claims approved, payout run created"
        )
    card = [r for r in receipts if r.card]
    await confirm_matches(api, len(card), within=args.settle_timeout)
    log(f"every one of {len(card)} charges matched")
    deadline = time.monotonic() + args.settle_timeout
    while time.monotonic() < deadline:
        payouts = await list_payouts(api)
        open_ = [p for p in payouts if p.status not in TERMINAL_PAYOUT]
        if payouts and not open_:
            break
        await asyncio.sleep(1.0)
    chaos.stop()
    log("payouts settled; chaos ends with the round in hand")
    await chaos_task
    return receipts


TERMINAL_PAYOUT = {
    payouts_pb2.PAYOUT_STATUS_PAID,
    payouts_pb2.PAYOUT_STATUS_FAILED,
    payouts_pb2.PAYOUT_STATUS_CANCELLED,
}


async def verify(
    cluster: Cluster, api: Api, receipts: list[Receipt], sub: Subscriber, outcome: Outcome
) -> None:
    # Receipts: each stored once, for its submitter, in the state its path ends in.
    for submitter in sorted({r.submitter for r in receipts}):
        mine = [r for r in receipts if r.submitter == submitter]

        async def go(ch: grpc.aio.Channel) -> list[Any]:
            stub = receipts_pb2_grpc.ReceiptIntakeStub(ch)
            reply = await stub.ListReceipts(
                receipts_pb2.ListReceiptsRequest(page_size=500), timeout=10
            )
            return list(reply.receipts)

        stored = await api.call("intake", f"demo-{submitter}", go)
        ids = Counter(r.receipt_id for r in stored)
        if len(stored) != len(mine):
            outcome.duplicated += max(0, len(stored) - len(mine))
            outcome.problems.append(f"{submitter}: {len(stored)} receipts stored, sent {len(mine)}")
        for receipt in mine:
            if ids[receipt.receipt_id] != 1:
                outcome.lose(f"receipt {receipt.receipt_id} stored {ids[receipt.receipt_id]}x")
        status = {r.receipt_id: r.status for r in stored}
        for receipt in mine:
            want = (
                receipts_pb2.RECEIPT_STATUS_MATCHED
                if receipt.card
                else receipts_pb2.RECEIPT_STATUS_CLAIMED
            )
            if status.get(receipt.receipt_id) != want:
                outcome.lose(
                    f"receipt {receipt.receipt_id} ({'card' if receipt.card else 'personal'}) "
                    f"ends {receipts_pb2.ReceiptStatus.Name(status.get(receipt.receipt_id, 0))}"
                )

    # Matches: every charge confirmed with exactly its receipt.
    card = [r for r in receipts if r.card]
    charges, matches = await list_charges(api)
    if len(charges) != len(card):
        outcome.problems.append(f"{len(charges)} charges stored for {len(card)} statement rows")
        outcome.duplicated += max(0, len(charges) - len(card))
        outcome.lost += max(0, len(card) - len(charges))
    by_key = {(r.total, r.day): r for r in card}
    for charge in charges:
        key = (charge.amount.minor_units, date(*_ymd(charge.transaction_date)))
        sent = by_key.get(key)
        match = matches.get(charge.match_id)
        if sent is None:
            outcome.problems.append(f"charge {charge.charge_id} matches nothing that was sent")
            continue
        if (
            match is None
            or match.status != cards_pb2.MATCH_STATUS_CONFIRMED
            or list(match.receipt_ids) != [sent.receipt_id]
        ):
            outcome.lose(f"charge {charge.charge_id} not matched to {sent.receipt_id}")

    # Claims: one per personal receipt, paid, for its total.
    personal = [r for r in receipts if not r.card]
    claimed: dict[str, list[payouts_pb2.Claim]] = defaultdict(list)
    for submitter in sorted({r.submitter for r in personal}):
        for claim in await list_claims(api, f"demo-{submitter}"):
            for line in claim.lines:
                claimed[line.receipt_id].append(claim)
    for receipt in personal:
        found = claimed.get(receipt.receipt_id, [])
        if len(found) > 1:
            outcome.duplicated += len(found) - 1
            outcome.problems.append(f"receipt {receipt.receipt_id} in {len(found)} claims")
        if not found:
            outcome.lose(f"receipt {receipt.receipt_id}: no claim")
            continue
        claim = found[0]
        if claim.status != payouts_pb2.CLAIM_STATUS_PAID:
            outcome.lose(
                f"claim {claim.claim_id} ends {payouts_pb2.ClaimStatus.Name(claim.status)}"
            )
        if claim.total.minor_units != receipt.total:
            outcome.problems.append(f"claim {claim.claim_id} total {claim.total.minor_units}")

    # Payouts: what we paid per employee is what they claimed; Stripe agrees, once.
    payouts = await list_payouts(api)
    paid: Counter[str] = Counter()
    for payout in payouts:
        if payout.status == payouts_pb2.PAYOUT_STATUS_PAID:
            paid[payout.employee] += payout.amount.minor_units
    owed: Counter[str] = Counter()
    for receipt in personal:
        owed[receipt.submitter] += receipt.total
    for employee in sorted(set(owed) | set(paid)):
        if paid[employee] > owed[employee]:
            outcome.double_paid += 1
            outcome.problems.append(f"{employee}: paid {paid[employee]}, owed {owed[employee]}")
        elif paid[employee] < owed[employee]:
            outcome.lose(f"{employee}: paid {paid[employee]}, owed {owed[employee]}")
    cluster.stripe.control.wait_webhooks_idle(30)
    audit = await stripe_audit(cluster)
    outcome.double_paid += audit.duplicates
    if audit.lost:
        outcome.lose(f"stripe audit: {audit.lost} payouts lost", audit.lost)
    outcome.problems += audit.problems
    log(audit.line())

    # Events: every outbox row on the stream exactly once; the subscriber saw each.
    await asyncio.sleep(2.0)  # the relays' last pass
    await sub.drain()
    tally = sub.tally
    outcome.events = len(tally.seqs)
    outcome.duplicated += sum(len(seqs) - 1 for seqs in tally.seqs.values())
    for service, url in cluster.db_urls.items():
        rows = await outbox_event_ids(url)
        missing = [e for e, _ in rows if e not in tally.seqs]
        unpublished = sum(1 for _, published in rows if not published)
        if missing:
            outcome.lose(f"{service}: {len(missing)} outbox events not on the stream", len(missing))
        if unpublished:
            outcome.problems.append(f"{service}: {unpublished} outbox rows still unpublished")
    dead = await sub.dead_letters()
    if dead:
        outcome.lose(f"{dead} events dead-lettered (a consumer gave up on them)", dead)
    types = Counter(tally.types.values())
    expectations: dict[str, int] = {
        subjects.RECEIPT_CAPTURED: len(receipts),
        subjects.CARD_CHARGE_IMPORTED: len(card),
        subjects.MATCH_CONFIRMED: len(card),
        subjects.CLAIM_SUBMITTED: len(personal),
        subjects.CLAIM_APPROVED: len(personal),
        subjects.PAYOUT_PAID: len(
            [p for p in payouts if p.status == payouts_pb2.PAYOUT_STATUS_PAID]
        ),
    }
    for event_type, facts in expectations.items():
        got = types.get(event_type, 0)
        if got < facts:
            outcome.lose(f"{event_type}: {got} events for {facts} facts", facts - got)
        elif got > facts:
            outcome.duplicated += got - facts
            outcome.problems.append(f"{event_type}: {got} events for {facts} facts")
    log(f"events by type: {dict(sorted(types.items()))}; {tally.deliveries} deliveries")
    await verify_audit_chain(api, types.get(subjects.AUDIT_RECORDED, 0), outcome)


async def verify_audit_chain(api: Api, recorded: int, outcome: Outcome) -> None:
    """Every audit.recorded event appended to the hash chain once, and the chain intact."""

    async def go(ch: grpc.aio.Channel) -> audit_pb2.VerifyChainResponse:
        stub = audit_pb2_grpc.AuditTrailStub(ch)
        reply: audit_pb2.VerifyChainResponse = await stub.VerifyChain(
            audit_pb2.VerifyChainRequest(), timeout=30
        )
        return reply

    deadline = time.monotonic() + 60
    while True:
        reply = await api.call("audit", "demo-daichi", go)
        if reply.records >= recorded or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    if not reply.ok:
        outcome.problems.append(f"audit chain broken: {list(reply.problems)[:3]}")
        outcome.lost += 1
    if reply.records < recorded:
        outcome.lose(
            f"audit: {reply.records} records for {recorded} events", recorded - reply.records
        )
    elif reply.records > recorded:
        outcome.duplicated += reply.records - recorded
        outcome.problems.append(f"audit: {reply.records} records for {recorded} events")
    log(f"audit chain: ok={reply.ok} records={reply.records} for {recorded} audit.recorded events")


def _ymd(d: common_pb2.Date) -> tuple[int, int, int]:
    return d.year, d.month, d.day


async def stripe_audit(cluster: Cluster) -> StripeAudit:
    db = await Database(cluster.db_urls["payouts"]).open()
    try:
        client = stripe.StripeClient(
            KEY,
            base_addresses={"api": cluster.stripe.api_base},
            http_client=stripe.HTTPXClient(timeout=30),
        )
        return await audit_against_stripe(db, client)
    finally:
        await db.close()


async def run(args: argparse.Namespace, root: Path) -> Outcome:
    started = time.monotonic()
    outcome = Outcome()
    admin_url = os.environ.get("SEISAN_TEST_PG_URL", DEFAULT_PG_URL)
    db_urls = await create_databases(admin_url, f"{os.getpid()}")
    nats_servers: list[NatsServer] = []
    stripe_process: LocalStripeProcess | None = None
    cluster: Cluster | None = None
    api: Api | None = None
    sub: Subscriber | None = None
    generator = generate_receipts(root, args.receipts, args.seed)  # while the stack starts
    try:
        nats_servers = await asyncio.to_thread(start_cluster, root)
        log(f"NATS cluster up: {', '.join(s.url for s in nats_servers)}")
        webhook_ports = [free_port(), free_port()]
        stripe_process = LocalStripeProcess(
            [
                "--webhook-url",
                f"http://127.0.0.1:{webhook_ports[0]}/stripe/webhook",
                "--webhook-secret",
                SECRET,
                "--fund",
                "jpy:100000000000",
                "--country",
                "JP",
                "--payout-delay",
                "0.5",
                "--seed",
                str(args.seed),
                "--webhook-first-retry",
                "0.3",
                "--webhook-max-attempts",
                "60",
                "--webhook-timeout",
                "5",
                "--log-level",
                "WARNING",
            ],
            log_path=root / "stripe.log",
        ).start()
        nats_urls = ",".join(s.url for s in nats_servers)
        replicas = build_replicas(root, nats_urls, db_urls, stripe_process.api_base, webhook_ports)
        cluster = Cluster(root, nats_servers, replicas, stripe_process, db_urls)
        # One of each first (migrations run once, streams are created R3), then the rest;
        # the second OCR worker waits for the throughput measurement.
        for kind in ("audit", "intake", "cards", "payouts", "intake-worker"):
            first = replicas[kind][0]
            first.start()
            await asyncio.to_thread(first.wait_ready)
        seconds = [replicas[k][1] for k in ("audit", "intake", "cards", "payouts")]
        for replica in seconds:
            replica.start()
        for replica in seconds:
            await asyncio.to_thread(replica.wait_ready)
        log(f"services up, two replicas each, in {time.monotonic() - started:.0f}s")

        sub = Subscriber(nats_urls)
        await sub.start()
        sub_task = asyncio.create_task(sub.run(), name="subscriber")
        api = Api(cluster)
        api.read_at = sub.read_at
        chaos = Chaos(
            cluster, random.Random(args.seed + 1), args.kills, (args.gap_min, args.gap_max)
        )
        receipts = await flow(args, cluster, api, chaos, outcome, generator, sub)
        log(f"chaos done: kills {dict(chaos.kills)}")
        outcome.problems += chaos.problems
        await verify(cluster, api, receipts, sub, outcome)
        sub.stop()
        await sub_task
    finally:
        if generator.poll() is None:
            generator.kill()
        if api is not None:
            await api.close()
        if sub is not None:
            sub.stop()
            await sub.close()
        if cluster is not None:
            for kind in reversed(list(cluster.replicas)):
                for replica in cluster.replicas[kind]:
                    replica.process.terminate(15)
        if stripe_process is not None:
            stripe_process.stop()
        for server in nats_servers:
            server.stop()
        await drop_databases(admin_url, db_urls)
    outcome.seconds = time.monotonic() - started
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=64, help="receipts in the flow")
    parser.add_argument(
        "--ocr-batch",
        type=int,
        default=10,
        help="receipts per OCR throughput measurement (0: skip)",
    )
    parser.add_argument(
        "--kills", type=int, default=2, help="at least this many kills of each kind"
    )
    parser.add_argument("--gap-min", type=float, default=1.0, help="seconds between kills, min")
    parser.add_argument("--gap-max", type=float, default=5.0, help="seconds between kills, max")
    parser.add_argument("--wave", type=int, default=8, help="receipts per wave of the flow")
    parser.add_argument("--upload-gap", type=float, default=2.0, help="max seconds between uploads")
    parser.add_argument("--settle-timeout", type=float, default=240.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="seisan-chaos-cluster-"))
    try:
        outcome = asyncio.run(run(args, root))
    except BaseException:
        log(f"failed; logs kept in {root}")
        raise
    for problem in outcome.problems[:30]:
        log(f"PROBLEM {problem}")
    bad = outcome.lost or outcome.duplicated or outcome.double_paid
    if args.keep or bad:
        log(f"work directory kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    if outcome.ocr_one:
        print(outcome.scaling_line(), flush=True)
    print(outcome.line(), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
