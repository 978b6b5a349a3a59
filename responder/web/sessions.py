"""Admin sign-in state: a signed session cookie, its CSRF token, and the sign-in rate limit."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeTimedSerializer

from responder.clock import Clock

COOKIE_NAME = "responder_admin"
SESSION_MAX_AGE = 7 * 24 * 3600  # a shop's laptop stays signed in for a week at most


@dataclass
class Session:
    """Who is on the other end: `csrf` goes in every form; `authenticated` after sign-in.
    `changed` says the cookie must be (re)written on the response."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    authenticated: bool = False
    changed: bool = True

    def sign_in(self) -> None:
        # A new CSRF token at sign-in: a token planted before it is worth nothing after.
        self.csrf = secrets.token_urlsafe(24)
        self.authenticated = True
        self.changed = True

    def sign_out(self) -> None:
        self.csrf = secrets.token_urlsafe(24)
        self.authenticated = False
        self.changed = True

    def csrf_matches(self, submitted: str | None) -> bool:
        if not submitted:
            return False
        return hmac.compare_digest(submitted.encode(), self.csrf.encode())


class SessionCodec:
    """Turns a Session into a signed, timestamped cookie value and back.

    An authenticated session also carries a fingerprint of the admin token, so changing
    RESPONDER_ADMIN_TOKEN signs everybody out."""

    def __init__(self, secret: str, admin_token: str, max_age: int = SESSION_MAX_AGE) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="responder.admin.session")
        self._fingerprint = hmac.new(
            secret.encode(), admin_token.encode(), hashlib.sha256
        ).hexdigest()[:32]
        self.max_age = max_age

    def dumps(self, session: Session) -> str:
        data = {"csrf": session.csrf, "key": self._fingerprint if session.authenticated else ""}
        return self._serializer.dumps(data)

    def loads(self, value: str | None) -> Session:
        """The session in the cookie; a new anonymous one when it is missing, forged or old."""
        if not value:
            return Session()
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return Session()
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return Session()
        key = data.get("key")
        authenticated = isinstance(key, str) and hmac.compare_digest(key, self._fingerprint)
        return Session(data["csrf"], authenticated, changed=False)


def token_matches(submitted: str, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input without raising."""
    return bool(expected) and hmac.compare_digest(submitted.strip().encode(), expected.encode())


class LoginLimiter:
    """At most `attempts` failed sign-ins per client within `per` seconds.

    Process-local; several instances behind one address would share it through the store."""

    def __init__(
        self,
        clock: Clock,
        attempts: int = 5,
        per: float = 60.0,
        max_clients: int = 10_000,
    ) -> None:
        self.attempts = attempts
        self.per = per
        self.clock = clock
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client, deque())
        horizon = self.clock.monotonic() - self.per
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may try now."""
        failures = self._recent(client)
        if len(failures) < self.attempts:
            return 0.0
        return max(0.0, failures[0] + self.per - self.clock.monotonic())

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= self.max_clients:
            self._forget_idle()
        failures = self._recent(client)
        failures.append(self.clock.monotonic())
        self._failures[client] = failures

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _forget_idle(self) -> None:
        for client in list(self._failures):
            if not self._recent(client):
                del self._failures[client]
        while len(self._failures) >= self.max_clients:  # still full: the oldest entries go
            del self._failures[next(iter(self._failures))]
