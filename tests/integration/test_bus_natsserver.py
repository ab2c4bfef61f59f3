"""The embedded nats-server: free port, JetStream on disk, restart keeps port and data."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from google.protobuf.struct_pb2 import Value

from seisan_shared.bus.client import BusError, EventBus
from seisan_shared.bus.natsserver import (
    ClusterSpec,
    NatsServer,
    NatsServerError,
    free_port,
    nats_server_binary,
)
from seisan_shared.events import new_event
from seisan_shared.subjects import EVENTS_STREAM, RECEIPT_CAPTURED


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_binary_is_the_wheels() -> None:
    binary = nats_server_binary()
    assert binary.name == "nats-server"
    assert binary.is_file()


def test_config_is_loopback_fsync_always(tmp_path: Path) -> None:
    server = NatsServer(
        tmp_path, name="cfg", cluster=ClusterSpec("c", 6250, ["nats://127.0.0.1:6251"])
    )
    text = server.render_config()
    assert 'listen: "127.0.0.1:-1"' in text
    assert "sync_interval: always" in text
    assert 'server_name: "cfg"' in text
    assert 'routes: ["nats://127.0.0.1:6251"]' in text
    with pytest.raises(ValueError, match="4222"):
        NatsServer(tmp_path, port=4222)


async def test_start_serves_jetstream_and_stop_frees_the_port(tmp_path: Path) -> None:
    async with NatsServer(tmp_path / "n", name="one") as server:
        assert server.client_port not in (4222, 0)
        assert server.url == f"nats://127.0.0.1:{server.client_port}"
        nc = await nats.connect(server.url)
        info = await nc.jetstream().account_info()
        assert info.limits is not None
        await nc.close()
        port = server.client_port
    assert not server.running
    assert not _accepts(port)


async def test_restart_keeps_port_and_stored_events(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "n")
    with server:
        bus = await EventBus(server.url, name="t").connect()
        await bus.ensure_streams()
        env = new_event(RECEIPT_CAPTURED, source="t", aggregate_id="r1", payload=_payload())
        seq = await bus.publish(env)
        port = server.client_port
        await asyncio.to_thread(server.kill)  # a crash: only what was fsynced survives
        await _until(lambda: not bus.is_connected)
        await asyncio.to_thread(server.start)
        assert server.client_port == port
        # The bus reconnects by itself; the acked event survived the SIGKILL.
        await _until(lambda: bus.is_connected)
        info = await bus.js.stream_info(EVENTS_STREAM)
        assert info.state.messages == 1
        assert seq == 1
        # Same Nats-Msg-Id again is a duplicate: same sequence, no new message.
        assert await bus.publish(env) == seq
        await bus.close()


def test_a_bad_config_fails_with_the_log_tail(tmp_path: Path) -> None:
    server = NatsServer(tmp_path, extra_config="this is { not valid", startup_timeout=5)
    with pytest.raises(NatsServerError, match="nats-server log tail"):
        server.start()
    assert not server.running


async def test_connecting_to_nothing_fails_after_the_timeout() -> None:
    bus = EventBus(f"nats://127.0.0.1:{free_port()}", name="t", connect_timeout=1.0)
    with pytest.raises(BusError, match="could not connect"):
        await bus.connect()
    assert not bus.is_connected


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _payload() -> Value:
    return Value(string_value="x")


async def test_three_processes_form_a_cluster_with_a_replicated_stream(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    servers = [
        NatsServer(
            tmp_path / f"n{i}",
            name=f"n{i}",
            cluster=ClusterSpec(
                "seisan", ports[i], [f"nats://127.0.0.1:{p}" for p in ports if p != ports[i]]
            ),
        )
        for i in range(3)
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        await asyncio.gather(*(asyncio.to_thread(s.wait_healthy, 30) for s in servers))
        async with EventBus(servers[1].url, name="t") as bus:
            await bus.ensure_streams(replicas=3)
            info = await bus.js.stream_info(EVENTS_STREAM)
            assert info.config.num_replicas == 3
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2
            env = new_event(RECEIPT_CAPTURED, source="t", aggregate_id="r1", payload=_payload())
            assert await bus.publish(env) == 1
    finally:
        for server in servers:
            server.stop()


async def test_bus_given_every_server_fails_over_when_its_server_dies(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    servers = [
        NatsServer(
            tmp_path / f"n{i}",
            name=f"n{i}",
            cluster=ClusterSpec(
                "seisan", ports[i], [f"nats://127.0.0.1:{p}" for p in ports if p != ports[i]]
            ),
        )
        for i in range(3)
    ]
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in servers))
        await asyncio.gather(*(asyncio.to_thread(s.wait_healthy, 30) for s in servers))
        urls = ",".join(s.url for s in servers)  # what SEISAN_NATS_URL carries on a cluster
        async with EventBus(urls, name="t", ack_timeout=2) as bus:
            await bus.ensure_streams(replicas=3)
            first = new_event(RECEIPT_CAPTURED, source="t", aggregate_id="r1", payload=_payload())
            assert await bus.publish(first) == 1
            connected = bus.nc.connected_url
            assert connected is not None
            victim = next(s for s in servers if s.client_port == connected.port)
            victim.kill()
            second = new_event(RECEIPT_CAPTURED, source="t", aggregate_id="r2", payload=_payload())
            deadline = time.monotonic() + 30
            while True:  # reconnect to a survivor, and the stream elects a new leader
                try:
                    seq = await bus.publish(second)
                    break
                except Exception:
                    assert time.monotonic() < deadline, "no fail-over within 30s"
                    await asyncio.sleep(0.2)
            assert seq == 2
            after = bus.nc.connected_url
            assert after is not None and after.port != victim.client_port
            assert await bus.publish(first) == 1  # the dedup window survived the fail-over
    finally:
        for server in servers:
            server.stop()


async def test_closing_a_bus_whose_server_is_gone_does_not_raise(tmp_path: Path) -> None:
    # `seisan up` stops NATS last, but a supervisor or an operator may not: a service
    # that stops after its server died must still exit cleanly.
    server = NatsServer(tmp_path / "gone", name="gone")
    server.start()
    bus = EventBus(server.url, name="late-stopper", connect_timeout=10)
    await bus.connect()
    await bus.nc.publish("seisan.test.unacked", b"x" * 1024)  # something left to flush
    server.kill()
    await bus.close()  # drain fails, then close's own flush may fail: neither escapes
    assert bus._nc is None


def test_own_session_keeps_the_server_out_of_the_callers_process_group(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "own", name="own", own_session=True)
    server.start()
    try:
        assert server._proc is not None
        assert os.getpgid(server._proc.pid) != os.getpgid(0)
    finally:
        server.stop()
