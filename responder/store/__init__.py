"""Persistence: one interface (`Store`), two backends chosen by RESPONDER_DATABASE."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from responder.clock import Clock
from responder.store.base import Store

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(database: str) -> bool:
    return database.startswith(POSTGRES_SCHEMES)


def shown_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(an unreadable postgresql:// URL)"
    if password is None:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def make_store(database: str, clock: Clock) -> Store:
    """The backend RESPONDER_DATABASE names: a postgresql:// URL, or a SQLite file path."""
    if is_postgres(database):
        from responder.store.postgres import PostgresStore

        return PostgresStore(database, clock)
    from responder.store.sqlite import SQLiteStore

    return SQLiteStore(Path(database), clock)


__all__ = ["POSTGRES_SCHEMES", "Store", "is_postgres", "make_store", "shown_url"]
