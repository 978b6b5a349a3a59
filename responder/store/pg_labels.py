"""The labels in use on PostgreSQL, as SQLite's sqlite_labels. A part of PostgresStore."""

from __future__ import annotations

from responder.store.pg_base import PgBase
from responder.store.pg_broadcasts import NOT_OPTED_OUT

LABEL_COUNTS = (
    "SELECT l.label, COUNT(*) FROM contact_labels AS l JOIN contacts AS c ON c.phone = l.phone "
    f'WHERE {NOT_OPTED_OUT} GROUP BY l.label ORDER BY l.label COLLATE "C" LIMIT $1'
)


class PgLabels(PgBase):
    """Labels and how many contacts that may get a broadcast carry each."""

    async def label_counts(self, limit: int = 500) -> list[tuple[str, int]]:
        """Every label some contact that has not opted out carries, by name, with how many."""
        rows = await self._fetch(LABEL_COUNTS, limit)
        return [(str(row[0]), int(row[1])) for row in rows]
