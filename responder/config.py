"""Settings read once from the environment (and `.env`) into one typed object."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.config import Config


class StartupError(Exception):
    """Bad configuration: the message is one line naming the variable or file position."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str


# The one declared table of environment settings; README's configuration table mirrors it.
SETTINGS: tuple[Setting, ...] = (
    Setting("RESPONDER_DATABASE", "responder.db", "SQLite file or postgresql:// URL"),
    Setting(
        "RESPONDER_SPOOL",
        None,
        "folder where webhooks wait while the database cannot take them "
        "(default: `<database>-spool` beside a SQLite file, `responder-spool` for a URL)",
    ),
    Setting("RESPONDER_RULES", "rules.yaml", "rules file"),
    Setting("RESPONDER_TEMPLATES", "templates", "reply templates folder"),
    Setting("RESPONDER_WEBHOOK_TOKEN", None, "secret path segment of webhook URLs"),
    Setting("RESPONDER_ADMIN_TOKEN", None, "bearer token of /api"),
    Setting(
        "RESPONDER_METRICS_TOKEN",
        None,
        "a bearer token for `GET /metrics` only (the admin token and owners' tokens work too)",
    ),
    Setting("RESPONDER_PROVIDER", None, "default outbound provider"),
    Setting("RESPONDER_PUBLIC_URL", None, "public base URL shown by `responder urls`"),
    Setting("MASSIVA_URL", "https://sistema.massivamovil.com/webservices", "Massiva base URL"),
    Setting("MASSIVA_USER", None, "Massiva `usuario`"),
    Setting("MASSIVA_PASSWORD", None, "Massiva `clave`"),
    Setting("MASSIVA_BATCH_SIZE", "50", "numbers per SendSms request"),
    Setting("MASSIVA_GROUP", None, "Massiva contact group (`grupo`) for new numbers"),
    Setting("MASSMS_URL", "https://www.markettext.com/massms/api", "MasSMS base URL"),
    Setting("MASSMS_API_ID", None, "MasSMS `api_id`"),
    Setting("MASSMS_USER", None, "MasSMS `user`"),
    Setting("MASSMS_PASSWORD", None, "MasSMS `password`"),
    Setting("MASSMS_SENDER_ID", None, "MasSMS `senderid`"),
)

PROVIDER_NAMES = ("massiva", "massms", "sandbox")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{16,128}$")
# MasSMS manual: 3-11 characters, no spaces, not starting with 0, no accents or punctuation.
SENDER_ID_RE = re.compile(r"^[A-Za-z1-9][A-Za-z0-9]{2,10}$")


@dataclass(frozen=True)
class MassivaSettings:
    url: str
    user: str
    password: str
    batch_size: int
    group: str | None = None


@dataclass(frozen=True)
class MasSMSSettings:
    url: str
    api_id: str
    user: str
    password: str
    sender_id: str | None


@dataclass(frozen=True)
class Settings:
    database: str  # a SQLite file path or a postgresql:// URL
    spool: Path  # where webhooks wait while the database cannot take them (responder/spool/)
    rules: Path
    templates: Path
    webhook_token: str | None
    admin_token: str | None
    provider: str
    public_url: str | None
    massiva: MassivaSettings | None
    massms: MasSMSSettings | None
    metrics_token: str | None = None

    @property
    def providers(self) -> tuple[str, ...]:
        """Names of the configured providers; the sandbox stands in when none is."""
        names = tuple(n for n in ("massiva", "massms") if getattr(self, n) is not None)
        return names or ("sandbox",)

    def replace(self, **changes: Any) -> Settings:
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        values.update(changes)
        return Settings(**values)


def _read(config: Config) -> Callable[[str], str | None]:
    defaults = {s.name: s.default for s in SETTINGS}

    def get(name: str) -> str | None:
        value = config(name, cast=str, default=defaults[name])
        value = value.strip() if isinstance(value, str) else value
        return value or defaults[name]

    return get


def _url(name: str, value: str | None) -> str:
    if not value or not re.match(r"^https?://[^\s/]+", value):
        raise StartupError(f"{name}: expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _token(name: str, value: str | None) -> str | None:
    if value is not None and not TOKEN_RE.match(value):
        raise StartupError(f"{name}: use 16-128 letters, digits, '-' or '_'")
    return value


def _all_or_none(names: tuple[str, ...], get: Callable[[str], str | None]) -> bool:
    present = [n for n in names if get(n)]
    if present and len(present) != len(names):
        missing = ", ".join(n for n in names if n not in present)
        raise StartupError(f"{missing}: must be set together with {', '.join(present)}")
    return bool(present)


def default_spool(database: str) -> str:
    """Beside a SQLite file (`responder.db-spool`, like its `-wal`), so that moving the
    database moves what waits for it; in the working folder for a database URL."""
    if "://" in database:
        return "responder-spool"
    return database + "-spool"


def load_settings(environ: Mapping[str, str] | None = None, env_file: str = ".env") -> Settings:
    """Reads and validates every setting; raises StartupError naming the first bad variable."""
    env = os.environ if environ is None else environ
    config = Config(env_file if Path(env_file).is_file() else None, environ=env)
    get = _read(config)

    massiva = None
    if _all_or_none(("MASSIVA_USER", "MASSIVA_PASSWORD"), get):
        batch = get("MASSIVA_BATCH_SIZE") or ""
        if not batch.isdigit() or not 1 <= int(batch) <= 500:
            raise StartupError(
                f"MASSIVA_BATCH_SIZE: expected a number from 1 to 500, got {batch!r}"
            )
        massiva = MassivaSettings(
            url=_url("MASSIVA_URL", get("MASSIVA_URL")),
            user=get("MASSIVA_USER") or "",
            password=get("MASSIVA_PASSWORD") or "",
            batch_size=int(batch),
            group=get("MASSIVA_GROUP"),
        )

    massms = None
    if _all_or_none(("MASSMS_API_ID", "MASSMS_USER", "MASSMS_PASSWORD"), get):
        sender = get("MASSMS_SENDER_ID")
        if sender is not None and not SENDER_ID_RE.match(sender):
            raise StartupError(
                "MASSMS_SENDER_ID: 3 to 11 letters or digits, no spaces, accents or "
                f"punctuation, not starting with 0 (got {sender!r})"
            )
        massms = MasSMSSettings(
            url=_url("MASSMS_URL", get("MASSMS_URL")),
            api_id=get("MASSMS_API_ID") or "",
            user=get("MASSMS_USER") or "",
            password=get("MASSMS_PASSWORD") or "",
            sender_id=sender,
        )

    configured = [n for n, s in (("massiva", massiva), ("massms", massms)) if s is not None]
    provider = (get("RESPONDER_PROVIDER") or (configured[0] if configured else "sandbox")).lower()
    if provider not in PROVIDER_NAMES:
        raise StartupError(f"RESPONDER_PROVIDER: expected one of {', '.join(PROVIDER_NAMES)}")
    if provider != "sandbox" and provider not in configured:
        raise StartupError(
            f"RESPONDER_PROVIDER: {provider} is chosen but its credentials are unset"
        )

    public_url = get("RESPONDER_PUBLIC_URL")
    database = get("RESPONDER_DATABASE") or "responder.db"
    return Settings(
        database=database,
        spool=Path(get("RESPONDER_SPOOL") or default_spool(database)),
        rules=Path(get("RESPONDER_RULES") or "rules.yaml"),
        templates=Path(get("RESPONDER_TEMPLATES") or "templates"),
        webhook_token=_token("RESPONDER_WEBHOOK_TOKEN", get("RESPONDER_WEBHOOK_TOKEN")),
        admin_token=_token("RESPONDER_ADMIN_TOKEN", get("RESPONDER_ADMIN_TOKEN")),
        provider=provider,
        public_url=_url("RESPONDER_PUBLIC_URL", public_url) if public_url else None,
        massiva=massiva,
        massms=massms,
        metrics_token=_token("RESPONDER_METRICS_TOKEN", get("RESPONDER_METRICS_TOKEN")),
    )
