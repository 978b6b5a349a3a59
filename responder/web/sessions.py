"""Staff sessions, kept in the store: the cookie holds only a random id; the sign-in limit."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from responder.clock import Clock
from responder.store.models import Role, SessionRecord, StoreUnavailable

if TYPE_CHECKING:
    from responder.store import Store

COOKIE_NAME = "responder_admin"
OWNER = "admin"  # the built-in owner, who signs in with RESPONDER_ADMIN_TOKEN
SESSION_MAX_AGE = timedelta(days=7)  # a shop's laptop stays signed in for a week at most
SESSION_IDLE = timedelta(days=3)  # ...and for three days unused (a long weekend)
TOUCH_EVERY = timedelta(minutes=5)  # last use is written at most this often: reads stay reads
MAX_SESSIONS_PER_USER = 20  # signing in once more ends the least recently used beyond these
_COOKIE_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) makes


def new_cookie_id() -> str:
    return secrets.token_urlsafe(32)


def session_key(cookie_id: str) -> str:
    """What the store keeps instead of the id: a copy of the database opens no session."""
    return hashlib.sha256(cookie_id.encode()).hexdigest()


@dataclass
class Session:
    """Who is on the other end of one request: `csrf` goes in every form; `user` (and `role`)
    is set for a signed-in person. `cookie` (with `max_age`) is a new cookie value to send
    back."""

    csrf: str
    user: str | None = None
    key: str | None = None
    cookie: str | None = None
    max_age: int | None = None
    role: Role | None = None

    @property
    def authenticated(self) -> bool:
        return self.user is not None

    @property
    def owner(self) -> bool:
        return self.role == "owner"

    def csrf_matches(self, submitted: str | None) -> bool:
        if not submitted:
            return False
        return hmac.compare_digest(submitted.encode(), self.csrf.encode())


class Sessions:
    """Opens, checks and ends staff sessions. Every request reads its session from the store
    (one lookup by primary key, and one for the person), so signing out, a token change, a
    password change or disabling a person holds at once on every instance sharing the
    database: a session lives only while its credential is still the person's.

    A visitor who has not signed in has a random cookie id with no row behind it; their CSRF
    token (for the sign-in form) is an HMAC of that id under the store's secret, so anonymous
    traffic stores nothing."""

    def __init__(self, store: Store, clock: Clock, secret: str, admin_token: str) -> None:
        self.store = store
        self.clock = clock
        self._secret = secret.encode()
        self._owner_credential = self._fingerprint(admin_token)

    def _fingerprint(self, credential: str) -> str:
        digest = hmac.new(self._secret, b"credential:" + credential.encode(), hashlib.sha256)
        return digest.hexdigest()

    async def credential(self, user: str) -> tuple[str, Role] | None:
        """The fingerprint of what `user` signs in with now (the admin token for the built-in
        owner, the password hash for a person), and their role; None for nobody, or for a
        disabled person. Read from the store: a change holds at once on every instance."""
        if user == OWNER:
            return self._owner_credential, "owner"
        person = await self.store.user(user)
        if person is None or person.disabled:
            return None
        return self._fingerprint(person.password_hash), person.role

    def _anonymous(self, cookie_id: str, *, new: bool) -> Session:
        digest = hmac.new(self._secret, b"anonymous-csrf:" + cookie_id.encode(), hashlib.sha256)
        return Session(digest.hexdigest(), cookie=cookie_id if new else None)

    async def _role(self, record: SessionRecord) -> Role | None:
        """The role of the session's person while the session holds; None once it ended."""
        now = self.clock()
        if now >= record.expires_at or now >= record.last_seen_at + SESSION_IDLE:
            return None
        current = await self.credential(record.user)
        if current is None or not hmac.compare_digest(record.credential, current[0]):
            return None
        return current[1]

    async def load(self, cookie_id: str | None) -> Session:
        """The session behind a request's cookie; an anonymous one when there is none (with a
        new cookie id when the request brought none) or it ended."""
        if cookie_id is None or not _COOKIE_ID.fullmatch(cookie_id):
            return self._anonymous(new_cookie_id(), new=True)
        record = await self.store.session(session_key(cookie_id))
        role = None if record is None else await self._role(record)
        if record is None or role is None:
            return self._anonymous(cookie_id, new=False)
        now = self.clock()
        if now - record.last_seen_at >= TOUCH_EVERY:
            # A database that cannot write must not keep staff from reading: the mark waits.
            with contextlib.suppress(StoreUnavailable):
                await self.store.touch_session(record.key, now)
        return Session(record.csrf, record.user, record.key, role=role)

    async def sign_in(self, session: Session, user: str) -> None:
        """Opens a new session for `user` under a new cookie id (an id known before sign-in is
        worth nothing after it) with a new CSRF token."""
        current = await self.credential(user)
        if current is None:
            raise ValueError(f"no such user: {user}")
        credential, role = current
        if session.key is not None:
            await self.store.delete_session(session.key)
        await self.purge()
        now, cookie_id = self.clock(), new_cookie_id()
        record = SessionRecord(
            session_key(cookie_id),
            user,
            secrets.token_urlsafe(24),
            credential,
            now,
            now,
            now + SESSION_MAX_AGE,
        )
        await self.store.create_session(record, MAX_SESSIONS_PER_USER)
        session.csrf, session.user, session.key = record.csrf, user, record.key
        session.role = role
        session.cookie, session.max_age = cookie_id, int(SESSION_MAX_AGE.total_seconds())

    async def sign_out(self, session: Session) -> None:
        """Deletes the session: its cookie, and any copy of it, opens nothing any more."""
        if session.key is not None:
            await self.store.delete_session(session.key)
        anonymous = self._anonymous(new_cookie_id(), new=True)
        session.csrf, session.user, session.key = anonymous.csrf, None, None
        session.role = None
        session.cookie, session.max_age = anonymous.cookie, None

    async def end_all(self, user: str) -> int:
        """Ends every session of `user`, on every instance; returns how many."""
        return await self.store.end_sessions(user)

    async def purge(self) -> int:
        """Deletes sessions past their end or idle too long, and the owner's sessions opened
        with another admin token (run at start and at every sign-in)."""
        now = self.clock()
        ended = await self.store.purge_sessions(now, now - SESSION_IDLE)
        owner = self._owner_credential
        return ended + await self.store.end_sessions(OWNER, unless_credential=owner)


def token_matches(submitted: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input without raising."""
    return bool(expected) and hmac.compare_digest(submitted.strip().encode(), expected.encode())


class SignInLimiter:
    """At most `attempts` failed sign-ins within `per` seconds for each key (a client address,
    an account name). Kept in the store, so every instance counts the same failures."""

    def __init__(self, store: Store, clock: Clock, attempts: int = 5, per: float = 60.0) -> None:
        self.store = store
        self.clock = clock
        self.attempts = attempts
        self.per = per

    async def retry_after(self, keys: Sequence[str]) -> float:
        """Seconds until a sign-in under `keys` may be tried again; 0 when it may be now."""
        now = self.clock()
        since = now - timedelta(seconds=self.per)
        wait = 0.0
        for key in keys:
            failures = await self.store.sign_in_failures(key, since)
            if len(failures) >= self.attempts:
                oldest = failures[-self.attempts]
                wait = max(wait, (oldest - since).total_seconds())
        return wait

    async def failed(self, keys: Sequence[str]) -> None:
        await self.store.record_sign_in_failure(keys)

    async def succeeded(self, keys: Sequence[str]) -> None:
        for key in keys:
            await self.store.clear_sign_in_failures(key)
