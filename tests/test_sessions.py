"""Staff sessions against a real SQLite store on the test clock: opaque ids, sign-out, expiry,
a token change, anonymous visitors."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from responder.store.sqlite import SQLiteStore
from responder.web.sessions import (
    MAX_SESSIONS_PER_USER,
    OWNER,
    SESSION_IDLE,
    SESSION_MAX_AGE,
    TOUCH_EVERY,
    Session,
    Sessions,
)
from tests.conftest import Clock

SECRET = "s" * 43
TOKEN = "admin-token-0123456789"


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "sessions.db", clock)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def sessions(store: SQLiteStore, clock: Clock) -> Sessions:
    return Sessions(store, clock, SECRET, TOKEN)


def rows(store: SQLiteStore) -> list[tuple[str, ...]]:
    with sqlite3.connect(store.path) as db:
        return list(db.execute("SELECT key, user, csrf, credential FROM sessions"))


async def signed_in(sessions: Sessions) -> str:
    """Signs the owner in as a browser would; returns the cookie's value."""
    session = await sessions.load(None)
    await sessions.sign_in(session, OWNER)
    assert session.cookie is not None
    return session.cookie


async def test_the_cookie_holds_a_random_id_and_the_store_only_its_hash(
    sessions: Sessions, store: SQLiteStore
) -> None:
    visitor = await sessions.load(None)
    assert visitor.cookie is not None and not visitor.authenticated
    anonymous_cookie, anonymous_csrf = visitor.cookie, visitor.csrf
    await sessions.sign_in(visitor, OWNER)
    cookie = visitor.cookie
    assert cookie is not None and re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie)
    # A new id and a new CSRF token at sign-in: what was known before is worth nothing after.
    assert cookie != anonymous_cookie and visitor.csrf != anonymous_csrf
    assert visitor.max_age == SESSION_MAX_AGE.total_seconds()
    [(key, user, csrf, credential)] = rows(store)
    assert key == hashlib.sha256(cookie.encode()).hexdigest() and user == OWNER
    assert csrf == visitor.csrf
    assert cookie not in credential and TOKEN not in credential
    back = await sessions.load(cookie)
    assert back.authenticated and back.user == OWNER and back.csrf == visitor.csrf
    assert back.cookie is None  # nothing to write back
    assert not (await sessions.load(anonymous_cookie)).authenticated


async def test_sign_out_deletes_the_session_for_every_copy_of_the_cookie(
    sessions: Sessions, store: SQLiteStore
) -> None:
    cookie = await signed_in(sessions)
    copy = cookie
    session = await sessions.load(cookie)
    signed_in_csrf = session.csrf
    await sessions.sign_out(session)
    assert not session.authenticated and session.cookie not in (None, cookie)
    assert session.csrf != signed_in_csrf
    assert rows(store) == []
    after = await sessions.load(copy)
    assert not after.authenticated and not after.csrf_matches(signed_in_csrf)


async def test_sessions_end_after_a_week_even_when_used(
    sessions: Sessions, store: SQLiteStore, clock: Clock
) -> None:
    cookie = await signed_in(sessions)
    for _ in range(6):
        clock.advance(24 * 3600)
        assert (await sessions.load(cookie)).authenticated
    clock.advance(24 * 3600 - 1)
    assert (await sessions.load(cookie)).authenticated
    clock.advance(1)
    assert not (await sessions.load(cookie)).authenticated
    await signed_in(sessions)  # signing in purges what has ended
    assert len(rows(store)) == 1


async def test_sessions_end_when_unused_for_three_days(
    sessions: Sessions, store: SQLiteStore, clock: Clock
) -> None:
    cookie = await signed_in(sessions)
    clock.advance(24 * 3600)
    assert (await sessions.load(cookie)).authenticated  # this use counts...
    clock.advance(SESSION_IDLE.total_seconds() - 1)
    assert (await sessions.load(cookie)).authenticated  # ...so it holds after 4 days
    clock.advance(SESSION_IDLE.total_seconds())  # unused for 3 days, signed in < 7 days ago
    assert not (await sessions.load(cookie)).authenticated
    assert await sessions.purge() == 1
    assert rows(store) == []


async def test_use_is_written_at_most_every_few_minutes(
    sessions: Sessions, store: SQLiteStore, clock: Clock
) -> None:
    cookie = await signed_in(sessions)
    key = hashlib.sha256(cookie.encode()).hexdigest()
    first = await store.session(key)
    assert first is not None
    clock.advance(TOUCH_EVERY.total_seconds() - 1)
    await sessions.load(cookie)
    assert await store.session(key) == first  # a read stayed a read
    clock.advance(1)
    await sessions.load(cookie)
    touched = await store.session(key)
    assert touched is not None and touched.last_seen_at == clock()


async def test_another_admin_token_ends_every_session(
    sessions: Sessions, store: SQLiteStore, clock: Clock
) -> None:
    cookie = await signed_in(sessions)
    changed = Sessions(store, clock, SECRET, "another-admin-token-0123")
    assert not (await changed.load(cookie)).authenticated
    assert (await sessions.load(cookie)).authenticated  # the old token's instance still agrees
    assert await changed.purge() == 1  # what a start with the new token does
    assert rows(store) == []
    assert not (await sessions.load(cookie)).authenticated


async def test_all_sessions_of_a_person_can_be_ended(
    sessions: Sessions, store: SQLiteStore
) -> None:
    cookies = [await signed_in(sessions) for _ in range(3)]
    assert await sessions.end_all(OWNER) == 3
    for cookie in cookies:
        assert not (await sessions.load(cookie)).authenticated
    assert rows(store) == []


async def test_a_person_keeps_a_bounded_number_of_sessions(
    sessions: Sessions, store: SQLiteStore, clock: Clock
) -> None:
    cookies = []
    for _ in range(MAX_SESSIONS_PER_USER + 5):
        cookies.append(await signed_in(sessions))
        clock.advance(1)
    assert len(rows(store)) == MAX_SESSIONS_PER_USER
    assert not (await sessions.load(cookies[0])).authenticated  # the least recently used went
    assert (await sessions.load(cookies[-1])).authenticated


async def test_only_known_people_sign_in(sessions: Sessions) -> None:
    with pytest.raises(ValueError, match="no such user"):
        await sessions.sign_in(await sessions.load(None), "ana")


async def test_anonymous_visitors_store_nothing(
    sessions: Sessions, store: SQLiteStore, clock: Clock
) -> None:
    visitors = [await sessions.load(None) for _ in range(200)]
    assert rows(store) == []
    cookies = {v.cookie for v in visitors}
    assert len(cookies) == 200 and None not in cookies
    first = visitors[0]
    assert first.cookie is not None
    # The same cookie brings back the same sign-in CSRF token, and nothing to write.
    again = await sessions.load(first.cookie)
    assert again.csrf == first.csrf and again.cookie is None and not again.authenticated
    # That token is the store secret's: another secret, another token.
    elsewhere = await Sessions(store, clock, "t" * 43, TOKEN).load(first.cookie)
    assert elsewhere.csrf != first.csrf
    # A cookie that is not one of ours is replaced.
    for garbage in ("", "garbage", first.cookie + "x", "a.b.c"):
        replaced = await sessions.load(garbage)
        assert replaced.cookie is not None and replaced.cookie != garbage


def test_csrf_matches() -> None:
    session = Session("token")
    assert session.csrf_matches("token")
    assert not session.csrf_matches("") and not session.csrf_matches(None)
    assert not session.csrf_matches("tokeN") and not session.csrf_matches("tók")
