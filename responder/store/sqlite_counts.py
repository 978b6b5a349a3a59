"""The dashboard's counts on SQLite (migration 0022): read from the tables that triggers keep
in every transaction that writes or changes a message, never from the messages themselves.
A period's whole UTC days come from message_days, its first and last hours from
message_counts (store/counts.py: split), the daily chart from message_hours. A part of
SQLiteStore."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from responder.store.counts import CountKey, end_key, hour_key, hour_moment, split

if TYPE_CHECKING:
    import aiosqlite

# Every count of the period, by direction, provider, status and rule (parameters: Split.params).
PERIOD = (
    "(SELECT direction, provider, status, rule, n FROM message_counts "
    "WHERE hour >= ? AND hour < ? UNION ALL "
    "SELECT direction, provider, status, rule, n FROM message_days "
    "WHERE day >= ? AND day < ? UNION ALL "
    "SELECT direction, provider, status, rule, n FROM message_counts "
    "WHERE hour >= ? AND hour < ?) AS kept"
)


class SQLiteCounts:
    """Messages per hour, status and rule for any period."""

    if TYPE_CHECKING:

        @property
        def reader(self) -> aiosqlite.Connection: ...

    async def _period(
        self, sql: str, since: datetime, until: datetime | None, *more: Any
    ) -> list[Any]:
        rows = await self.reader.execute_fetchall(sql, (*split(since, until).params, *more))
        return list(rows)

    async def message_counts_by_hour(
        self, since: datetime, until: datetime | None = None
    ) -> list[tuple[datetime, str, int]]:
        """Messages per UTC hour and direction from the hour of `since` to `until`, oldest
        first; hours, not days, so the caller can count days in the shop's own time zone."""
        rows = await self.reader.execute_fetchall(
            "SELECT hour, direction, n FROM message_hours WHERE hour >= ? AND hour < ? "
            "AND n > 0 ORDER BY hour, direction",
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
            "SELECT hour, direction, provider, status, rule, n FROM message_counts WHERE n <> 0"
        )
        return {(hour_moment(r[0]), r[1], r[2], r[3], r[4]): int(r[5]) for r in rows}

    async def kept_rollups(self) -> tuple[dict[tuple[str, ...], int], dict[tuple[str, ...], int]]:
        """The daily and the hour × direction counts as kept (non-zero), for the tests."""
        days = await self.reader.execute_fetchall(
            "SELECT day, direction, provider, status, rule, n FROM message_days WHERE n <> 0"
        )
        hours = await self.reader.execute_fetchall(
            "SELECT hour, direction, n FROM message_hours WHERE n <> 0"
        )
        return (
            {tuple(r[:5]): int(r[5]) for r in days},
            {tuple(r[:2]): int(r[2]) for r in hours},
        )

    async def fold_counts(self) -> int:
        """PostgreSQL folds its appended changes; SQLite's triggers update in place."""
        return 0
