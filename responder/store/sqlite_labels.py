"""The labels in use on SQLite, for the broadcast form's segment picker (DESIGN §12). A part of
SQLiteStore; PostgreSQL's twin is pg_labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from responder.store.sqlite_broadcasts import NOT_OPTED_OUT

if TYPE_CHECKING:
    import aiosqlite

LABEL_COUNTS = (
    "SELECT l.label, COUNT(*) FROM contact_labels AS l JOIN contacts AS c ON c.phone = l.phone "
    f"WHERE {NOT_OPTED_OUT} GROUP BY l.label ORDER BY l.label LIMIT ?"
)


class SQLiteLabels:
    """Labels and how many contacts that may get a broadcast carry each."""

    if TYPE_CHECKING:

        @property
        def reader(self) -> aiosqlite.Connection: ...

    async def label_counts(self, limit: int = 500) -> list[tuple[str, int]]:
        """Every label some contact that has not opted out carries, by name, with how many."""
        rows = await self.reader.execute_fetchall(LABEL_COUNTS, (limit,))
        return [(str(row[0]), int(row[1])) for row in rows]
