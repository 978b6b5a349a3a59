"""The team on PostgreSQL (DESIGN §11): people, their personal API tokens and the audit
trail. A part of PostgresStore."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from responder.store.models import (
    ApiToken,
    AuditEvent,
    Role,
    UnknownUserError,
    User,
    UserExists,
)
from responder.store.pg_base import PgBase
from responder.store.pg_rows import clean_text, to_json

_USER = "SELECT name, role, password_hash, disabled, created_at FROM users"
_TOKEN = 'SELECT id, "user", created_at, last_used_at, revoked FROM api_tokens'


def _user(row: Any) -> User:
    return User(row[0], row[1], row[2], row[3], row[4])


def _token(row: Any) -> ApiToken:
    return ApiToken(row[0], row[1], row[2], row[3], row[4])


class PgTeam(PgBase):
    """People, tokens and the audit trail."""

    async def users(self) -> list[User]:
        return [_user(row) for row in await self._fetch(f"{_USER} ORDER BY name")]

    async def user(self, name: str) -> User | None:
        row = await self._fetchrow(f"{_USER} WHERE name = $1", clean_text(name))
        return None if row is None else _user(row)

    async def add_user(self, user: User) -> None:
        """Stores a new person (UserExists when the name is taken)."""

        async def work(conn: Any) -> None:
            status = await conn.execute(
                "INSERT INTO users (name, role, password_hash, disabled, created_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
                user.name,
                user.role,
                user.password_hash,
                user.disabled,
                user.created_at,
            )
            if status.split()[-1] == "0":
                raise UserExists(user.name)

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

        async def work(conn: Any) -> User:
            found = await conn.fetchrow(f"{_USER} WHERE name = $1 FOR UPDATE", clean_text(name))
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
            await conn.execute(
                "UPDATE users SET role = $2, password_hash = $3, disabled = $4 WHERE name = $1",
                name,
                new.role,
                new.password_hash,
                new.disabled,
            )
            if new.disabled or new.password_hash != old.password_hash:
                await conn.execute('DELETE FROM sessions WHERE "user" = $1', name)
            return new

        changed: User = await self._transaction(work)
        return changed

    async def add_api_token(self, user: str, token_hash: str) -> ApiToken:
        at = self.clock()
        token_id = await self._transaction(
            lambda conn: conn.fetchval(
                'INSERT INTO api_tokens ("user", hash, created_at) VALUES ($1, $2, $3) '
                "RETURNING id",
                user,
                token_hash,
                at,
            )
        )
        return ApiToken(int(token_id), user, at, None, False)

    async def api_token(self, token_id: int) -> ApiToken | None:
        row = await self._fetchrow(f"{_TOKEN} WHERE id = $1", token_id)
        return None if row is None else _token(row)

    async def api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        row = await self._fetchrow(f"{_TOKEN} WHERE hash = $1", clean_text(token_hash))
        return None if row is None else _token(row)

    async def api_tokens(self, user: str) -> list[ApiToken]:
        rows = await self._fetch(f'{_TOKEN} WHERE "user" = $1 ORDER BY id', clean_text(user))
        return [_token(row) for row in rows]

    async def touch_api_token(self, token_id: int, at: datetime) -> None:
        await self._transaction(
            lambda conn: conn.execute(
                "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2", at, token_id
            )
        )

    async def revoke_api_token(self, token_id: int) -> bool:
        """Revokes a token for good; False when there is no such token still valid."""
        status: str = await self._transaction(
            lambda conn: conn.execute(
                "UPDATE api_tokens SET revoked = true WHERE id = $1 AND NOT revoked", token_id
            )
        )
        return status.split()[-1] == "1"

    async def record_audit(self, event: AuditEvent) -> None:
        await self._transaction(
            lambda conn: conn.execute(
                "INSERT INTO audit_events (at, actor, action, subject, detail) "
                "VALUES ($1, $2, $3, $4, $5::jsonb)",
                event.at,
                None if event.actor is None else clean_text(event.actor),
                event.action,
                None if event.subject is None else clean_text(event.subject),
                to_json(event.detail),
            )
        )

    async def audit_events(self, limit: int = 200, before: int | None = None) -> list[AuditEvent]:
        """The newest events first; `before`: only those older than that event (a page)."""
        rows = await self._fetch(
            "SELECT at, actor, action, subject, detail::text, id FROM audit_events "
            "WHERE id < $2 ORDER BY id DESC LIMIT $1",
            limit,
            2**63 - 1 if before is None else before,
        )
        return [
            AuditEvent(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5]) for row in rows
        ]
