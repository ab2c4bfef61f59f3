"""Storage: SQLAlchemy 2 async engines (SQLite default, PostgreSQL by URL) and migrations."""

from seisan_shared.storage.db import Database, sqlite_url_for
from seisan_shared.storage.migrations import run_migrations

__all__ = ["Database", "run_migrations", "sqlite_url_for"]
