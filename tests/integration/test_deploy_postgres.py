"""deploy/postgres/init-databases.sh on the real PostgreSQL: one database and role per service."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from seisan_shared.storage import Database, run_migrations

INIT = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "init-databases.sh"
SERVICES = ("intake", "cards", "payouts", "audit")

pytestmark = pytest.mark.postgres


def _admin_url() -> str:
    return os.environ.get("SEISAN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed (the postgres image runs the script with it)")
    try:
        admin = await asyncpg.connect(_admin_url(), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {_admin_url()}: {exc!r}")
    name = f"seisan_t_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        for svc in SERVICES:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}_{svc}" WITH (FORCE)')
            await admin.execute(f'DROP ROLE IF EXISTS "{name}_{svc}"')
        await admin.close()


def _run(prefix: str, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    url = urlsplit(_admin_url())
    env = dict(os.environ, SEISAN_PG_PREFIX=prefix, PGHOST=url.hostname or "127.0.0.1")
    env.update(PGPORT=str(url.port or 5432), POSTGRES_USER=url.username or "postgres")
    if url.password:
        env["PGPASSWORD"] = url.password
    env.update({f"SEISAN_PG_{svc.upper()}_PASSWORD": pw for svc, pw in passwords.items()})
    return subprocess.run(["sh", str(INIT)], env=env, capture_output=True, text=True, timeout=60)


def _url(role: str, password: str, database: str) -> str:
    url = urlsplit(_admin_url())
    return f"postgresql://{role}:{password}@{url.hostname}:{url.port or 5432}/{database}"


async def test_each_service_gets_its_own_database_it_can_migrate_and_no_other(prefix: str) -> None:
    passwords = {svc: f"pw-{svc}-{uuid.uuid4().hex[:6]}'q" for svc in SERVICES}
    done = _run(prefix, passwords)
    assert done.returncode == 0, done.stderr

    audit = f"{prefix}_audit"
    db = Database(_url(audit, passwords["audit"], audit))
    await db.open()
    try:
        await run_migrations(db)  # the shared outbox/processed tables, as the service's role
    finally:
        await db.close()

    with pytest.raises(asyncpg.PostgresError, match="CONNECT"):
        await asyncpg.connect(_url(audit, passwords["audit"], f"{prefix}_payouts"), timeout=5)


async def test_a_missing_password_stops_the_script(prefix: str) -> None:
    done = _run(prefix, {"intake": "x"})
    assert done.returncode != 0
    assert "SEISAN_PG_CARDS_PASSWORD is required" in done.stderr
