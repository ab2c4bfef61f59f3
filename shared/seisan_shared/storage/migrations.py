"""Run Alembic migrations on start, without an env.py or alembic.ini.

Every service database holds two branches: the shared one (outbox,
processed events — in ``seisan_shared/storage/versions``) and the service's
own (``<service>/migrations``). ``run_migrations`` upgrades both to their
heads. On PostgreSQL an advisory lock serialises replicas starting together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from seisan_shared.storage.db import Database

SHARED_VERSIONS = Path(__file__).resolve().parent / "versions"
_LOCK_KEY = 0x5E15A4  # advisory lock id for "migrating"


def _script(locations: list[Path]) -> tuple[Config, ScriptDirectory]:
    cfg = Config()
    cfg.set_main_option("script_location", str(SHARED_VERSIONS.parent))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", ":".join(str(p) for p in locations))
    return cfg, ScriptDirectory.from_config(cfg)


def _upgrade(conn: Connection, locations: list[Path]) -> None:
    cfg, script = _script(locations)

    def upgrade(rev: Any, _context: Any) -> Any:
        return script._upgrade_revs("heads", rev)

    with EnvironmentContext(cfg, script, fn=upgrade, destination_rev="heads") as env:
        env.configure(connection=conn, render_as_batch=True, transactional_ddl=True)
        with env.begin_transaction():
            env.run_migrations()


async def run_migrations(db: Database, service_versions: Path | None = None) -> None:
    """Upgrade ``db`` to the heads of the shared branch and the service's branch."""
    locations = [SHARED_VERSIONS]
    if service_versions is not None:
        locations.append(service_versions)
    async with db.engine.connect() as conn:
        if not db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            await conn.commit()
        try:
            await conn.run_sync(_upgrade, locations)
            await conn.commit()
        finally:
            if not db.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                await conn.commit()
