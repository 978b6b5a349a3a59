"""The team on SQLite (DESIGN §11): people, their personal API tokens and the audit trail. A
part of SQLiteStore, kept apart from the messages it does not touch."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from responder.store.models import (
    ApiToken,
    AuditEvent,
    Role,
    UnknownUserError,
    User,
    UserExists,
)
from responder.store.sqltime import maybe_moment, moment, stored

if TYPE_CHECKING:
    import aiosqlite

    from responder.clock import Clock

T = TypeVar("T")
_USER_COLUMNS = "name, role, password_hash, disabled, created_at"
_TOKEN_COLUMNS = "id, user, created_at, last_used_at, revoked"


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], bool(row[3]), moment(row[4]))


def _token(row: Any) -> ApiToken:
    return ApiToken(row[0], row[1], moment(row[2]), maybe_moment(row[3]), bool(row[4]))


class SQLiteTeam:
    """People, tokens and the audit trail; SQLiteStore provides the connections."""

    if TYPE_CHECKING:
        clock: Clock

        @property
        def reader(self) -> aiosqlite.Connection: ...

        async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    async def users(self) -> list[User]:
        rows = await self.reader.execute_fetchall(
            f"SELECT {_USER_COLUMNS} FROM users ORDER BY name"
        )
        return [_user(row) for row in rows]

    async def user(self, name: str) -> User | None:
        rows = list(
            await self.reader.execute_fetchall(
                f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,)
            )
        )
        return _user(rows[0]) if rows else None

    async def add_user(self, user: User) -> None:
        """Stores a new person (UserExists when the name is taken)."""

        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (user.name,)).fetchone():
                raise UserExists(user.name)
            db.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (
                    user.name,
                    user.role,
                    user.password_hash,
                    int(user.disabled),
                    stored(user.created_at),
                ),
            )

        await self._transaction(work)

    async def change_user(
        self,
        name: str,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        password_hash: str | None = None,
    ) -> User:
        """Changes what is given (UnknownUserError for nobody). Disabling the person or
        changing their password ends their sessions in the same commit."""

        def work(db: sqlite3.Connection) -> User:
            row = db.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,))
            found = row.fetchone()
            if found is None:
                raise UnknownUserError(name)
            old = _user(found)
            new = User(
                name,
                role or old.role,
                password_hash or old.password_hash,
                old.disabled if disabled is None else disabled,
                old.created_at,
            )
            db.execute(
                "UPDATE users SET role = ?, password_hash = ?, disabled = ? WHERE name = ?",
                (new.role, new.password_hash, int(new.disabled), name),
            )
            if new.disabled or new.password_hash != old.password_hash:
                db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            return new

        changed: User = await self._transaction(work)
        return changed

    async def add_api_token(self, user: str, token_hash: str) -> ApiToken:
        at = self.clock()

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO api_tokens (user, hash, created_at) VALUES (?, ?, ?)",
                (user, token_hash, stored(at)),
            )
            return int(cursor.lastrowid or 0)

        token_id: int = await self._transaction(work)
        return ApiToken(token_id, user, at, None, False)

    async def api_token(self, token_id: int) -> ApiToken | None:
        rows = list(
            await self.reader.execute_fetchall(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE id = ?", (token_id,)
            )
        )
        return _token(rows[0]) if rows else None

    async def api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        rows = list(
            await self.reader.execute_fetchall(
                f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?", (token_hash,)
            )
        )
        return _token(rows[0]) if rows else None

    async def api_tokens(self, user: str) -> list[ApiToken]:
        rows = await self.reader.execute_fetchall(
            f"SELECT {_TOKEN_COLUMNS} FROM api_tokens WHERE user = ? ORDER BY id", (user,)
        )
        return [_token(row) for row in rows]

    async def touch_api_token(self, token_id: int, at: datetime) -> None:
        await self._transaction(
            lambda db: db.execute(
                "UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (stored(at), token_id)
            )
        )

    async def revoke_api_token(self, token_id: int) -> bool:
        """Revokes a token for good; False when there is no such token still valid."""

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE api_tokens SET revoked = 1 WHERE id = ? AND revoked = 0", (token_id,)
            )
            return cursor.rowcount == 1

        revoked: bool = await self._transaction(work)
        return revoked

    async def record_audit(self, event: AuditEvent) -> None:
        await self._transaction(
            lambda db: db.execute(
                "INSERT INTO audit_events (at, actor, action, subject, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    stored(event.at),
                    event.actor,
                    event.action,
                    event.subject,
                    json.dumps(event.detail, ensure_ascii=False),
                ),
            )
        )

    async def audit_events(self, limit: int = 200, before: int | None = None) -> list[AuditEvent]:
        """The newest events first; `before`: only those older than that event (a page)."""
        rows = await self.reader.execute_fetchall(
            "SELECT at, actor, action, subject, detail, id FROM audit_events WHERE id < ? "
            "ORDER BY id DESC LIMIT ?",
            (2**63 - 1 if before is None else before, limit),
        )
        return [
            AuditEvent(moment(row[0]), row[1], row[2], row[3], json.loads(row[4]), row[5])
            for row in rows
        ]
