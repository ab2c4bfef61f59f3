"""`make chaos-cluster`, small: three NATS servers, two replicas of every service on
PostgreSQL, one SIGKILL of each kind during the flow — nothing lost, duplicated or paid twice.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TOOL = Path(__file__).resolve().parents[2] / "tools" / "chaos_cluster.py"
LINE = re.compile(
    r"^cluster: receipts=(\d+) events=(\d+) lost=(\d+) duplicated=(\d+) "
    r"double_paid=(\d+) seconds=(\d+)$"
)


async def _pg_reachable() -> str | None:
    url = os.environ.get("SEISAN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL not reachable at {url}: {exc!r}"
    await conn.close()
    return None


def test_small_chaos_run_loses_duplicates_and_double_pays_nothing() -> None:
    if (why := asyncio.run(_pg_reachable())) is not None:
        pytest.skip(why)
    args = ["--receipts", "8", "--ocr-batch", "0", "--kills", "1", "--wave", "4"]
    args += ["--gap-min", "0.5", "--gap-max", "2", "--upload-gap", "0.5", "--seed", "5"]
    done = subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    found = LINE.match(lines[-1])
    assert found, done.stdout[-3000:] + done.stderr[-3000:]
    receipts, events, lost, duplicated, double_paid, _ = map(int, found.groups())
    assert (receipts, lost, duplicated, double_paid) == (8, 0, 0, 0), done.stdout[-3000:]
    assert events > 8 * 3  # captured + extracted + the claims, matches, payouts and audit
    kills = [line for line in lines if "chaos: SIGKILL" in line]
    assert {k.split()[3].split(".")[0] for k in kills if "nats" not in k} == {
        "intake",
        "intake-worker",
        "cards",
        "payouts",
        "audit",
    }, kills
    assert any("SIGKILL nats" in k for k in kills)
    assert done.returncode == 0
