"""`responder migrate-to`: a SQLite database copied into PostgreSQL, every table, ids kept.

The target becomes an exact copy of the source as it was at one moment (one read transaction):
rows it lacks are inserted, rows that differ are updated, rows the source no longer has (ended
sessions, expired leases) are removed. So a second run changes nothing, and a run after the
service's final stop brings an earlier copy up to date. The target must be empty or a copy an
earlier run made of this same source (the source's database id, in `meta`, says which):
anything else would mix two histories, and is refused before anything is written."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from responder.clock import Clock
from responder.config import StartupError
from responder.store import copy_pg, pg_schema
from responder.store.copy_sqlite import DATABASE_ID, SourceError, SqliteSource
from responder.store.copy_tables import TABLES, BadValue, Table


class CopyFailed(Exception):
    """The copy was refused before anything was written, or stopped; the message says why."""


@dataclass
class Copied:
    """One table's copy: rows read from the source's snapshot so far, what changed in the
    target, and both counts at the end."""

    table: str
    source: int = 0
    read: int = 0
    new: int = 0
    changed: int = 0
    removed: int = 0
    target: int = -1

    @property
    def matches(self) -> bool:
        return self.source == self.target


Progress = Callable[[Copied, bool], None]  # after each batch; True once the table is done


async def copy_to_postgres(
    source_path: Path, url: str, clock: Clock, progress: Progress, batch: int | None = None
) -> list[Copied]:
    """Copies every table of the SQLite database at `source_path` into the PostgreSQL
    database at `url`, sets the id sequences past the highest ids and counts both sides.
    `batch` caps the rows per batch (each table has its own size otherwise)."""
    source = SqliteSource(source_path, clock)
    try:
        conn = await copy_pg.connect(url, clock)
    except copy_pg.TargetError as err:
        raise CopyFailed(str(err)) from None
    try:
        await source.open()
    except (SourceError, StartupError) as err:
        source.close()
        await copy_pg.close(conn)
        raise CopyFailed(str(err)) from None
    try:
        await _check_target(conn, source)
        results = []
        for table in TABLES:
            size = min(table.batch, batch or table.batch)
            results.append(await _copy(conn, source, table, size, progress))
        await copy_pg.finish(conn)
        after = await copy_pg.counts(conn)
    except BadValue as err:
        raise CopyFailed(f"a source value cannot be copied: {err}") from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, sqlite3.Error) as err:
        reason = pg_schema.scrubbed(pg_schema.described(err), url)
        raise CopyFailed(
            f"the copy stopped: {reason}. What was copied stays; run migrate-to again to carry on."
        ) from None
    finally:
        await copy_pg.close(conn)
        source.close()
    for copied in results:
        copied.target = after[copied.table]
    return results


async def _check_target(conn: Any, source: SqliteSource) -> None:
    """The target is empty, or an earlier copy of this source that no instance has written to
    since: anything else is refused."""
    # conversation_counts always has its one row (the counts of no contacts on a new one).
    counted = (await copy_pg.counts(conn)).items()
    present = {name: n for name, n in counted if n and name != "conversation_counts"}
    if not present:
        return
    if await copy_pg.database_id(conn, DATABASE_ID) != source.database_id:
        listed = ", ".join(f"{name} {n:,}" for name, n in present.items())
        raise CopyFailed(
            f"the target database is not empty and is not an earlier copy of {source.path} "
            f"(rows: {listed}). migrate-to copies into an empty database, or brings up to date "
            "one that an earlier run filled from this same file; create a new database "
            "(createdb) and give its URL."
        )
    for table in TABLES:
        if not table.append_only:
            continue
        theirs = await copy_pg.highest_id(conn, table)
        ours = await asyncio.to_thread(source.highest_id, table)
        if theirs > ours:
            raise CopyFailed(
                f"the target has {table.name} the source does not (ids past {ours:,}, up to "
                f"{theirs:,}): instances have run on it since the last copy, and copying again "
                "would mix the two histories. Keep the target as it is, or copy into a new "
                "database."
            )


async def _copy(
    conn: Any, source: SqliteSource, table: Table, size: int, progress: Progress
) -> Copied:
    copied = Copied(table.name, source=await asyncio.to_thread(source.count, table))
    if table.key is None:
        rows = await asyncio.to_thread(source.whole, table)
        copied.read = len(rows)
        copied.new, copied.changed, copied.removed = await copy_pg.replace_whole(conn, table, rows)
        progress(copied, True)
        return copied
    index = table.names.index(table.key)
    after: Any = None  # the last key copied, as written to the target
    # The next batch is read (in a thread) while the target takes this one.
    reading: asyncio.Future[tuple[list[tuple[Any, ...]], Any]] | None
    reading = asyncio.ensure_future(asyncio.to_thread(source.batch, table, None, size))
    try:
        while reading is not None:
            rows, last = await reading
            reading = None
            if not rows:
                break
            if len(rows) == size:
                reading = asyncio.ensure_future(asyncio.to_thread(source.batch, table, last, size))
            new, changed, removed = await copy_pg.apply_batch(conn, table, rows, after)
            after = rows[-1][index]
            copied.read += len(rows)
            copied.new, copied.changed = copied.new + new, copied.changed + changed
            copied.removed += removed
            progress(copied, False)
    finally:
        if reading is not None:  # a failure while the next batch was read: let it finish
            with contextlib.suppress(Exception):
                await reading
    copied.removed += await copy_pg.remove_after(conn, table, after)
    progress(copied, True)
    return copied
