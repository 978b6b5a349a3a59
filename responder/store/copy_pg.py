"""The PostgreSQL side of `responder migrate-to`: the target brought to the current schema; each
batch of source rows copied (COPY, binary) into a temporary table and merged from there in one
statement (`ON CONFLICT` on the primary key, a row that is already equal left alone); the
target's rows the source no longer has removed; the identity sequences set past the highest
id."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import asyncpg

from responder.clock import Clock
from responder.store import pg_schema, shown_url
from responder.store.copy_tables import TABLES, WITH_SEQUENCES, Table
from responder.store.pg_search import CLEAN_NUMBERS

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 600.0  # a batch of thousands of rows, on a busy server
COPY_LOCK = 0x7265_7370_636F_7079  # "respcopy": one migrate-to at a time per target


class TargetError(Exception):
    """The target cannot be used; the message says why, the password masked."""


async def connect(url: str, clock: Clock) -> Any:
    """A connection to the target with responder's schema applied, holding the copy lock."""
    shown = shown_url(url)
    try:
        conn = await asyncpg.connect(
            url,
            timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            server_settings={
                "application_name": "responder-migrate-to",
                "timezone": "UTC",
                # A batch's commit does not wait for the disk; finish()'s does, for them all.
                "synchronous_commit": "off",
            },
        )
    except Exception as err:
        reason = pg_schema.scrubbed(pg_schema.described(err), url)
        raise TargetError(f"cannot open {shown}: {reason}") from None
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", COPY_LOCK):
            raise TargetError(f"{shown}: another migrate-to is copying into it now")
        await pg_schema.migrate(conn, clock)
        for table in TABLES:
            await conn.execute(
                f"CREATE TEMPORARY TABLE {_staging(table)} (LIKE {table.name}) "
                "ON COMMIT DELETE ROWS"
            )
    except Exception as err:
        await conn.close()
        if isinstance(err, TargetError):
            raise
        reason = pg_schema.scrubbed(pg_schema.described(err), url)
        raise TargetError(f"cannot prepare {shown}: {reason}") from None
    return conn


async def close(conn: Any) -> None:
    """Closes the connection; one the server has dropped is let go without a goodbye."""
    try:
        await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)
    except Exception:
        conn.terminate()


def _quoted(table: Table) -> list[str]:
    return [f'"{name}"' for name in table.names]


def _key(table: Table) -> str:
    """The key column as compared: text bytewise ("C"), the order SQLite reads it in."""
    return f'"{table.key}"' + (' COLLATE "C"' if table.key_kind == "text" else "")


def _scalar(table: Table) -> str:
    """The key's type, for a parameter compared with it."""
    return "bigint" if table.key_kind == "int" else "text"


def _staging(table: Table) -> str:
    """The temporary table a batch is copied into before it is merged (emptied at commit)."""
    return f"copying_{table.name}"


async def _stage(conn: Any, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """The batch into its staging table with COPY (binary, no statement per row)."""
    await conn.copy_records_to_table(_staging(table), records=rows, columns=list(table.names))


def _merge(table: Table) -> str:
    """The staged rows into the table: new keys inserted, rows that differ updated, equal
    rows left alone."""
    columns = ", ".join(_quoted(table))
    others = [q for q in _quoted(table) if q != f'"{table.key}"']
    return (
        f"INSERT INTO {table.name} AS t ({columns}) SELECT {columns} FROM {_staging(table)} "
        f'ON CONFLICT ("{table.key}") DO UPDATE SET '
        + ", ".join(f"{q} = excluded.{q}" for q in others)
        + f" WHERE ({', '.join(f't.{q}' for q in others)}) IS DISTINCT FROM "
        f"({', '.join(f'excluded.{q}' for q in others)}) "
        # xmax is 0 on a row this statement inserted, not on one it updated
        "RETURNING (t.xmax = 0) AS inserted"
    )


async def counts(conn: Any) -> dict[str, int]:
    found = {}
    for table in TABLES:
        found[table.name] = int(await conn.fetchval(f"SELECT COUNT(*) FROM {table.name}"))
    return found


async def database_id(conn: Any, key: str) -> str | None:
    value = await conn.fetchval("SELECT value FROM meta WHERE key = $1", key)
    return None if value is None else str(value)


async def highest_id(conn: Any, table: Table) -> int:
    return int(await conn.fetchval(f"SELECT COALESCE(MAX(id), 0) FROM {table.name}"))


async def apply_batch(
    conn: Any, table: Table, rows: list[tuple[Any, ...]], after: Any
) -> tuple[int, int, int]:
    """Merges a batch of source rows (in key order, after key `after`; None: the first batch)
    and removes the target's rows in the same key range that the batch lacks, in one
    transaction. (new, changed, removed)."""
    last = rows[-1][table.names.index(str(table.key))]
    scalar = _scalar(table)
    in_range = f"{_key(table)} <= $1 AND ($2::{scalar} IS NULL OR {_key(table)} > $2)"
    async with conn.transaction():
        await _stage(conn, table, rows)
        returned = await conn.fetch(_merge(table))
        # Every key of the batch is in the range now: more rows there means some to remove.
        present = await conn.fetchval(
            f"SELECT COUNT(*) FROM {table.name} WHERE {in_range}", last, after
        )
        removed = 0
        if present > len(rows):
            staged = f'SELECT 1 FROM {_staging(table)} AS s WHERE s."{table.key}" = '
            not_staged = f'NOT EXISTS ({staged}{table.name}."{table.key}")'
            removed = await _remove(conn, table, f"{in_range} AND {not_staged}", [last, after])
    new = sum(1 for r in returned if r["inserted"])
    return new, len(returned) - new, removed


async def remove_after(conn: Any, table: Table, after: Any) -> int:
    """Removes the target's rows past the source's last key (every row when `after` is None:
    the source's table is empty)."""
    scalar = _scalar(table)
    async with conn.transaction():
        return await _remove(conn, table, f"($1::{scalar} IS NULL OR {_key(table)} > $1)", [after])


async def _remove(conn: Any, table: Table, where: str, args: list[Any]) -> int:
    """Deletes the rows `where` selects; a message's attempts go with it."""
    if table.name == "messages":
        await conn.execute(
            f"DELETE FROM attempts WHERE message_id IN (SELECT id FROM messages WHERE {where})",
            *args,
        )
    status: str = await conn.execute(f"DELETE FROM {table.name} WHERE {where}", *args)
    return int(status.split()[-1])


async def replace_whole(
    conn: Any, table: Table, rows: list[tuple[Any, ...]]
) -> tuple[int, int, int]:
    """A table without a key: left alone when it holds the same rows already (as a multiset),
    else emptied and filled with the source's. (new, changed, removed)."""
    async with conn.transaction():
        present = await conn.fetch(f"SELECT {', '.join(_quoted(table))} FROM {table.name}")
        have, want = Counter(tuple(r) for r in present), Counter(rows)
        if have == want:
            return 0, 0, 0
        await conn.execute(f"DELETE FROM {table.name}")
        await conn.copy_records_to_table(table.name, records=rows, columns=list(table.names))
    return sum((want - have).values()), 0, sum((have - want).values())


async def finish(conn: Any) -> None:
    """The copied contacts' numbers moved from their index's pending list into the index
    (their trigger wrote them there, migration 0016; the service's sweep would otherwise move
    them within its first seconds); then each identity sequence continues after the highest
    id copied. The last commit waits for the disk, and with it every one before it. Moving
    the list takes the index's owner: a user who may only read and write leaves it to
    PostgreSQL (README "PostgreSQL")."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        await conn.fetchval(CLEAN_NUMBERS)
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = on")
        for name in WITH_SEQUENCES:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"COALESCE(MAX(id), 0) + 1, false) FROM {name}"
            )
