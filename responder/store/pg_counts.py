"""The dashboard's counts on PostgreSQL (pg migration 0010): the trigger appends +1/-1 rows to
message_count_changes in the writer's transaction; `fold_counts` moves them into
message_counts every few seconds; readers add both, so nothing committed is missed. A part of
PostgresStore."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from responder.store.counts import CountKey, end_key, hour_key, hour_moment, period_params
from responder.store.pg_base import PgBase

# Every count of the period, by direction, provider, status and rule: its whole UTC days from
# message_days, its first and last hours from message_counts, and the changes not folded yet
# ($1..$8: counts.period_params).
PERIOD = (
    "(SELECT direction, provider, status, rule, n FROM message_counts "
    "WHERE hour >= $1 AND hour < $2 UNION ALL "
    "SELECT direction, provider, status, rule, n FROM message_days "
    "WHERE day >= $3 AND day < $4 UNION ALL "
    "SELECT direction, provider, status, rule, n FROM message_counts "
    "WHERE hour >= $5 AND hour < $6 UNION ALL "
    "SELECT direction, provider, status, rule, n FROM message_count_changes "
    "WHERE hour >= $7 AND hour < $8) AS kept"
)
HOURS = (
    "(SELECT hour, direction, n FROM message_hours WHERE hour >= $1 AND hour < $2 UNION ALL "
    "SELECT hour, direction, n FROM message_count_changes WHERE hour >= $1 AND hour < $2) "
    "AS kept"
)
FOLD_LOCK = 0x7265_7370_636E_7473  # one folder at a time across instances ("respcnts")
# Changes folded per transaction: a backlog (a copy's, a service stopped for a while) is folded
# in short transactions, not one statement of minutes that sorts on disk.
FOLD_ROWS = 20_000
# The oldest $1 changes (by their place in the table: nothing else orders them) moved into the
# three count tables, in key order (the rows' locks in one order); how many there were.
FOLD = """
WITH moved AS (
    DELETE FROM message_count_changes WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM message_count_changes LIMIT $1::integer))
    RETURNING *
),
hourly AS (
    INSERT INTO message_counts (hour, direction, provider, status, rule, n)
    SELECT hour, direction, provider, status, rule, SUM(n) FROM moved
    GROUP BY hour, direction, provider, status, rule
    ORDER BY hour, direction, provider, status, rule
    ON CONFLICT (hour, direction, provider, status, rule)
    DO UPDATE SET n = message_counts.n + excluded.n
),
daily AS (
    INSERT INTO message_days (day, direction, provider, status, rule, n)
    SELECT substr(hour, 1, 10), direction, provider, status, rule, SUM(n) FROM moved
    GROUP BY 1, direction, provider, status, rule
    ORDER BY 1, direction, provider, status, rule
    ON CONFLICT (day, direction, provider, status, rule)
    DO UPDATE SET n = message_days.n + excluded.n
),
hours AS (
    INSERT INTO message_hours (hour, direction, n)
    SELECT hour, direction, SUM(n) FROM moved
    GROUP BY hour, direction ORDER BY hour, direction
    ON CONFLICT (hour, direction) DO UPDATE SET n = message_hours.n + excluded.n
)
SELECT count(*) FROM moved
"""

FOLD_CONVERSATIONS = """
WITH moved AS (DELETE FROM conversation_count_changes RETURNING *),
total AS (SELECT COALESCE(SUM(total), 0) AS total, COALESCE(SUM(human), 0) AS human,
    COALESCE(SUM(needs_attention), 0) AS needs_attention,
    COALESCE(SUM(opted_out), 0) AS opted_out, COALESCE(SUM(unread), 0) AS unread,
    COALESCE(SUM(unassigned), 0) AS unassigned, COALESCE(SUM(resolved), 0) AS resolved
    FROM moved)
UPDATE conversation_counts AS c SET total = c.total + t.total, human = c.human + t.human,
    needs_attention = c.needs_attention + t.needs_attention,
    opted_out = c.opted_out + t.opted_out, unread = c.unread + t.unread,
    unassigned = c.unassigned + t.unassigned, resolved = c.resolved + t.resolved
FROM total AS t WHERE c.id = 1 AND t.total IS NOT NULL
"""


class PgCounts(PgBase):
    """Messages per hour, status and rule for any period."""

    async def _period(self, sql: str, since: datetime, until: datetime | None, *more: Any) -> Any:
        return await self._fetch(sql, *period_params(since, until), *more)

    async def message_counts_by_hour(
        self, since: datetime, until: datetime | None = None
    ) -> list[tuple[datetime, str, int]]:
        """Messages per UTC hour and direction from the hour of `since` to `until`, oldest
        first; hours, not days, so the caller can count days in the shop's own time zone."""
        rows = await self._fetch(
            f"SELECT hour, direction, SUM(n)::bigint FROM {HOURS} GROUP BY hour, direction "
            'HAVING SUM(n) > 0 ORDER BY hour COLLATE "C", direction COLLATE "C"',
            hour_key(since),
            end_key(until),
        )
        return [(hour_moment(row[0]), row[1], int(row[2])) for row in rows]

    async def outbound_status_counts(
        self, since: datetime, until: datetime | None = None
    ) -> dict[str, int]:
        """Outbound messages created in the period, by their status now."""
        rows = await self._period(
            f"SELECT status, SUM(n)::bigint FROM {PERIOD} WHERE direction = 'out' "
            "GROUP BY status HAVING SUM(n) > 0",
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
            f"SELECT direction, provider, status, SUM(n)::bigint FROM {PERIOD} "
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
            f"SELECT rule, SUM(n)::bigint AS total FROM {PERIOD} "
            "WHERE direction = 'in' AND rule <> '' "
            'GROUP BY rule HAVING SUM(n) > 0 ORDER BY total DESC, rule COLLATE "C" LIMIT $9',
            since,
            until,
            limit,
        )
        return [(row[0], int(row[1])) for row in rows]

    async def kept_counts(self) -> dict[CountKey, int]:
        """Every non-zero count as kept (tests compare it with a recount of the messages)."""
        rows = await self._fetch(
            "SELECT hour, direction, provider, status, rule, SUM(n) FROM (SELECT * FROM "
            "message_counts UNION ALL SELECT * FROM message_count_changes) AS kept "
            "GROUP BY hour, direction, provider, status, rule HAVING SUM(n) <> 0"
        )
        return {(hour_moment(r[0]), r[1], r[2], r[3], r[4]): int(r[5]) for r in rows}

    async def kept_rollups(self) -> tuple[dict[tuple[str, ...], int], dict[tuple[str, ...], int]]:
        """The daily and the hour × direction counts as kept (non-zero), for the tests."""
        days = await self._fetch(
            "SELECT day, direction, provider, status, rule, SUM(n) FROM (SELECT * FROM "
            "message_days UNION ALL SELECT substr(hour, 1, 10), direction, provider, status, "
            "rule, n FROM message_count_changes) AS kept GROUP BY 1, 2, 3, 4, 5 HAVING SUM(n) <> 0"
        )
        hours = await self._fetch(
            "SELECT hour, direction, SUM(n) FROM (SELECT * FROM message_hours UNION ALL "
            "SELECT hour, direction, n FROM message_count_changes) AS kept GROUP BY 1, 2 "
            "HAVING SUM(n) <> 0"
        )
        return (
            {tuple(r[:5]): int(r[5]) for r in days},
            {tuple(r[:2]): int(r[2]) for r in hours},
        )

    async def fold_counts(self) -> int:
        """Moves the appended changes into the counts, FOLD_ROWS a transaction; returns how
        many were folded (0 when another instance is folding now)."""

        async def work(conn: Any) -> int | None:
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", FOLD_LOCK):
                return None
            folded = int(await conn.fetchval(FOLD, FOLD_ROWS))
            await conn.execute(FOLD_CONVERSATIONS)
            return folded

        count = 0
        while (folded := await self._transaction(work)) is not None:
            count += folded
            if folded < FOLD_ROWS:
                break
        return count
