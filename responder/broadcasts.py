"""Broadcasts (DESIGN §12): one text, a template, to a segment of contacts, sent through the
outbox behind replies, at the providers' send rate, never inside `settings.hours.quiet`.

The interface other parts build on (names kept stable):

- records: `Segment(labels, fields, active_within_days)`, `Broadcast(id, name, text, segment,
  via, send_at, status, recipients, counts, created_by, created_at, started_at, finished_at,
  waiting)`, `BroadcastPreview(recipients, samples, parts_per_message, estimated_segments,
  encoding)`, `Recipient(phone, status, message_id, error, updated_at)`; `status` is one of
  BROADCAST_STATUSES, `counts` has every key of RECIPIENT_STATUSES and they add up to
  `recipients`.
- `Service` methods (responder/service.py, delegating to `Broadcasts` here):
  `preview_broadcast(text, segment, via)`, `create_broadcast(text, segment, *, send_at, via,
  name, by)`, `get_broadcast(id)`, `list_broadcasts(before_id=None, limit=50)`,
  `broadcast_recipients(id, *, status=None, after=None, limit=100)` (keyset on the phone),
  `pause_broadcast(id, by)`, `resume_broadcast(id, by)`, `cancel_broadcast(id, by)`,
  `change_broadcast(id, action, by)` (action "pause", "resume" or "cancel").
- errors: `BroadcastError` (bad input: `message` in English, `spanish` for the admin pages),
  `UnknownBroadcastError` (404), `BroadcastStateError` (409).
- helpers: `segment_from(dict)` (a segment as the API takes it; BroadcastError if malformed),
  `quiet_wait(window, now, zone)` (when the quiet hours end; None outside them).

How it sends (responder/workers/feeder.py): the recipients are written when the broadcast is
created. One feeder in the whole
deployment (the `broadcast-feeder` lease) moves them into the outbox a couple of seconds' worth
at a time, while the broadcast runs, outside the quiet hours, and only while no reply or staff
message waits; the outbox claims replies first and never claims a paused or cancelled
broadcast's messages. See README "Broadcasts".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from jinja2 import Template, TemplateSyntaxError

from responder import engine
from responder.accounts import Accounts
from responder.clock import Clock
from responder.moments import SEND_HORIZON, within_horizon
from responder.providers.base import Provider
from responder.rules.hours import DAY_MINUTES, Shift
from responder.rules.model import RulesSettings
from responder.store import Store
from responder.store.broadcast_models import (
    BROADCAST_STATUSES,
    RECIPIENT_STATUSES,
    Broadcast,
    BroadcastPreview,
    BroadcastStateError,
    BroadcastStatus,
    Recipient,
    Segment,
    SegmentContact,
    UnknownBroadcastError,
)
from responder.templating import TemplateError, make_environment
from responder.templating import render as render_template
from responder.text import UnsendableText, is_gsm7, segments, sendable

__all__ = [
    "BROADCAST_STATUSES",
    "RECIPIENT_STATUSES",
    "Broadcast",
    "BroadcastError",
    "BroadcastPreview",
    "BroadcastStateError",
    "Broadcasts",
    "Recipient",
    "Segment",
    "UnknownBroadcastError",
    "quiet_wait",
]

log = logging.getLogger("responder.broadcasts")

MAX_TEXT = 1600  # ten SMS, as a person's message
MAX_NAME = 80
MAX_LABELS = 20
MAX_FIELDS = 20
SAMPLES = 3


class BroadcastError(ValueError):
    """A broadcast that cannot be made as asked: `message` for the API and the command line,
    `spanish` for the admin pages."""

    def __init__(self, message: str, spanish: str) -> None:
        super().__init__(message)
        self.message = message
        self.spanish = spanish


def quiet_wait(window: Shift | None, now: datetime, zone: tzinfo) -> datetime | None:
    """When broadcasts may send again: None outside `settings.hours.quiet` (the quiet hours,
    local time, in which broadcasts wait; no window: never quiet), else the moment it ends."""
    if window is None:
        return None
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    start, end = window.start, window.end
    inside = (start <= minute < end) if end > start else (minute >= start or minute < end)
    if not inside:
        return None
    ends = end % DAY_MINUTES
    day = local.date() if minute < ends else local.date() + timedelta(days=1)
    return _local_moment(day, ends, zone)


def _local_moment(day: date, minute: int, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)


def segment_from(data: Any) -> Segment:
    """A segment as the API, the CLI and the admin pages give it; BroadcastError if malformed."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BroadcastError("'segment' must be an object", "El segmento no es válido.")
    unknown = set(data) - {"labels", "fields", "active_within_days"}
    if unknown:
        raise BroadcastError(
            f"'segment' has unknown keys: {', '.join(sorted(unknown))}",
            "El segmento tiene datos desconocidos.",
        )
    labels = data.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise BroadcastError(
            "'segment.labels' must be a list of labels", "Las etiquetas no son válidas."
        )
    if len(labels) > MAX_LABELS:
        raise BroadcastError(
            f"'segment.labels': at most {MAX_LABELS}", f"Como máximo {MAX_LABELS} etiquetas."
        )
    fields = data.get("fields") or {}
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and k.strip() and isinstance(v, str | int | float)
        for k, v in fields.items()
    ):
        raise BroadcastError(
            "'segment.fields' must map field names to values", "Los campos no son válidos."
        )
    if len(fields) > MAX_FIELDS:
        raise BroadcastError(
            f"'segment.fields': at most {MAX_FIELDS}", f"Como máximo {MAX_FIELDS} campos."
        )
    days = data.get("active_within_days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650
    ):
        raise BroadcastError(
            "'segment.active_within_days' must be a whole number of days from 1 to 3650",
            "Los días de actividad deben ser un número entero entre 1 y 3650.",
        )
    return Segment(
        tuple(sorted({label.strip() for label in labels})),
        {k.strip(): str(v) for k, v in fields.items()},
        days,
    )


class Broadcasts:
    """Broadcasts made, read and changed by people; their text checked and rendered (for the
    feeder too, responder/workers/feeder.py, which sends them)."""

    def __init__(
        self,
        store: Store,
        accounts: Accounts,
        providers: dict[str, Provider],
        *,
        settings: Callable[[], RulesSettings],
        default_provider: Callable[[], str],
        clock: Clock,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.providers = providers
        self.settings = settings
        self.default_provider = default_provider
        self.clock = clock
        self.env = make_environment({})
        # Compiled texts by their source: process-local and safe, a text never changes.
        self._compiled: dict[str, Template] = {}
        # Called after a change, so that the feeder looks at once (responder/workers/feeder.py).
        self.on_change: Callable[[], None] = lambda: None

    # -- the text -------------------------------------------------------------------------------

    def template(self, text: Any) -> Template:
        if not isinstance(text, str) or not text.strip():
            raise BroadcastError("'text' must be a non-empty string", "Escriba el texto.")
        if len(text) > MAX_TEXT:
            raise BroadcastError(
                f"'text' is longer than {MAX_TEXT} characters (ten SMS)",
                f"El texto es demasiado largo ({len(text)} caracteres; máximo {MAX_TEXT}).",
            )
        try:
            sendable(text, strict=True)
        except UnsendableText as err:
            raise BroadcastError(
                f"'text': {err}", "El texto tiene caracteres invisibles."
            ) from None
        compiled = self._compiled.get(text)
        if compiled is None:
            try:
                compiled = self.env.from_string(text)
            except TemplateSyntaxError as err:
                raise BroadcastError(
                    f"'text' line {err.lineno}: {err.message}",
                    f"El texto tiene un error de plantilla en la línea {err.lineno}: revise las "
                    "llaves {{ }} y {% %}.",
                ) from None
            if len(self._compiled) > 100:
                self._compiled.clear()
            self._compiled[text] = compiled
        return compiled

    def render(self, template: Template, contact: SegmentContact, now: datetime) -> str:
        settings = self.settings()
        context = {
            "contact": {**contact.fields, "phone": contact.phone},
            "now": now.astimezone(settings.timezone),
        }
        return render_template(template, context)

    def parts(self, text: str) -> tuple[str, ...]:
        prepared = engine.prepare(text, self.settings().smart_encoding)
        return tuple(reply.text for reply in prepared.replies)

    def _via(self, via: Any) -> str:
        if via is None:
            return self.default_provider()
        if not isinstance(via, str) or via not in self.providers:
            configured = ", ".join(self.providers)
            raise BroadcastError(
                f"via must be a configured provider ({configured})",
                f"El proveedor debe ser uno de los configurados ({configured}).",
            )
        return via

    def _since(self, segment: Segment) -> datetime | None:
        if segment.active_within_days is None:
            return None
        return self.clock() - timedelta(days=segment.active_within_days)

    # -- people's side ----------------------------------------------------------------------------

    async def preview(self, text: Any, segment: Segment, via: Any = None) -> BroadcastPreview:
        """How many would get it now, and the text as the first few would read it; raises
        BroadcastError for a bad text (one that fails for a sample contact too)."""
        template = self.template(text)
        self._via(via)
        count, sample = await self.store.segment_contacts(segment, self._since(segment), SAMPLES)
        now = self.clock()
        samples = []
        for contact in sample:
            try:
                rendered = self.render(template, contact, now)
            except TemplateError as err:
                raise BroadcastError(
                    f"'text' fails for {contact.phone}: {err}",
                    f"El texto falla para {contact.phone}: {err}",
                ) from None
            texts = self.parts(rendered)
            if not texts:
                raise BroadcastError(
                    f"'text' comes out empty for {contact.phone}",
                    f"El texto queda vacío para {contact.phone}.",
                )
            samples.append((contact.phone, " ".join(texts)))
        if not sample:  # nobody to try it on: render it for an empty contact all the same
            try:
                self.render(template, SegmentContact("", {}), now)
            except TemplateError as err:
                raise BroadcastError(f"'text': {err}", f"El texto falla: {err}") from None
        parts = max(
            (sum(segments(p) for p in self.parts(t)) for _, t in samples),
            default=0,
        )
        encoding: Literal["GSM-7", "UCS-2"] = (
            "GSM-7" if all(is_gsm7(t) for _, t in samples) else "UCS-2"
        )
        return BroadcastPreview(count, samples, parts, parts * count, encoding)

    async def create(
        self,
        text: Any,
        segment: Segment,
        *,
        send_at: datetime | None = None,
        via: Any = None,
        name: Any = None,
        by: str | None = None,
    ) -> Broadcast:
        """Checks the text on the first recipients, writes the broadcast and its recipients
        (running now, or scheduled for `send_at`), on the audit trail."""
        preview = await self.preview(text, segment, via)
        assert isinstance(text, str)
        if preview.recipients == 0:
            raise BroadcastError(
                "the segment has no recipients (opted-out numbers never are)",
                "El segmento no tiene destinatarios (los que se dieron de baja nunca cuentan).",
            )
        now = self.clock()
        if send_at is not None:
            within_horizon(send_at, now, SEND_HORIZON)
            if send_at <= now:
                send_at = None
        if name is None or (isinstance(name, str) and not name.strip()):
            name = _default_name(text)
        if not isinstance(name, str) or len(name.strip()) > MAX_NAME:
            raise BroadcastError(
                f"'name' must be a string of at most {MAX_NAME} characters",
                f"El nombre lleva como máximo {MAX_NAME} caracteres.",
            )
        status: BroadcastStatus = "scheduled" if send_at is not None else "running"
        created = await self.store.create_broadcast(
            name=name.strip(),
            text=text,
            segment=segment,
            via=self._via(via),
            send_at=send_at,
            status=status,
            created_by=by,
            since=self._since(segment),
        )
        await self.accounts.record(
            by,
            "broadcast_created",
            str(created.id),
            name=created.name,
            recipients=created.recipients,
        )
        self.on_change()
        return self._shown(created)

    async def get(self, broadcast_id: int) -> Broadcast:
        found = await self.store.broadcast(broadcast_id)
        if found is None:
            raise UnknownBroadcastError(broadcast_id)
        return self._shown(found)

    async def page(self, before_id: int | None = None, limit: int = 50) -> list[Broadcast]:
        return [self._shown(b) for b in await self.store.broadcasts(before_id, limit)]

    async def recipients(
        self,
        broadcast_id: int,
        *,
        status: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Recipient]:
        await self.get(broadcast_id)  # UnknownBroadcastError
        if status is not None and status not in RECIPIENT_STATUSES:
            raise BroadcastError(
                f"status must be one of {', '.join(RECIPIENT_STATUSES)}", "Estado desconocido."
            )
        return await self.store.broadcast_recipients(broadcast_id, status, after, limit)

    async def change(self, broadcast_id: int, action: str, by: str | None) -> Broadcast:
        """ "pause", "resume" or "cancel", on the audit trail; 409-worthy BroadcastStateError
        when the broadcast's status does not allow it."""
        changed = await self.store.change_broadcast(broadcast_id, action)
        audit = {
            "pause": "broadcast_paused",
            "resume": "broadcast_resumed",
            "cancel": "broadcast_cancelled",
        }[action]
        await self.accounts.record(by, audit, str(broadcast_id), name=changed.name)  # type: ignore[arg-type]
        self.on_change()
        return self._shown(changed)

    def _shown(self, broadcast: Broadcast) -> Broadcast:
        """With `waiting` set while a running broadcast waits for its quiet window."""
        if broadcast.status != "running":
            return broadcast
        settings = self.settings()
        hours = settings.hours
        opens = quiet_wait(hours.quiet if hours else None, self.clock(), settings.timezone)
        if opens is None:
            return broadcast
        local = opens.astimezone(settings.timezone)
        return replace(
            broadcast,
            waiting=f"quiet hours: sends from {local:%Y-%m-%d %H:%M}",
            waiting_until=local,
        )


def _default_name(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= 40 else words[:39].rstrip() + "…"
