"""Contacts on SQLite (DESIGN §12): the Contactos page's keyset pages and search, labels for
many at once, and CSV imports in one transaction. A part of SQLiteStore.

An imported number that never wrote is a contact without a conversation: `last_activity_at`
NULL and `last_message_at` models.NEVER, so the inbox (whose queries ask for
`last_activity_at IS NOT NULL`) neither shows nor counts it, and its newest-first index
reaches it last."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from responder.rules.reader import LABEL
from responder.store.contact_fold import accent_glob
from responder.store.models import (
    NEVER,
    ContactRecord,
    ImportCounts,
    ImportRow,
    UnknownContactError,
)
from responder.store.sqltime import maybe_moment, moment, stored

if TYPE_CHECKING:
    import aiosqlite

    from responder.clock import Clock

T = TypeVar("T")
CHUNK = 500  # numbers per IN (...) list, below SQLite's variable limit
_COLUMNS = (
    "c.phone, c.fields, (SELECT json_group_array(label) FROM (SELECT label FROM contact_labels "
    "AS l WHERE l.phone = c.phone ORDER BY label)) AS labels, c.opted_out, c.first_seen_at, "
    "c.last_activity_at"
)


def _record(row: Any) -> ContactRecord:
    return ContactRecord(
        phone=row[0],
        fields=json.loads(row[1]) if row[1] else {},
        labels=tuple(sorted(json.loads(row[2]))),
        opted_out=bool(row[3]),
        first_seen_at=moment(row[4]),
        last_activity_at=maybe_moment(row[5]),
    )


def _chunks(items: Sequence[T], size: int = CHUNK) -> list[Sequence[T]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def search_condition(text: str, phones: Sequence[str]) -> tuple[str, list[Any]]:
    """Contacts a search for `text` finds: in their fields, accents and case ignored
    (store/contact_fold.py), with the label `text` (read along the label's index, once), or
    (`phones`, see search_query.phone_fragments) in the number."""
    matches = ["c.fields GLOB ?"]
    params: list[Any] = [accent_glob(text)]
    if LABEL.fullmatch(text.strip()):
        matches.append("c.phone IN (SELECT phone FROM contact_labels WHERE label = ?)")
        params.append(text.strip())
    for digits in phones:
        matches.append("c.phone LIKE ?")
        params.append(f"%{digits}%")
    return f"({' OR '.join(matches)})", params


class SQLiteContacts:
    """Contacts and their labels; SQLiteStore provides the connections."""

    if TYPE_CHECKING:
        clock: Clock

        @property
        def reader(self) -> aiosqlite.Connection: ...

        async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    async def contacts_page(
        self,
        after: str,
        limit: int,
        *,
        label: str | None = None,
        text: str | None = None,
        phones: Sequence[str] = (),
        number: str | None = None,
    ) -> list[ContactRecord]:
        """Up to `limit` contacts whose number sorts after `after` ("" for the first), in
        number order: a keyset page, as fast at the last page as at the first. With `label`,
        the walk goes along that label's index instead (CROSS JOIN keeps that order);
        `number`: only that one."""
        conditions: list[str] = []
        params: list[Any] = []
        if label is not None:
            source = "contact_labels AS f CROSS JOIN contacts AS c ON c.phone = f.phone"
            conditions += ["f.label = ?", "f.phone > ?"]
            params += [label, after]
            order = "f.phone"
        else:
            source, order = "contacts AS c", "c.phone"
            conditions.append("c.phone > ?")
            params.append(after)
        if number is not None:
            conditions.append("c.phone = ?")
            params.append(number)
        if text:
            match, match_params = search_condition(text, phones)
            conditions.append(match)
            params += match_params
        rows = await self.reader.execute_fetchall(
            f"SELECT {_COLUMNS} FROM {source} WHERE {' AND '.join(conditions)} "
            f"ORDER BY {order} LIMIT ?",
            (*params, limit),
        )
        return [_record(row) for row in rows]

    async def contact_record(self, phone: str) -> ContactRecord:
        rows = list(
            await self.reader.execute_fetchall(
                f"SELECT {_COLUMNS} FROM contacts AS c WHERE c.phone = ?", (phone,)
            )
        )
        if not rows:
            raise UnknownContactError(phone)
        return _record(rows[0])

    async def contact_field_names(self) -> list[str]:
        """Every field name some contact has, sorted (an export's columns)."""
        rows = await self.reader.execute_fetchall(
            "SELECT DISTINCT j.key FROM contacts, json_each(contacts.fields) AS j "
            "WHERE contacts.fields <> '{}'"
        )
        return sorted(str(row[0]) for row in rows)

    async def import_contacts(
        self, rows: Sequence[ImportRow], *, dry_run: bool = False
    ) -> ImportCounts:
        """Adds the numbers not known yet and updates the others, in one transaction: fields
        set (never removed), labels added (never removed), opt-out never changed; a number
        kept opted out after `responder forget` comes back opted out. `dry_run`: counts only."""
        phones = [row.phone for row in rows]
        if dry_run:
            known = 0
            for chunk in _chunks(phones):
                found = await self.reader.execute_fetchall(
                    f"SELECT COUNT(*) FROM contacts WHERE phone IN ({_marks(len(chunk))})", chunk
                )
                known += int(next(iter(found))[0])
            return ImportCounts(len(rows) - known, known)
        now = stored(self.clock())

        def work(db: sqlite3.Connection) -> ImportCounts:
            existing: set[str] = set()
            kept: dict[str, str] = {}
            for chunk in _chunks(phones):
                marks = _marks(len(chunk))
                sql = f"SELECT phone FROM contacts WHERE phone IN ({marks})"
                existing.update(row[0] for row in db.execute(sql, chunk))
                sql = f"SELECT phone, opted_out_at FROM kept_opt_outs WHERE phone IN ({marks})"
                kept.update((row[0], row[1]) for row in db.execute(sql, chunk))
            fresh = [row for row in rows if row.phone not in existing]
            db.executemany(
                # `folded`: the fields as the inbox search compares them (store/search.py).
                "INSERT INTO contacts (phone, fields, first_seen_at, last_message_at, "
                "opted_out, opted_out_at, folded) VALUES (?1, ?2, ?3, ?4, ?5, ?6, fold_fields(?2))",
                [
                    (
                        row.phone,
                        json.dumps(row.fields, ensure_ascii=False),
                        now,
                        stored(NEVER),
                        int(row.phone in kept),
                        kept.get(row.phone),
                    )
                    for row in fresh
                ],
            )
            db.executemany(
                "UPDATE contacts SET fields = json_patch(fields, ?1), "
                "folded = fold_fields(json_patch(fields, ?1)) WHERE phone = ?2",
                [
                    (json.dumps(row.fields, ensure_ascii=False), row.phone)
                    for row in rows
                    if row.phone in existing and row.fields
                ],
            )
            db.executemany(
                "INSERT OR IGNORE INTO contact_labels (phone, label) VALUES (?, ?)",
                [(row.phone, label) for row in rows for label in row.labels],
            )
            return ImportCounts(len(fresh), len(rows) - len(fresh))

        return await self._transaction(work)

    async def label_contacts(
        self, phones: Sequence[str], add: Sequence[str], remove: Sequence[str]
    ) -> list[str]:
        """Adds then removes labels on many contacts in one transaction; the numbers that
        are contacts (others are left out)."""

        def work(db: sqlite3.Connection) -> list[str]:
            found: list[str] = []
            for chunk in _chunks(sorted(set(phones))):
                sql = f"SELECT phone FROM contacts WHERE phone IN ({_marks(len(chunk))})"
                found += [row[0] for row in db.execute(sql, chunk)]
            db.executemany(
                "INSERT OR IGNORE INTO contact_labels (phone, label) VALUES (?, ?)",
                [(phone, label) for phone in found for label in add],
            )
            db.executemany(
                "DELETE FROM contact_labels WHERE phone = ? AND label = ?",
                [(phone, label) for phone in found for label in remove],
            )
            return sorted(found)

        return await self._transaction(work)
