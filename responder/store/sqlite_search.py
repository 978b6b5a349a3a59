"""The inbox search on SQLite: words through the FTS5 index `messages_fts` (migration 0023) and
the newest messages the index does not hold yet (0028), numbers by the contacts' primary key,
parts of numbers through `contact_number_parts` (0025), contact fields through a partial
index. No statement reads the table of messages whole, nor every contact
(tests/test_search_plans.py). A part of SQLiteStore."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from responder.store.checkpoint import INDEXED_KEY
from responder.store.models import COUNT_KEYS, Conversation
from responder.store.search import (
    COUNT_LIMIT,
    PREFIX_FROM,
    Hit,
    SearchCounts,
    SearchPage,
    SearchQuery,
    fts5_query,
    holds,
    part_ranges,
    ranked,
)
from responder.store.sqlite_filters import state_filters

if TYPE_CHECKING:
    import aiosqlite

# The conversations of a list of numbers, given as one JSON array (no limit on its length).
IN_LIST = "phone IN (SELECT value FROM json_each(?))"
# Searches join messages to their contacts with CROSS JOIN: SQLite then keeps the order
# written (messages first, newest first), where it would rather walk every conversation
# through CONVERSATIONS_ONLY's range on last_message_at (500 ms at 5 million messages).
FIRST_ROWS = 64  # rows a streamed search reads at first; then STREAM_ROWS at a time
STREAM_ROWS = 1024
# Messages a search for common whole words tests itself rather than merge prefixes (above).
WINDOW_ROWS = 5000
# Past this many numbers holding the digits typed (rows of contact_number_parts: a number may
# hold them twice), the newest conversations are walked instead.
MANY_NUMBERS = 2000


def _filters(prefix: str, **filters: Any) -> tuple[str, list[Any]]:
    """The condition on a conversation's state (columns of `prefix`, a table's alias with its
    dot, or "") as one SQL string, and its parameters (store/sqlite_filters.py)."""
    conditions, params = state_filters(**filters, prefix=prefix)
    return " AND ".join(conditions), params


class SQLiteSearch:
    """Conversations found by words, numbers or contact fields, newest first."""

    if TYPE_CHECKING:

        @property
        def reader(self) -> aiosqlite.Connection: ...

        @staticmethod
        def _conversation(row: sqlite3.Row) -> Conversation: ...

    async def search(
        self, query: SearchQuery, limit: int = 100, offset: int = 0, **filters: Any
    ) -> SearchPage:
        """Conversations whose number is one of `query.phones` (first), or contains one of
        `query.fragments`, whose contact fields hold every word, or that have a message holding
        every word (prefixes of longer words too); newest first: by the newest matching message,
        or the last message for a match on fields or number. `filters` as conversations()'."""
        condition, params = _filters("", **filters)
        want = limit + offset
        exact = await self._exact(query, condition, params)
        hits = ranked(
            exact,
            await self._contact_hits(query, condition, params, want),
            await self._message_hits(query, _filters("c.", **filters), want),
        )[offset:want]
        from responder.store.sqlite import CONVERSATION_COLUMNS  # sqlite.py imports this module

        rows = await self.reader.execute_fetchall(
            f"SELECT {CONVERSATION_COLUMNS} FROM contacts WHERE {IN_LIST}",
            (json.dumps([h.phone for h in hits]),),
        )
        by_phone = {row["phone"]: self._conversation(row) for row in rows}
        return SearchPage(
            [by_phone[h.phone] for h in hits if h.phone in by_phone],
            {h.phone: h.message_id for h in hits if h.message_id is not None},
        )

    async def search_counts(self, me: str | None, query: SearchQuery) -> SearchCounts:
        """COUNT_KEYS over the conversations `query` finds, up to COUNT_LIMIT of them."""
        condition, params = _filters("")
        found = ranked(
            await self._exact(query, condition, params),
            await self._contact_hits(query, condition, params, COUNT_LIMIT + 1),
            await self._message_hits(query, (condition, params), COUNT_LIMIT + 1, ordered=False),
        )
        complete = len(found) <= COUNT_LIMIT
        rows = await self.reader.execute_fetchall(
            "SELECT COUNT(*), "
            "COALESCE(SUM(mode = 'human'), 0), COALESCE(SUM(needs_attention), 0), "
            "COALESCE(SUM(opted_out), 0), COALESCE(SUM(unread > 0), 0), "
            "COALESCE(SUM(assigned_to IS NULL), 0), COALESCE(SUM(status = 'resolved'), 0), "
            f"COALESCE(SUM(assigned_to = ?), 0) FROM contacts WHERE {IN_LIST}",
            (me, json.dumps([h.phone for h in found[:COUNT_LIMIT]])),
        )
        row = next(iter(rows))
        return SearchCounts(dict(zip(COUNT_KEYS, (int(v) for v in row))), complete)

    async def _exact(self, query: SearchQuery, condition: str, params: list[Any]) -> list[str]:
        """The numbers typed in full that are conversations: by primary key."""
        if not query.phones:
            return []
        rows = await self.reader.execute_fetchall(
            f"SELECT phone FROM contacts WHERE {IN_LIST} AND {condition}",
            (json.dumps(list(query.phones)), *params),
        )
        found = {row[0] for row in rows}
        return [p for p in dict.fromkeys(query.phones) if p in found]

    async def _contact_hits(
        self, query: SearchQuery, condition: str, params: list[Any], want: int
    ) -> list[Hit]:
        """The `want` newest conversations whose fields hold every word (the contacts that
        have fields, through their partial index) or whose number holds a fragment."""
        found: list[Hit] = []
        if query.words:
            # Only the contacts that have fields: ordered by the last message, SQLite would
            # rather walk every contact in that order.
            likes = " AND ".join("folded LIKE ?" for _ in query.words)
            rows = await self.reader.execute_fetchall(
                "SELECT phone, last_message_at FROM contacts INDEXED BY contacts_with_fields "
                f"WHERE folded <> '' AND {likes} AND {condition} "
                "ORDER BY last_message_at DESC, phone LIMIT ?",
                (*(f"%{w}%" for w in query.words), *params, want),
            )
            found += [Hit(row[0], row[1]) for row in rows]
        if query.fragments:
            found += await self._number_hits(query.fragments, condition, params, want)
        return found

    async def _number_hits(
        self, fragments: tuple[str, ...], condition: str, params: list[Any], want: int
    ) -> list[Hit]:
        """The `want` newest conversations whose number holds one of `fragments`. The numbers
        holding them are a range of `contact_number_parts` each (migration 0025: every number
        is not read); digits that many numbers hold (more than MANY_NUMBERS of the table's
        rows) walk the conversations newest first instead, and stop early."""
        phones = await self._numbers_holding(fragments)
        if phones is not None:
            where, args = IN_LIST, [json.dumps(phones)]
        else:
            numbers = " OR ".join("phone LIKE ?" for _ in fragments)
            where, args = f"({numbers})", [f"%{d}%" for d in fragments]
        rows = await self.reader.execute_fetchall(
            f"SELECT phone, last_message_at FROM contacts WHERE {where} AND {condition} "
            "ORDER BY last_message_at DESC, phone LIMIT ?",
            (*args, *params, want),
        )
        return [Hit(row[0], row[1]) for row in rows]

    async def _numbers_holding(self, fragments: tuple[str, ...]) -> list[str] | None:
        """The numbers holding one of `fragments`, from `contact_number_parts`' key; None when
        there are too many to list (see number_fragments for the digits it cannot find)."""
        ranges = part_ranges(fragments)
        if ranges is None:
            return None
        parts = " UNION ALL ".join(
            "SELECT phone FROM contact_number_parts WHERE part >= ? AND part < ?" for _ in ranges
        )
        # New contacts whose parts the background step has not written yet (migration 0027):
        # the numbers of about 30 s, written in batches (store/checkpoint.py), read whole.
        noted = " UNION ALL ".join(
            "SELECT phone FROM contact_number_parts_pending WHERE instr(phone, ?) > 0"
            for _ in ranges
        )
        rows = list(
            await self.reader.execute_fetchall(
                f"{parts} UNION ALL {noted} LIMIT ?",
                (
                    *(bound for pair in ranges for bound in pair),
                    *(low for low, _ in ranges),
                    MANY_NUMBERS + 1,
                ),
            )
        )
        if len(rows) > MANY_NUMBERS:
            return None
        return list(dict.fromkeys(row[0] for row in rows))

    async def _whole_words_first(
        self,
        words: list[str],
        condition: tuple[str, list[Any]],
        want: int,
        ordered: bool,
        unindexed: tuple[int, dict[str, Hit]],
    ) -> list[Hit] | None:
        """The same as the full query, read faster for common words. FTS5 merges the index
        entries of every word a prefix begins before it gives the first match (at 5 million
        messages, over 100 ms for a word a third of them hold), while whole words are read
        lazily. So: the newest messages holding the whole words, until `want` conversations
        have turned up; then every message from the oldest of those on (a few hundred rows
        when the words are common) is tested for the words as prefixes too. Not `ordered`
        (the counts: any `want` conversations that match will do), the whole words' are
        enough. None when the whole words are not common enough for that to pay: the caller
        asks the index. `unindexed`: the index's mark, and the hits after it (_not_indexed)."""
        where, params = condition
        mark, found = unindexed[0], dict(unindexed[1])
        oldest = None
        async with self.reader.execute(
            "SELECT m.id, m.phone, m.created_at FROM messages_fts "
            "CROSS JOIN messages AS m ON m.id = messages_fts.rowid "
            "CROSS JOIN contacts AS c ON c.phone = m.phone "
            f"WHERE messages_fts MATCH ? AND messages_fts.rowid <= ? AND {where} "
            "ORDER BY messages_fts.rowid DESC",
            (fts5_query(words, prefixes=False), mark, *params),
        ) as cursor:
            while len(found) < want:
                rows = list(await cursor.fetchmany(FIRST_ROWS))
                for row in rows:
                    found.setdefault(row[1], Hit(row[1], row[2], row[0]))
                    if len(found) == want:
                        oldest = row[0]
                        break
                if len(rows) < FIRST_ROWS:
                    break
        if oldest is None:
            return None
        if not ordered:
            return list(found.values())
        window = await self.reader.execute_fetchall(
            "SELECT m.id, m.phone, m.created_at, m.folded FROM messages AS m "
            "CROSS JOIN contacts AS c ON c.phone = m.phone "
            f"WHERE m.id >= ? AND {where} ORDER BY m.id DESC LIMIT ?",
            (oldest, *params, WINDOW_ROWS + 1),
        )
        newest = list(window)
        if len(newest) > WINDOW_ROWS:
            return None
        hits: dict[str, Hit] = {}
        for row in newest:
            if row[1] not in hits and holds(row[3], words):
                hits[row[1]] = Hit(row[1], row[2], row[0])
                if len(hits) == want:
                    break
        return list(hits.values())

    async def _message_hits(
        self,
        query: SearchQuery,
        condition: tuple[str, list[Any]],
        want: int,
        ordered: bool = True,
    ) -> list[Hit]:
        """The `want` conversations with the newest messages holding every word: those the
        index does not hold yet first, then the index's matches newest first, read until that
        many numbers have turned up (a common word stops early, a rare one has few matches)."""
        if not query.words:
            return []
        mark, found = await self._not_indexed(query.words, condition, want)
        if len(found) == want:
            return list(found.values())
        if any(len(w) >= PREFIX_FROM for w in query.words):
            unindexed = (mark, found)
            quick = await self._whole_words_first(query.words, condition, want, ordered, unindexed)
            if quick is not None:
                return quick
        where, params = condition
        async with self.reader.execute(
            "SELECT m.id, m.phone, m.created_at FROM messages_fts "
            "CROSS JOIN messages AS m ON m.id = messages_fts.rowid "
            "CROSS JOIN contacts AS c ON c.phone = m.phone "
            f"WHERE messages_fts MATCH ? AND messages_fts.rowid <= ? AND {where} "
            "ORDER BY messages_fts.rowid DESC",
            (fts5_query(query.words), mark, *params),
        ) as cursor:
            size = FIRST_ROWS
            while len(found) < want:
                rows = list(await cursor.fetchmany(size))
                for row in rows:
                    if row[1] not in found:
                        found[row[1]] = Hit(row[1], row[2], row[0])
                        if len(found) == want:
                            break
                if len(rows) < size:
                    break
                size = STREAM_ROWS
        return list(found.values())

    async def _not_indexed(
        self, words: list[str], condition: tuple[str, list[Any]], want: int
    ) -> tuple[int, dict[str, Hit]]:
        """The index's mark (migration 0028: it holds every message up to that id, none after
        it), and up to `want` conversations with the newest messages after it that hold every
        word, newest first: messages the background step has not indexed yet, the last
        fraction of a second's, read from the table by its key. Each is tested as the index
        matches (`holds`: whole words, or prefixes from PREFIX_FROM letters); where Python's
        idea of a letter differs from FTS5's tokenizer (a rare symbol or script), such a
        message may be found, or not, until it is indexed. The index is then read up to the
        mark only: a message indexed meanwhile is not found twice, nor out of order."""
        rows = await self.reader.execute_fetchall(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", (INDEXED_KEY,)
        )
        mark = int(next(iter(rows))[0])
        where, params = condition
        holding = " AND ".join("instr(m.folded, ?) > 0" for _ in words)  # a first sieve
        found: dict[str, Hit] = {}
        async with self.reader.execute(
            "SELECT m.id, m.phone, m.created_at, m.folded FROM messages AS m "
            "CROSS JOIN contacts AS c ON c.phone = m.phone "
            f"WHERE m.id > ? AND {holding} AND {where} ORDER BY m.id DESC",
            (mark, *words, *params),
        ) as cursor:
            async for row in cursor:
                if row[1] not in found and holds(row[3], words):
                    found[row[1]] = Hit(row[1], row[2], row[0])
                    if len(found) == want:
                        break
        return mark, found
