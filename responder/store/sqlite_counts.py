"""The dashboard's counts on SQLite (migration 0022): read from message_counts, which triggers
keep in every transaction that writes or changes a message, never from the messages table.
A part of SQLiteStore."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from responder.store.counts import CountKey, end_key, hour_key, hour_moment

if TYPE_CHECKING:
    import aiosqlite

RANGE = "hour >= ? AND hour < ?"


class SQLiteCounts:
    """Messages per hour, status and rule for any period."""

    if TYPE_CHECKING:

        @property
        def reader(self) -> aiosqlite.Connection: ...

    async def message_counts_by_hour(
        self, since: datetime, until: datetime | None = None
    ) -> list[tuple[datetime, str, int]]:
        """Messages per UTC hour and direction from the hour of `since` to `until`, oldest
        first; hours, not days, so the caller can count days in the shop's own time zone."""
        rows = await self.reader.execute_fetchall(
            f"SELECT hour, direction, SUM(n) FROM message_counts WHERE {RANGE} "
            "GROUP BY hour, direction HAVING SUM(n) > 0 ORDER BY hour, direction",
            (hour_key(since), end_key(until)),
        )
        return [(hour_moment(row[0]), row[1], int(row[2])) for row in rows]

    async def outbound_status_counts(
        self, since: datetime, until: datetime | None = None
    ) -> dict[str, int]:
        """Outbound messages created in the period, by their status now."""
        rows = await self.reader.execute_fetchall(
            f"SELECT status, SUM(n) FROM message_counts WHERE {RANGE} AND direction = 'out' "
            "GROUP BY status HAVING SUM(n) > 0",
            (hour_key(since), end_key(until)),
        )
        return {row[0]: int(row[1]) for row in rows}

    async def provider_counts(
        self, since: datetime, until: datetime | None = None
    ) -> dict[tuple[str, str, str], int]:
        """Messages created in the period by (direction, provider, status now); provider ''
        when none was chosen."""
        rows = await self.reader.execute_fetchall(
            f"SELECT direction, provider, status, SUM(n) FROM message_counts WHERE {RANGE} "
            "GROUP BY direction, provider, status HAVING SUM(n) > 0",
            (hour_key(since), end_key(until)),
        )
        return {(row[0], row[1], row[2]): int(row[3]) for row in rows}

    async def top_rules(
        self, since: datetime, limit: int = 8, until: datetime | None = None
    ) -> list[tuple[str, int]]:
        """The rules that matched the most inbound messages in the period, most first."""
        rows = await self.reader.execute_fetchall(
            "SELECT rule, SUM(n) AS total FROM message_counts "
            f"WHERE {RANGE} AND direction = 'in' AND rule <> '' "
            "GROUP BY rule HAVING total > 0 ORDER BY total DESC, rule LIMIT ?",
            (hour_key(since), end_key(until), limit),
        )
        return [(row[0], int(row[1])) for row in rows]

    async def kept_counts(self) -> dict[CountKey, int]:
        """Every non-zero count as kept (tests compare it with a recount of the messages)."""
        rows = await self.reader.execute_fetchall(
            "SELECT hour, direction, provider, status, rule, n FROM message_counts WHERE n <> 0"
        )
        return {(hour_moment(r[0]), r[1], r[2], r[3], r[4]): int(r[5]) for r in rows}

    async def fold_counts(self) -> int:
        """PostgreSQL folds its appended changes; SQLite's triggers update in place."""
        return 0
