"""The inbox search on PostgreSQL: words through the GIN index `messages_words` (migration
0011, `to_tsvector('simple', folded)`), numbers by the contacts' primary key, parts of numbers
through the trigram index of `contact_numbers` (0016), contact fields by the contacts that
have some. A part of PostgresStore."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from responder.store.models import COUNT_KEYS
from responder.store.pg_base import PgBase
from responder.store.pg_reads import state_filters
from responder.store.pg_rows import CONVERSATION_COLUMNS, clean_text, conversation
from responder.store.search import (
    COUNT_LIMIT,
    PREFIX_FROM,
    Hit,
    SearchCounts,
    SearchPage,
    SearchQuery,
    like_pattern,
    number_fragments,
    ranked,
    tsquery,
)

log = logging.getLogger("responder.store")

# The words of a message, as the index messages_words (migration 0011) holds them.
WORDS = "to_tsvector('simple', regexp_replace(m.folded, '[^[:alnum:]]+', ' ', 'g'))"
PAGE_ROWS = 256  # matching messages read at a time, newest first
# Past this many numbers holding the digits typed (rows of contact_numbers, one for each
# fragment a number holds), the newest conversations are walked instead.
MANY_NUMBERS = 2000
# The digits of a fragment the trigram index is asked for: its last ones, a subscriber's,
# which few numbers hold; the whole fragment is then tested on those. The index asked for all
# of `41200012` reads the trigrams of a country's and an area's code too (`584`, `412`), held
# by nearly every number: 8.7 ms on `large`, against 2.0 ms for `200012` (EXPLAIN ANALYZE).
TRIGRAM_TAIL = 6
WALK_MARGIN = 4  # a walk reads up to this many times the rows the estimate says it needs
TOTAL_ROWS = "SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass"
# Newest first, a page at a time; $4 the words as LIKE patterns, tested before the words.
WALK = (
    "SELECT m.id, m.phone, m.created_at FROM messages AS m "
    "JOIN contacts AS c ON c.phone = m.phone "
    f"WHERE m.folded LIKE ALL($4::text[]) AND {WORDS} @@ to_tsquery('simple', $1) "
    "AND m.id < $2 AND {condition} ORDER BY m.id DESC LIMIT $3"
)
# Every match from the index, each conversation's newest, then the newest of those.
FROM_INDEX = (
    "SELECT h.id, h.phone, h.created_at FROM (SELECT DISTINCT ON (m.phone) m.id, m.phone, "
    f"m.created_at FROM messages AS m WHERE {WORDS} @@ to_tsquery('simple', $1) "
    "AND m.id < $2 ORDER BY m.phone, m.id DESC) AS h "
    "JOIN contacts AS c ON c.phone = h.phone WHERE {condition} ORDER BY h.id DESC LIMIT $3"
)
# How a search's transaction is planned. Each search for its own words: a plan kept for
# another word can cost a thousand times more. Never a whole table read (the planner cannot
# tell how many messages hold a word, nor how selective a LIKE is), nor a hash join that reads
# every contact; no parallel workers nor JIT compilation: each costs more to start (about
# 100 ms, measured) than a search costs.
PLANNING = [
    "SET LOCAL plan_cache_mode = force_custom_plan",
    "SET LOCAL enable_seqscan = off",
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
    "SET LOCAL max_parallel_workers_per_gather = 0",
    "SET LOCAL jit = off",
]


def _filters(prefix: str, first: int, **filters: Any) -> tuple[str, list[Any]]:
    """The condition on a conversation's state (columns of `prefix`, an alias with its dot,
    or "") as one SQL string, and its parameters numbered from `first` (pg_reads)."""
    conditions, params = state_filters(first, **filters, prefix=prefix)
    return " AND ".join(conditions), params


# New messages' words go to the GIN index's pending list (fastupdate, PostgreSQL's default),
# and whichever insert finds that list past gin_pending_list_limit (4 MB) moves all of it into
# the index, inside its transaction: on `large` a webhook's group then took tens of ms more
# (README "Steady latency"). Autovacuum would move it too, but only when it vacuums the table,
# rarely on a table of millions of rows. The sweep of new numbers moves it every second
# instead, outside the webhooks' transactions: a second of words at a time. New contacts'
# numbers wait in the pending list of the numbers' trigram index (migration 0016) the same way.
CLEAN_NUMBERS = "SELECT gin_clean_pending_list('contact_numbers_trigrams'::regclass)"
CLEAN_WORDS = "SELECT gin_clean_pending_list('messages_words'::regclass)"


class PgSearch(PgBase):
    """Conversations found by words, numbers or contact fields, newest first."""

    # The indexes whose pending lists the sweep moves: not one the database user does not own
    # (then inserts and autovacuum move its list, as by default). Each index on its own.
    _left_alone: frozenset[str] = frozenset()

    async def index_new_numbers(self) -> int:
        """Moves the new numbers' trigrams from the pending list of their index (migration
        0016) into the index, then the new messages' words likewise (CLEAN_WORDS); how many
        pages of the numbers' pending list were moved. A search reads the pending lists too:
        this keeps them short, out of the webhooks' transactions."""
        moved = await self._move_pending("numbers", CLEAN_NUMBERS)
        await self._move_pending("words", CLEAN_WORDS)
        return moved

    async def _move_pending(self, index: str, sql: str) -> int:
        """One index's pending list moved (`sql`); how many pages. A user who may not is
        told once, and the list is left to PostgreSQL from then on."""
        if index in self._left_alone:
            return 0
        try:
            return int(await self._read(lambda conn: conn.fetchval(sql)))
        except asyncpg.InsufficientPrivilegeError as err:
            self._left_alone |= {index}
            log.warning("the %s index's pending list is left to PostgreSQL: %s", index, err)
            return 0

    async def search(
        self, query: SearchQuery, limit: int = 100, offset: int = 0, **filters: Any
    ) -> SearchPage:
        """As SQLiteSearch.search: the numbers typed in full first, then newest first."""
        want = limit + offset

        async def work(conn: Any) -> list[Hit]:
            async with conn.transaction():
                await conn.execute(";".join(PLANNING))
                exact = await _exact(conn, query, filters)
                return ranked(
                    exact,
                    await _contact_hits(conn, query, filters, want),
                    await _message_hits(conn, query, filters, want),
                )[offset:want]

        hits = await self._read(work)
        rows = await self._fetch(
            f"SELECT {CONVERSATION_COLUMNS} FROM contacts WHERE phone = ANY($1::text[])",
            [h.phone for h in hits],
        )
        by_phone = {c.phone: c for c in map(conversation, rows)}
        return SearchPage(
            [by_phone[h.phone] for h in hits if h.phone in by_phone],
            {h.phone: h.message_id for h in hits if h.message_id is not None},
        )

    async def search_counts(self, me: str | None, query: SearchQuery) -> SearchCounts:
        """COUNT_KEYS over the conversations `query` finds, up to COUNT_LIMIT of them."""

        async def work(conn: Any) -> list[Hit]:
            async with conn.transaction():
                await conn.execute(";".join(PLANNING))
                return ranked(
                    await _exact(conn, query, {}),
                    await _contact_hits(conn, query, {}, COUNT_LIMIT + 1),
                    await _message_hits(conn, query, {}, COUNT_LIMIT + 1),
                )

        found = await self._read(work)
        [row] = await self._fetch(
            "SELECT count(*), count(*) FILTER (WHERE mode = 'human'), "
            "count(*) FILTER (WHERE needs_attention), count(*) FILTER (WHERE opted_out), "
            "count(*) FILTER (WHERE unread > 0), count(*) FILTER (WHERE assigned_to IS NULL), "
            "count(*) FILTER (WHERE status = 'resolved'), "
            "count(*) FILTER (WHERE assigned_to = $1) FROM contacts "
            "WHERE phone = ANY($2::text[])",
            me,
            [h.phone for h in found[:COUNT_LIMIT]],
        )
        counts = dict(zip(COUNT_KEYS, (int(v) for v in row)))
        return SearchCounts(counts, len(found) <= COUNT_LIMIT)


async def _exact(conn: Any, query: SearchQuery, filters: dict[str, Any]) -> list[str]:
    """The numbers typed in full that are conversations: by primary key."""
    if not query.phones:
        return []
    condition, params = _filters("", 2, **filters)
    rows = await conn.fetch(
        f"SELECT phone FROM contacts WHERE phone = ANY($1::text[]) AND {condition}",
        list(query.phones),
        *params,
    )
    found = {row[0] for row in rows}
    return [p for p in dict.fromkeys(query.phones) if p in found]


async def _contact_hits(
    conn: Any, query: SearchQuery, filters: dict[str, Any], want: int
) -> list[Hit]:
    """The `want` newest conversations whose fields hold every word (only contacts with
    fields are read) or whose number holds a fragment."""
    found: list[Hit] = []
    if query.words:
        condition, params = _filters("", len(query.words) + 2, **filters)
        likes = " AND ".join(f"folded LIKE ${n + 2}" for n in range(len(query.words)))
        rows = await conn.fetch(
            f"SELECT phone, last_message_at FROM contacts WHERE folded <> '' AND {likes} "
            f'AND {condition} ORDER BY last_message_at DESC, phone COLLATE "C" LIMIT $1',
            want,
            *(clean_text(f"%{w}%") for w in query.words),
            *params,
        )
        found += [Hit(row[0], row[1]) for row in rows]
    if query.fragments:
        found += await _number_hits(conn, query.fragments, filters, want)
    return found


async def _number_hits(
    conn: Any, fragments: tuple[str, ...], filters: dict[str, Any], want: int
) -> list[Hit]:
    """The `want` newest conversations whose number holds one of `fragments`: the numbers from
    the trigram index of `contact_numbers` (migration 0016), then the state of those; digits
    that many numbers hold walk the conversations newest first instead, and stop early."""
    phones = await _numbers_holding(conn, fragments)
    condition, params = _filters("", 3, **filters)
    if phones is not None:
        where, numbers = "phone = ANY($2::text[])", phones
    else:
        where, numbers = "phone LIKE ANY($2::text[])", [like_pattern(d) for d in fragments]
    found = await conn.fetch(
        f"SELECT phone, last_message_at FROM contacts WHERE {where} AND {condition} "
        'ORDER BY last_message_at DESC, phone COLLATE "C" LIMIT $1',
        want,
        numbers,
        *params,
    )
    return [Hit(row[0], row[1]) for row in found]


async def _numbers_holding(conn: Any, fragments: tuple[str, ...]) -> list[str] | None:
    """The numbers holding one of `fragments` (number_fragments), through the trigram index
    of `contact_numbers` (asked for each fragment's last TRIGRAM_TAIL digits), up to
    MANY_NUMBERS rows: None past that, or for digits shorter than a trigram. A statement each,
    so that each is an index scan (`LIKE ANY` of an array is not)."""
    kept = number_fragments(fragments)
    if kept is None:
        return None
    holding = " UNION ALL ".join(
        f"SELECT phone FROM contact_numbers WHERE phone LIKE ${n} AND strpos(phone, ${n + 1}) > 0"
        for n in range(2, 2 * len(kept) + 2, 2)
    )
    rows = await conn.fetch(
        f"{holding} LIMIT $1",
        MANY_NUMBERS + 1,
        *(arg for f in kept for arg in (like_pattern(f[-TRIGRAM_TAIL:]), f)),
    )
    if len(rows) > MANY_NUMBERS:
        return None
    return list(dict.fromkeys(row[0] for row in rows))


async def _message_hits(
    conn: Any, query: SearchQuery, filters: dict[str, Any], want: int
) -> list[Hit]:
    """The `want` conversations with the newest messages holding every word. A GIN index
    cannot give its matches newest first, so the way depends on how many there are (the
    index's statistics): a common word walks the newest messages until that many numbers
    have turned up (a few hundred rows); a rarer one reads all its matches from the index.
    A walk that finds too few in the rows it expected to need hands the rest to the index."""
    if not query.words:
        return []
    condition, params = _filters("c.", 5, **filters)
    words = clean_text(tsquery(query.words))
    likes = [f"%{w}%" for w in query.words]  # a cheap test first: each word is in the text
    found: dict[str, Hit] = {}
    before = 2**63 - 1
    total = max(1.0, float(await conn.fetchval(TOTAL_ROWS)))
    estimate = total * await _estimated_share(conn, query.words)
    if estimate * estimate > want * total:
        budget = int(WALK_MARGIN * want * total / max(estimate, 1.0)) + PAGE_ROWS
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        walked = 0
        while len(found) < want and walked < budget:
            rows = await conn.fetch(
                WALK.format(condition=condition), words, before, PAGE_ROWS, likes, *params
            )
            for row in rows:
                if row[1] not in found:
                    found[row[1]] = Hit(row[1], row[2], row[0])
                    if len(found) == want:
                        break
            walked += PAGE_ROWS
            if len(rows) < PAGE_ROWS:
                return list(found.values())
            before = rows[-1][0]
        await conn.execute("SET LOCAL enable_bitmapscan = on")
        if len(found) >= want:
            return list(found.values())
    await conn.execute("SET LOCAL enable_indexscan = off")  # the index, not a walk by id
    condition, params = _filters("c.", 4, **filters)
    rows = await conn.fetch(
        FROM_INDEX.format(condition=condition), words, before, want - len(found), *params
    )
    await conn.execute("SET LOCAL enable_indexscan = on")
    for row in rows:
        found.setdefault(row[1], Hit(row[1], row[2], row[0]))
    return list(found.values())


async def _estimated_share(conn: Any, words: list[str]) -> float:
    """The share of messages expected to hold every word, from the index's statistics (its
    most common words and their frequencies; a word of PREFIX_FROM letters or more counts
    every common word it begins). The planner's own estimate for a prefix is a fixed guess.
    A word that is not among the common ones counts as rare: 0."""
    row = await conn.fetchrow(
        "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
        "WHERE schemaname = current_schema() AND tablename = 'messages_words'"
    )
    if row is None or row[0] is None:
        return 0.0
    common = list(zip(row[0], row[1]))
    share = 1.0
    for word in words:
        prefix = len(word) >= PREFIX_FROM
        share *= min(1.0, sum(f for e, f in common if e == word or (prefix and e.startswith(word))))
    return share
