"""The team (DESIGN §11): people with a name, a password and a role, their personal API
tokens, and the audit trail of who did what.

Passwords are hashed with argon2id (argon2-cffi) at RFC 9106's second recommended profile:
64 MiB of memory, 3 passes, 4 lanes. At most two hashes run at a time, off the event loop,
so a burst of sign-ins costs 128 MiB and two cores' worth of waiting, never a stalled server.
API tokens are long random strings: their SHA-256 is enough (nothing to guess), and it lets
a request find its token with one lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from responder.clock import Clock
from responder.store.models import (
    ROLES,
    ApiToken,
    AuditAction,
    AuditEvent,
    Role,
    UnknownUserError,
    User,
)
from responder.web.sessions import OWNER

if TYPE_CHECKING:
    from responder.store import Store

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
MIN_PASSWORD = 8
MAX_PASSWORD = 256  # longer is a paste gone wrong, and argon2 reads all of it
TOKEN_PREFIX = "rsp_"  # tells a personal token from the admin token at a glance
TOKEN_TOUCH_EVERY = timedelta(minutes=5)  # last use written at most this often
HASHES_AT_ONCE = 2  # argon2id runs take 64 MiB and a core each


class AccountError(ValueError):
    """A name, role or password that cannot be used: `message` in English for the API and
    the command line, `spanish` for the admin pages."""

    def __init__(self, message: str, spanish: str) -> None:
        super().__init__(message)
        self.message = message
        self.spanish = spanish


@dataclass(frozen=True)
class Identity:
    """Who is acting: the built-in owner, or a person (with the token they used, if any)."""

    name: str
    role: Role
    token_id: int | None = None

    @property
    def owner(self) -> bool:
        return self.role == "owner"


BUILT_IN_OWNER = Identity(OWNER, "owner")


def normalized_name(raw: str) -> str:
    """A name as stored: lower case, trimmed ("Ana " signs in as "ana")."""
    return raw.strip().lower()


def checked_name(raw: str) -> str:
    name = normalized_name(raw)
    if name == OWNER:
        raise AccountError(
            f"the name {OWNER} is the built-in owner's (RESPONDER_ADMIN_TOKEN)",
            f"El nombre {OWNER} es el del dueño incorporado (RESPONDER_ADMIN_TOKEN).",
        )
    if not NAME_RE.fullmatch(name):
        raise AccountError(
            "a name is 1 to 32 lower-case letters, digits, '.', '_' or '-'",
            "El nombre lleva de 1 a 32 letras minúsculas sin acentos, números, '.', '_' o '-'.",
        )
    return name


def checked_role(raw: Any) -> Role:
    for role in ROLES:
        if raw == role:
            return role
    raise AccountError("'role' must be 'owner' or 'agent'", "El rol es dueño o agente.")


def checked_password(raw: Any) -> str:
    if not isinstance(raw, str) or len(raw) < MIN_PASSWORD:
        raise AccountError(
            f"a password has at least {MIN_PASSWORD} characters",
            f"La contraseña debe tener al menos {MIN_PASSWORD} caracteres.",
        )
    if len(raw) > MAX_PASSWORD:
        raise AccountError(
            f"a password has at most {MAX_PASSWORD} characters",
            f"La contraseña puede tener como mucho {MAX_PASSWORD} caracteres.",
        )
    return raw


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class Passwords:
    """argon2id hashing, off the event loop and at most HASHES_AT_ONCE at a time."""

    def __init__(self) -> None:
        self._hasher = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
        self._slots = asyncio.Semaphore(HASHES_AT_ONCE)
        self._decoy: str | None = None

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether `password` is the one `stored` was made from. With no stored hash (no such
        person) a decoy is checked all the same: the answer takes as long either way."""
        if stored is None:
            if self._decoy is None:
                self._decoy = await self.hash(secrets.token_urlsafe(16))
            stored = self._decoy
        async with self._slots:
            try:
                return await asyncio.to_thread(self._hasher.verify, stored, password)
            except (VerificationError, InvalidHashError):
                return False


class Accounts:
    """Sign-in checks, people, personal tokens and the audit trail, on the store."""

    def __init__(self, store: Store, clock: Clock, admin_token: Callable[[], str]) -> None:
        self.store = store
        self.clock = clock
        self._admin_token = admin_token
        self.passwords = Passwords()

    # -- who is asking -------------------------------------------------------------------------

    async def authenticate(self, name: str, password: str) -> Identity | None:
        """The person a sign-in form names, when the password is theirs and they may sign in.
        The name `admin` with RESPONDER_ADMIN_TOKEN is the built-in owner."""
        name = normalized_name(name)
        if name == OWNER:
            given, expected = password.strip().encode(), self._admin_token().encode()
            return BUILT_IN_OWNER if expected and hmac.compare_digest(given, expected) else None
        person = await self.store.user(name) if NAME_RE.fullmatch(name) else None
        if len(password) > MAX_PASSWORD:
            return None
        matches = await self.passwords.verify(person.password_hash if person else None, password)
        if person is None or not matches or person.disabled:
            return None
        return Identity(person.name, person.role)

    async def bearer(self, token: str) -> Identity | None:
        """Who an API call's bearer token stands for: the admin token is the built-in owner,
        a personal token its person (None once revoked or the person disabled)."""
        given = token.strip().encode("utf-8", "surrogateescape")
        expected = self._admin_token().encode()
        if expected and hmac.compare_digest(given, expected):
            return BUILT_IN_OWNER
        if not token.startswith(TOKEN_PREFIX):
            return None
        found = await self.store.api_token_by_hash(token_hash(token.strip()))
        if found is None or found.revoked:
            return None
        if found.user == OWNER:
            identity = BUILT_IN_OWNER
        else:
            person = await self.store.user(found.user)
            if person is None or person.disabled:
                return None
            identity = Identity(person.name, person.role)
        now = self.clock()
        if found.last_used_at is None or now - found.last_used_at >= TOKEN_TOUCH_EVERY:
            await self.store.touch_api_token(found.id, now)
        return Identity(identity.name, identity.role, found.id)

    # -- people ----------------------------------------------------------------------------------

    async def users(self) -> list[User]:
        return await self.store.users()

    async def user(self, name: str) -> User | None:
        return await self.store.user(normalized_name(name))

    async def add_user(self, actor: str | None, name: str, role: Any, password: Any) -> User:
        """A new person (AccountError: a bad name, role or password; UserExists)."""
        user = User(
            checked_name(name),
            checked_role(role),
            await self.passwords.hash(checked_password(password)),
            False,
            self.clock(),
        )
        await self.store.add_user(user)
        await self.record(actor, "user_created", user.name, role=user.role)
        return user

    async def change_user(
        self,
        actor: str | None,
        name: str,
        *,
        role: Any = None,
        disabled: bool | None = None,
        password: Any = None,
    ) -> User:
        """Changes a person's role, whether they may sign in, or their password; disabling
        them or a new password ends their sessions at once (UnknownUserError, AccountError)."""
        name = normalized_name(name)
        if name == OWNER:
            raise AccountError(
                f"{OWNER} is the built-in owner: change RESPONDER_ADMIN_TOKEN instead",
                f"{OWNER} es el dueño incorporado: se cambia con RESPONDER_ADMIN_TOKEN.",
            )
        new_role = None if role is None else checked_role(role)
        new_hash = None
        if password is not None:
            new_hash = await self.passwords.hash(checked_password(password))
        if await self.store.user(name) is None:
            raise UnknownUserError(name)
        user = await self.store.change_user(
            name, role=new_role, disabled=disabled, password_hash=new_hash
        )
        detail: dict[str, Any] = {}
        if new_role is not None:
            detail["role"] = new_role
        if disabled is not None:
            detail["disabled"] = disabled
        if new_hash is not None:
            detail["password"] = "changed"  # never the password
        await self.record(actor, "user_changed", name, **detail)
        return user

    # -- personal API tokens ------------------------------------------------------------------

    async def create_token(self, actor: str | None, user: str) -> tuple[ApiToken, str]:
        """A new token for `user` (the built-in owner or a person that may sign in): the
        token itself is returned once and never stored."""
        name = normalized_name(user)
        if name != OWNER:
            person = await self.store.user(name)
            if person is None:
                raise UnknownUserError(name)
            if person.disabled:
                raise AccountError(
                    f"{name} is disabled", f"{name} está deshabilitado: no puede tener claves."
                )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = await self.store.add_api_token(name, token_hash(token))
        await self.record(actor, "token_created", name, id=record.id)
        return record, token

    async def revoke_token(self, actor: Identity | None, token_id: int) -> bool:
        """Revokes a token: an owner (or the console, `actor` None) any, a person their own.
        False when there is no such valid token for them."""
        found = await self.store.api_token(token_id)
        if found is None or found.revoked:
            return False
        if actor is not None and not actor.owner and found.user != actor.name:
            return False
        revoked = await self.store.revoke_api_token(token_id)
        if revoked:
            who = None if actor is None else actor.name
            await self.record(who, "user_changed", found.user, token_revoked=token_id)
        return revoked

    # -- the audit trail -------------------------------------------------------------------------

    async def record(
        self, actor: str | None, action: AuditAction, subject: str | None = None, **detail: Any
    ) -> None:
        await self.store.record_audit(AuditEvent(self.clock(), actor, action, subject, detail))

    async def audit(self, limit: int = 200, before: int | None = None) -> list[AuditEvent]:
        """The newest events first; `before`: older than that event's id (a keyset page)."""
        return await self.store.audit_events(limit, before)
