"""The contact book (DESIGN §12): contacts listed, searched and labelled; CSV import (all or
nothing) and export (streamed a keyset page at a time); every change on the audit trail.
The page, the API and the CLI all come through here."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from responder import contacts_csv
from responder.contacts_csv import ImportPlan, Problem
from responder.phone import InvalidPhoneNumber, normalize_phone
from responder.search_query import phone_fragments
from responder.store.models import ContactRecord, Conversation, ImportCounts

if TYPE_CHECKING:
    from responder.accounts import Accounts
    from responder.rules.reload import RulesHolder
    from responder.store import Store

PAGE = 50  # contacts on a page of the list
EXPORT_PAGE = 1000  # contacts read at a time by an export
MAX_QUERY = 100  # characters of a search


@dataclass(frozen=True)
class ImportReport:
    """What an import did (or, `dry_run`, would do); nothing at all when `problems`."""

    imported: int
    updated: int
    problems: list[Problem]
    problem_count: int
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "imported": self.imported,
            "updated": self.updated,
            "problems": [p.as_json() for p in self.problems],
        }
        if self.problem_count > len(self.problems):
            data["problem_count"] = self.problem_count
        if self.dry_run:
            data["dry_run"] = True
        return data


def encode_cursor(phone: str) -> str:
    """The opaque `next` of a page: where the next one starts."""
    return base64.urlsafe_b64encode(phone.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    """The number a cursor stands for; None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        phone = raw.decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return phone if phone.isdigit() and len(phone) <= 20 else None


class ContactBook:
    """Contacts as staff see and change them; the store does the work in its transactions."""

    def __init__(self, store: Store, accounts: Accounts, rules: RulesHolder) -> None:
        self.store = store
        self.accounts = accounts
        self.rules = rules

    @property
    def country(self) -> str:
        return self.rules.current.settings.country

    async def page(
        self,
        after: str = "",
        *,
        label: str | None = None,
        text: str = "",
        limit: int = PAGE,
    ) -> tuple[list[ContactRecord], str | None]:
        """One page of contacts in number order and the cursor of the next (None: last). A
        search that is a whole number (in any form) looks for that number alone, at once;
        anything else is looked for in fields, labels and parts of numbers."""
        phones = phone_fragments(text, self.country) if text else []
        number = None
        if text and phones:
            with contextlib.suppress(InvalidPhoneNumber):
                number, text = normalize_phone(text, self.country), ""
        found = await self.store.contacts_page(
            after, limit + 1, label=label, text=text or None, phones=phones, number=number
        )
        more = len(found) > limit
        found = found[:limit]
        return found, encode_cursor(found[-1].phone) if more and found else None

    async def record(self, phone: str) -> ContactRecord:
        return await self.store.contact_record(phone)

    async def change(
        self,
        actor: str | None,
        phone: str,
        *,
        fields: dict[str, Any] | None = None,
        labels: tuple[Sequence[str], Sequence[str], bool] | None = None,
    ) -> Conversation:
        """Sets fields (None removes one) and changes labels (add, remove, whether `add` is
        the whole set), on the audit trail with what changed."""
        conversation = await self.store.conversation(phone)  # unknown: nothing changes
        before = set(conversation.labels)
        if fields:
            conversation = await self.store.update_fields(phone, fields)
        if labels is not None:
            conversation = await self.store.update_labels(phone, *labels)
        detail: dict[str, Any] = {}
        if fields:
            detail["fields"] = sorted(fields)
        after = set(conversation.labels)
        if after - before:
            detail["labels_added"] = sorted(after - before)
        if before - after:
            detail["labels_removed"] = sorted(before - after)
        if detail:
            await self.accounts.record(actor, "contact_changed", phone, **detail)
        return conversation

    async def label_many(
        self, actor: str | None, phones: Sequence[str], add: Sequence[str], remove: Sequence[str]
    ) -> list[str]:
        """Adds and removes labels on many contacts at once; the numbers that were contacts.
        One entry on the audit trail for them all."""
        found = await self.store.label_contacts(phones, add, remove)
        if found and (add or remove):
            detail: dict[str, Any] = {"phones": found}
            if add:
                detail["labels_added"] = sorted(add)
            if remove:
                detail["labels_removed"] = sorted(remove)
            subject = found[0] if len(found) == 1 else f"{len(found)} contactos"
            await self.accounts.record(actor, "contact_changed", subject, **detail)
        return found

    def plan(self, data: bytes) -> ImportPlan:
        return contacts_csv.parse(data, self.country)

    async def import_csv(
        self, actor: str | None, data: bytes, *, dry_run: bool = False
    ) -> ImportReport:
        """Checks the whole file; only a clean one is imported, in one transaction. The check
        runs on a thread: a big file's numbers take seconds to parse, and the event loop keeps
        answering webhooks meanwhile."""
        plan = await asyncio.to_thread(self.plan, data)
        if not plan.clean:
            return ImportReport(0, 0, plan.problems, plan.problem_count, dry_run)
        counts: ImportCounts = await self.store.import_contacts(plan.rows, dry_run=dry_run)
        if not dry_run:
            await self.accounts.record(
                actor,
                "contacts_imported",
                None,
                imported=counts.imported,
                updated=counts.updated,
            )
        return ImportReport(counts.imported, counts.updated, [], 0, dry_run)

    async def export_csv(self) -> AsyncIterator[str]:
        """The contacts file, a keyset page at a time: memory stays flat whatever the number
        of contacts. The columns are the import's, so the file imports back as it was."""
        columns = contacts_csv.export_columns(await self.store.contact_field_names())
        yield contacts_csv.header_line(columns)
        after = ""
        while records := await self.store.contacts_page(after, EXPORT_PAGE):
            yield contacts_csv.export_lines(records, columns)
            if len(records) < EXPORT_PAGE:
                break
            after = records[-1].phone
