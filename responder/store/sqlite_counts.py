"""The dashboard's counts on SQLite (migration 0022): read from the tables the writer keeps,
never from the messages themselves. Triggers append each message's +1/-1 to
message_count_changes; `fold`, run by the service's sweep every few seconds (fold_counts),
moves them into message_counts (per UTC hour), message_days (per UTC day) and message_hours
(per hour and direction). A period's whole UTC days come from message_days, its first and last
hours from message_counts (store/counts.py: split), the daily chart from message_hours; the
changes not folded yet are added. A part of SQLiteStore."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from responder.store.counts import CountKey, end_key, hour_key, hour_moment, period_params

if TYPE_CHECKING:
    import aiosqlite

T = TypeVar("T")
# Changes folded per transaction. At 1,000 webhooks/s five seconds append about 10,000, and
# folding them at once held the event loop 30-80 ms every five seconds (bench/steady.py on
# large: the seconds whose p99 missed the target were those of the sweep).
FOLD_ROWS = 1000
# Every count of the period, by direction, provider, status and rule (parameters:
# counts.period_params).
PERIOD = (
    "(SELECT direction, provider, status, rule, n FROM message_counts "
    "WHERE hour >= ? AND hour < ? UNION ALL "
    "SELECT direction, provider, status, rule, n FROM message_days "
    "WHERE day >= ? AND day < ? UNION ALL "
    "SELECT direction, provider, status, rule, n FROM message_counts "
    "WHERE hour >= ? AND hour < ? UNION ALL "
    "SELECT direction, provider, status, rule, n FROM message_count_changes "
    "WHERE hour >= ? AND hour < ?) AS kept"
)
HOURS = (
    "(SELECT hour, direction, n FROM message_hours WHERE hour >= ?1 AND hour < ?2 UNION ALL "
    "SELECT hour, direction, n FROM message_count_changes WHERE hour >= ?1 AND hour < ?2) "
    "AS kept"
)
UPSERTS = (
    "INSERT INTO message_counts (hour, direction, provider, status, rule, n) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
    "INSERT INTO message_days (day, direction, provider, status, rule, n) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
    "INSERT INTO message_hours (hour, direction, n) "
    "VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
)


def fold(db: sqlite3.Connection, limit: int) -> int:
    """Moves the `limit` oldest changes the triggers appended into the counts, inside the
    caller's transaction (which holds the write lock: nothing is appended meanwhile); how many
    there were. Summed here (thousands of rows are a few keys), then a few upserts. Measured: a
    third of the CPU of folding with GROUP BY in SQL, and of triggers that update the three
    tables for each message."""
    cursor = db.cursor()
    cursor.row_factory = None  # plain tuples
    changes = cursor.execute(
        "SELECT rowid, hour, direction, provider, status, rule, n FROM message_count_changes "
        "ORDER BY rowid LIMIT ?",
        (limit,),
    ).fetchall()
    if not changes:
        return 0
    hourly: Counter[tuple[str, str, str, str, str]] = Counter()
    for _, hour, direction, provider, status, rule, n in changes:
        hourly[(hour, direction, provider, status, rule)] += n
    daily: Counter[tuple[str, str, str, str, str]] = Counter()
    hours: Counter[tuple[str, str]] = Counter()
    for (hour, direction, provider, status, rule), n in hourly.items():
        daily[(hour[:10], direction, provider, status, rule)] += n
        hours[(hour, direction)] += n
    cursor.executemany(UPSERTS[0], [(*key, n) for key, n in hourly.items() if n])
    cursor.executemany(UPSERTS[1], [(*key, n) for key, n in daily.items() if n])
    cursor.executemany(UPSERTS[2], [(*key, n) for key, n in hours.items() if n])
    cursor.execute("DELETE FROM message_count_changes WHERE rowid <= ?", (changes[-1][0],))
    cursor.close()
    return len(changes)


class SQLiteCounts:
    """Messages per hour, status and rule for any period."""

    if TYPE_CHECKING:

        @property
        def reader(self) -> aiosqlite.Connection: ...

        async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    async def _period(
        self, sql: str, since: datetime, until: datetime | None, *more: Any
    ) -> list[Any]:
        rows = await self.reader.execute_fetchall(sql, (*period_params(since, until), *more))
        return list(rows)

    async def message_counts_by_hour(
        self, since: datetime, until: datetime | None = None
    ) -> list[tuple[datetime, str, int]]:
        """Messages per UTC hour and direction from the hour of `since` to `until`, oldest
        first; hours, not days, so the caller can count days in the shop's own time zone."""
        rows = await self.reader.execute_fetchall(
            f"SELECT hour, direction, SUM(n) FROM {HOURS} GROUP BY hour, direction "
            "HAVING SUM(n) > 0 ORDER BY hour, direction",
            (hour_key(since), end_key(until)),
        )
        return [(hour_moment(row[0]), row[1], int(row[2])) for row in rows]

    async def outbound_status_counts(
        self, since: datetime, until: datetime | None = None
    ) -> dict[str, int]:
        """Outbound messages created in the period, by their status now."""
        rows = await self._period(
            f"SELECT status, SUM(n) FROM {PERIOD} WHERE direction = 'out' GROUP BY status "
            "HAVING SUM(n) > 0",
            since,
            until,
        )
        return {row[0]: int(row[1]) for row in rows}

    async def provider_counts(
        self, since: datetime, until: datetime | None = None
    ) -> dict[tuple[str, str, str], int]:
        """Messages created in the period by (direction, provider, status now); provider ''
        when none was chosen."""
        rows = await self._period(
            f"SELECT direction, provider, status, SUM(n) FROM {PERIOD} "
            "GROUP BY direction, provider, status HAVING SUM(n) > 0",
            since,
            until,
        )
        return {(row[0], row[1], row[2]): int(row[3]) for row in rows}

    async def top_rules(
        self, since: datetime, limit: int = 8, until: datetime | None = None
    ) -> list[tuple[str, int]]:
        """The rules that matched the most inbound messages in the period, most first."""
        rows = await self._period(
            f"SELECT rule, SUM(n) AS total FROM {PERIOD} WHERE direction = 'in' AND rule <> '' "
            "GROUP BY rule HAVING total > 0 ORDER BY total DESC, rule LIMIT ?",
            since,
            until,
            limit,
        )
        return [(row[0], int(row[1])) for row in rows]

    async def kept_counts(self) -> dict[CountKey, int]:
        """Every non-zero count as kept (tests compare it with a recount of the messages, and
        the daily and hourly tables with it)."""
        rows = await self.reader.execute_fetchall(
            "SELECT hour, direction, provider, status, rule, SUM(n) FROM (SELECT * FROM "
            "message_counts UNION ALL SELECT * FROM message_count_changes) "
            "GROUP BY hour, direction, provider, status, rule HAVING SUM(n) <> 0"
        )
        return {(hour_moment(r[0]), r[1], r[2], r[3], r[4]): int(r[5]) for r in rows}

    async def kept_rollups(self) -> tuple[dict[tuple[str, ...], int], dict[tuple[str, ...], int]]:
        """The daily and the hour × direction counts as kept (non-zero), for the tests."""
        days = await self.reader.execute_fetchall(
            "SELECT day, direction, provider, status, rule, SUM(n) FROM (SELECT * FROM "
            "message_days UNION ALL SELECT substr(hour, 1, 10), direction, provider, status, "
            "rule, n FROM message_count_changes) GROUP BY 1, 2, 3, 4, 5 HAVING SUM(n) <> 0"
        )
        hours = await self.reader.execute_fetchall(
            "SELECT hour, direction, SUM(n) FROM (SELECT hour, direction, n FROM message_hours "
            "UNION ALL SELECT hour, direction, n FROM message_count_changes) GROUP BY 1, 2 "
            "HAVING SUM(n) <> 0"
        )
        return (
            {tuple(r[:5]): int(r[5]) for r in days},
            {tuple(r[:2]): int(r[2]) for r in hours},
        )

    async def fold_counts(self) -> int:
        """Moves the changes the triggers appended into the counts (the service's sweep, every
        few seconds), FOLD_ROWS at a time, the webhooks' writes between two (the writer runs
        on the event loop): folding in every write transaction cost the writer 5% of its
        time. Readers add what waits. How many changes were folded."""
        left = await self.reader.execute_fetchall(
            "SELECT EXISTS (SELECT 1 FROM message_count_changes)"
        )  # read first: an idle database gets no write every few seconds
        if not next(iter(left))[0]:
            return 0
        count, limit = 0, FOLD_ROWS
        while (folded := await self._transaction(partial(fold, limit=limit))) == limit:
            count += folded
            await asyncio.sleep(0)
        return count + folded
