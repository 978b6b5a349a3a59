"""Persistence: one interface (`Store`), two backends chosen by RESPONDER_DATABASE."""

from __future__ import annotations

from pathlib import Path

from responder.clock import Clock
from responder.store.base import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(database: str) -> bool:
    return database.startswith(POSTGRES_SCHEMES)


def make_store(database: str, clock: Clock) -> Store:
    """The backend RESPONDER_DATABASE names: a postgresql:// URL, or a SQLite file path."""
    if is_postgres(database):
        from responder.store.postgres import PostgresStore

        return PostgresStore(database, clock)
    from responder.store.sqlite import SQLiteStore

    return SQLiteStore(Path(database), clock)


__all__ = ["POSTGRES_SCHEMES", "Store", "is_postgres", "make_store"]
