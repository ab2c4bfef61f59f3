"""`python -m seisan_audit` as `seisan up` runs it: consume, chain, checkpoint, serve, stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from seisan.audit.v1 import audit_pb2, audit_pb2_grpc
from seisan_audit.entrypoints.cli import app
from seisan_shared.audit import audit_event
from seisan_shared.auth import TokenStore
from seisan_shared.bus import EventBus, NatsServer
from seisan_shared.bus.natsserver import free_port
from seisan_shared.cli.health import check
from seisan_shared.grpc import channel


async def eventually(check_: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check_():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


class Running:
    def __init__(self, proc: asyncio.subprocess.Process, address: str, log: Path) -> None:
        self.proc = proc
        self.address = address
        self.log = log


@pytest.fixture
async def service(
    nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[tuple[Running, dict[str, str]]]:
    var = tmp_path / "var"
    tokens_file = tmp_path / "tokens.toml"
    tokens = {
        "admin": TokenStore.issue(tokens_file, "ada", ["admin"]),
        "staff": TokenStore.issue(tokens_file, "sam", ["staff"]),
    }
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEISAN_")}
    env.update(
        {
            "SEISAN_NATS_URL": nats_server.url,
            "SEISAN_VAR_DIR": str(var),
            "SEISAN_TOKENS_FILE": str(tokens_file),
            "SEISAN_AUDIT_GRPC_ADDRESS": address,
            "SEISAN_AUDIT_CHECKPOINT_INTERVAL": "0.2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = tmp_path / "audit.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "seisan_audit", env=env, stdout=out, stderr=out
        )
    running = Running(proc, address, log)
    try:

        async def serving() -> bool:
            if proc.returncode is not None:
                raise AssertionError(f"audit exited early:\n{log.read_text()}")
            return await check(address, deadline_seconds=1.0) == "SERVING"

        await eventually(serving)
        yield running, tokens
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_service_chains_serves_checkpoints_and_stops_cleanly(
    service: tuple[Running, dict[str, str]], nats_server: NatsServer, tmp_path: Path
) -> None:
    running, tokens = service
    async with EventBus(nats_server.url, name="test-publisher") as bus:
        for i in range(3):
            await bus.publish(
                audit_event(
                    source="payouts",
                    actor="treasury-bot",
                    action="payout.created",
                    entity_type="payout",
                    entity_id=f"po-{i % 2}",
                    before=None,
                    after={"amount": {"minor_units": 5000 + i, "currency": "JPY"}},
                )
            )

    async with channel(running.address, tokens["admin"]) as ch:
        stub = audit_pb2_grpc.AuditTrailStub(ch)

        async def chained() -> bool:
            reply = await stub.VerifyChain(audit_pb2.VerifyChainRequest())
            return reply.ok and reply.records == 3

        await eventually(chained)

        page = await stub.ListRecords(audit_pb2.ListRecordsRequest(entity_id="po-0", page_size=1))
        assert [e.seq for e in page.entries] == [1]
        assert page.entries[0].record.action == "payout.created"
        assert json.loads(page.entries[0].record.after_json)["amount"]["minor_units"] == 5000
        assert page.next_page_token
        rest = await stub.ListRecords(
            audit_pb2.ListRecordsRequest(entity_id="po-0", page_token=page.next_page_token)
        )
        assert [e.seq for e in rest.entries] == [3]
        assert rest.next_page_token == ""
        with pytest.raises(grpc.aio.AioRpcError) as bad_token:
            await stub.ListRecords(audit_pb2.ListRecordsRequest(page_token="x"))
        assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    async with channel(running.address, tokens["staff"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await audit_pb2_grpc.AuditTrailStub(ch).VerifyChain(audit_pb2.VerifyChainRequest())
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    checkpoints = tmp_path / "var" / "audit-checkpoints.jsonl"

    async def checkpointed() -> bool:
        if not checkpoints.exists():
            return False
        lines = checkpoints.read_text().splitlines()
        return bool(lines) and json.loads(lines[-1])["records"] == 3

    await eventually(checkpointed)

    running.proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(running.proc.wait(), 20)
    assert code == 0, running.log.read_text()

    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        [
            "verify",
            "--database-url",
            f"sqlite:///{tmp_path / 'var' / 'audit.db'}",
            "--checkpoints",
            str(checkpoints),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("audit: records=3 ")
    assert "checkpoint" in result.output
