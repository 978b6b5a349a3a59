"""Contacts on PostgreSQL (DESIGN §12): the Contactos page's keyset pages and search, labels
for many at once, and CSV imports in one transaction (one statement per step, whatever the
number of rows). A part of PostgresStore; the same rules as store/sqlite_contacts.py.

Unlike messages, an import does not take each number's lock (ten thousand advisory locks
would overflow the server's lock table): its field changes are merged in one UPDATE, so a
message decided at the same moment for the same number may write back the fields it read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from responder.rules.reader import LABEL
from responder.store.contact_fold import accent_regex
from responder.store.models import (
    NEVER,
    ContactRecord,
    ImportCounts,
    ImportRow,
    UnknownContactError,
)
from responder.store.pg_base import PgBase
from responder.store.pg_rows import clean_text, to_json

_COLUMNS = (
    "c.phone, c.fields::text, ARRAY(SELECT label FROM contact_labels AS l "
    'WHERE l.phone = c.phone ORDER BY label COLLATE "C"), c.opted_out, c.first_seen_at, '
    "c.last_activity_at"
)


def _record(row: Any) -> ContactRecord:
    return ContactRecord(
        phone=row[0],
        fields=json.loads(row[1]),
        labels=tuple(sorted(row[2])),
        opted_out=row[3],
        first_seen_at=row[4],
        last_activity_at=row[5],
    )


def search_condition(text: str, phones: Sequence[str], first: int) -> tuple[str, list[Any]]:
    """Contacts a search for `text` finds (parameters numbered from `first`): in their fields,
    accents and case ignored (store/contact_fold.py); with the label `text` (read along the
    label's index, once: a lookup per contact would double a search that reads them all);
    in the number."""
    matches = [f"c.fields::text ~* ${first}"]
    params: list[Any] = [clean_text(accent_regex(text))]
    if LABEL.fullmatch(text.strip()):
        params.append(text.strip())
        at = first + len(params) - 1
        matches.append(f"c.phone IN (SELECT phone FROM contact_labels WHERE label = ${at})")
    for digits in phones:
        params.append(f"%{digits}%")
        matches.append(f"c.phone LIKE ${first + len(params) - 1}")
    return f"({' OR '.join(matches)})", params


class PgContacts(PgBase):
    """Contacts and their labels."""

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
        number order: a keyset page. With `label`, along that label's index (both sides
        bounded by `after`, or the merge join reads the contacts from the first)."""
        params: list[Any] = [after]
        if label is not None:
            source = "contact_labels AS f JOIN contacts AS c ON c.phone = f.phone"
            params.append(clean_text(label))
            conditions = ["f.phone > $1", "c.phone > $1", "f.label = $2"]
            order = "f.phone"
        else:
            source, conditions, order = "contacts AS c", ["c.phone > $1"], "c.phone"
        if number is not None:
            params.append(clean_text(number))
            conditions.append(f"c.phone = ${len(params)}")
        if text:
            match, match_params = search_condition(text, phones, len(params) + 1)
            conditions.append(match)
            params += match_params
        params.append(limit)
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM {source} WHERE {' AND '.join(conditions)} "
            f"ORDER BY {order} LIMIT ${len(params)}",
            *params,
        )
        return [_record(row) for row in rows]

    async def contact_record(self, phone: str) -> ContactRecord:
        row = await self._fetchrow(
            f"SELECT {_COLUMNS} FROM contacts AS c WHERE c.phone = $1", clean_text(phone)
        )
        if row is None:
            raise UnknownContactError(phone)
        return _record(row)

    async def contact_field_names(self) -> list[str]:
        """Every field name some contact has, sorted (an export's columns)."""
        rows = await self._fetch(
            "SELECT DISTINCT jsonb_object_keys(fields) FROM contacts WHERE fields <> '{}'"
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
            known = await self._fetchrow(
                "SELECT count(*) FROM contacts WHERE phone = ANY($1::text[])", phones
            )
            return ImportCounts(len(rows) - int(known[0]), int(known[0]))
        now = self.clock()
        fields = [clean_text(to_json(row.fields)) for row in rows]
        label_phones = [row.phone for row in rows for _ in row.labels]
        labels = [label for row in rows for label in row.labels]

        async def work(conn: Any) -> ImportCounts:
            inserted = await conn.fetch(
                "INSERT INTO contacts (phone, fields, first_seen_at, last_message_at, opted_out, "
                "opted_out_at) SELECT u.phone, u.fields::jsonb, $3, $4, k.phone IS NOT NULL, "
                "k.opted_out_at FROM unnest($1::text[], $2::text[]) AS u(phone, fields) "
                "LEFT JOIN kept_opt_outs AS k ON k.phone = u.phone "
                "ON CONFLICT (phone) DO NOTHING RETURNING phone",
                phones,
                fields,
                now,
                NEVER,
            )
            fresh = {row[0] for row in inserted}
            changed = [
                (p, f) for p, f, r in zip(phones, fields, rows) if p not in fresh and r.fields
            ]
            if changed:
                await conn.execute(
                    "UPDATE contacts AS c SET fields = c.fields || u.fields::jsonb "
                    "FROM unnest($1::text[], $2::text[]) AS u(phone, fields) "
                    "WHERE c.phone = u.phone",
                    [p for p, _ in changed],
                    [f for _, f in changed],
                )
            if labels:
                await conn.execute(
                    "INSERT INTO contact_labels (phone, label) "
                    "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                    label_phones,
                    labels,
                )
            return ImportCounts(len(fresh), len(rows) - len(fresh))

        counts: ImportCounts = await self._transaction(work)
        return counts

    async def label_contacts(
        self, phones: Sequence[str], add: Sequence[str], remove: Sequence[str]
    ) -> list[str]:
        """Adds then removes labels on many contacts in one transaction; the numbers that
        are contacts (others are left out)."""
        wanted = sorted({clean_text(p) for p in phones})

        async def work(conn: Any) -> list[str]:
            rows = await conn.fetch(
                "SELECT phone FROM contacts WHERE phone = ANY($1::text[])", wanted
            )
            found = sorted(row[0] for row in rows)
            await conn.execute(
                "INSERT INTO contact_labels (phone, label) SELECT p, l FROM unnest($1::text[]) "
                "AS p CROSS JOIN unnest($2::text[]) AS l ON CONFLICT DO NOTHING",
                found,
                list(add),
            )
            await conn.execute(
                "DELETE FROM contact_labels WHERE phone = ANY($1::text[]) "
                "AND label = ANY($2::text[])",
                found,
                list(remove),
            )
            return found

        result: list[str] = await self._transaction(work)
        return result
