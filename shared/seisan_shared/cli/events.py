"""`seisan events tail`: a real JetStream subscriber printing events, decoded, as they arrive."""

from __future__ import annotations

import asyncio
import json
import signal

import nats
import typer
from google.protobuf.json_format import MessageToDict
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from seisan_shared import catalogue, events, subjects
from seisan_shared.cli.context import resolve
from seisan_shared.transport import load_transport

app = typer.Typer(help="Watch the event bus.", no_args_is_help=True)


def render(envelope: events.Envelope, as_json: bool) -> str:
    try:
        payload = MessageToDict(events.unpack_payload(envelope), preserving_proto_field_name=True)
    except Exception:  # an event type this CLI does not know (newer publisher)
        payload = {"@type_url": envelope.payload.type_url, "@bytes": len(envelope.payload.value)}
    occurred = envelope.occurred_at.ToDatetime().isoformat(timespec="milliseconds") + "Z"
    if as_json:
        return json.dumps(
            {
                "event_id": envelope.event_id,
                "type": envelope.type,
                "source": envelope.source,
                "occurred_at": occurred,
                "aggregate_id": envelope.aggregate_id,
                "correlation_id": envelope.correlation_id,
                "actor": envelope.actor,
                "payload": payload,
            },
            ensure_ascii=False,
        )
    head = f"{occurred} {envelope.type:<22} {envelope.source:<8} {envelope.aggregate_id}"
    extras = f"  actor={envelope.actor}" if envelope.actor else ""
    if envelope.correlation_id:
        extras += f"  corr={envelope.correlation_id}"
    return f"{head}{extras}\n    {json.dumps(payload, ensure_ascii=False)}"


async def _tail(url: str, subject: str, replay: bool, count: int, as_json: bool) -> int:
    catalogue.import_all()
    # SEISAN_NATS_USER/_PASSWORD (the `reader` user on a cluster) and SEISAN_TLS_* if set.
    signin = {k: v for k, v in load_transport().bus_options().items() if v is not None}
    servers = [u.strip() for u in url.split(",") if u.strip()]  # a cluster: every server
    nc = await nats.connect(servers, name="seisan-events-tail", max_reconnect_attempts=-1, **signin)
    js = nc.jetstream()
    stream = (
        subjects.DLQ_STREAM
        if subject.startswith(subjects.DLQ_PREFIX + ".")
        else (subjects.EVENTS_STREAM)
    )
    policy = DeliverPolicy.ALL if replay else DeliverPolicy.NEW
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    warned = False
    while True:
        try:
            sub = await js.subscribe(
                subject,
                stream=stream,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=policy),
            )
            break
        except NotFoundError:
            if not warned:
                typer.secho(f"waiting for stream {stream} (is the stack up?)", err=True)
                warned = True
            if stop.is_set():
                await nc.drain()
                return 0
            await asyncio.sleep(0.5)
    seen = 0
    try:
        while not stop.is_set() and (count == 0 or seen < count):
            try:
                msg = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                continue
            except nats.errors.TimeoutError:
                continue
            if stream == subjects.DLQ_STREAM:
                headers = dict(msg.headers or {})
                typer.echo(f"{msg.subject} {json.dumps(headers, ensure_ascii=False)}")
            else:
                typer.echo(render(events.decode(msg.data), as_json))
            seen += 1
    finally:
        await sub.unsubscribe()
        await nc.drain()
    return seen


@app.command()
def tail(
    subject: str = typer.Option(
        "seisan.>",
        "--subject",
        "-s",
        help="Subject filter, e.g. 'seisan.receipt.>' or 'dlq.>' for dead letters.",
    ),
    replay: bool = typer.Option(False, "--all", help="Start from the first stored event."),
    count: int = typer.Option(0, help="Stop after this many events (0: until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    nats_url: str = typer.Option(None, "--nats-url", help="Default: SEISAN_NATS_URL or var/."),
) -> None:
    """Print events as they happen, decoded from protobuf (Ctrl-C to stop).

    Example: `seisan events tail -s 'seisan.receipt.>'` while uploading a receipt.
    """
    target = resolve(nats_url=nats_url)
    if not target.nats_url:
        typer.secho(
            "seisan: no NATS URL — is `seisan up` running here? (or set SEISAN_NATS_URL)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(2)
    asyncio.run(_tail(target.nats_url, subject, replay, count, as_json))
