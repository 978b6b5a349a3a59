"""The service: one object holding the app's state, and `create_app()` building the ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from responder import engine
from responder.clock import Clock
from responder.config import Settings
from responder.engine import Contact, Decision, InboundMessage
from responder.moments import SEND_HORIZON, SIMULATE_HORIZON, within_horizon
from responder.phone import normalize_phone
from responder.providers import build_providers
from responder.providers.base import Provider
from responder.rules.reload import RulesHolder
from responder.store.models import (
    InboundJob,
    InboundResult,
    Message,
    StoreUnavailable,
    UnknownContactError,
    to_iso,
)
from responder.store.sqlite import SQLiteStore
from responder.text import sendable
from responder.web import admin, api, webhooks
from responder.web.balances import ask_balances
from responder.web.sessions import Sessions
from responder.workers.outbox import NATIVE_SCHEDULE_AHEAD, OutboxWorker
from responder.workers.poller import StatusPoller

log = logging.getLogger("responder")


class Service:
    """What a running responder is made of: settings, rules, store, providers, workers."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        providers: dict[str, Provider] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rules = RulesHolder(settings.rules, settings.templates, clock)
        self.providers = providers if providers is not None else build_providers(settings)
        self.default_provider = (
            settings.provider if settings.provider in self.providers else next(iter(self.providers))
        )
        self.store = SQLiteStore(settings.database, clock)
        self.worker = OutboxWorker(
            self.store, self.providers, clock=clock, settings=lambda: self.rules.current.settings
        )
        self.poller = StatusPoller(self.store, self.providers, clock=clock)
        self.store.on_outbox = self.worker.wake
        self.store.hand_over = self.worker.take
        self.webhook_token = ""
        self.admin_token = ""
        self._sessions: Sessions | None = None
        # The tokens open() created just now (first start): only those may be shown in full.
        self.generated_tokens: set[str] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None  # set by start(); for tests and tools
        # The last check, provider → credits, low, error, checked_at: what /healthz reports.
        self.balances: dict[str, dict[str, Any]] = {}

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Opens the database and settles the tokens (generated once, then kept there)."""
        await self.store.open()

        def generate(key: str) -> Callable[[], str]:
            def new_token() -> str:
                self.generated_tokens.add(key)
                return secrets.token_urlsafe(24)

            return new_token

        self.webhook_token = self.settings.webhook_token or await self.store.meta_value(
            "webhook_token", generate("webhook_token")
        )
        self.admin_token = self.settings.admin_token or await self.store.meta_value(
            "admin_token", generate("admin_token")
        )
        secret = await self.store.meta_value("session_secret", lambda: secrets.token_urlsafe(32))
        self._sessions = Sessions(self.store, self.clock, secret, self.admin_token)

    @property
    def sessions(self) -> Sessions:
        """Staff sign-ins (after `open`)."""
        if self._sessions is None:
            raise RuntimeError("service is not open")
        return self._sessions

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.open()
        # Sessions past their end, or opened with an admin token that changed, end here.
        ended = await self.sessions.purge()
        if ended:
            log.info("ended %d staff sessions (expired, or the admin token changed)", ended)
        self._tasks = [
            asyncio.create_task(self.worker.run(), name="outbox"),
            asyncio.create_task(self.poller.run(), name="status-poller"),
            asyncio.create_task(self.rules.watch(), name="rules-watch"),
            asyncio.create_task(self._expire_flows_forever(), name="flow-timeouts"),
            asyncio.create_task(self._check_balances_forever(), name="balances"),
        ]
        # What start-up built lives as long as the process: keep the collector off it.
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.store.is_open:
            try:
                await self.worker.stop()
            except StoreUnavailable as err:  # their leases run out; the next start takes them
                log.error("could not hand back the messages in flight: %s", err)
        for provider in self.providers.values():
            await provider.aclose()
        await self.store.close()

    # -- behaviour ----------------------------------------------------------------------------

    def route(self, via: str | None) -> str:
        """The provider a reply goes through: the rule's `via` when configured, else the default."""
        if via in self.providers:
            return via
        if via is not None:
            log.warning("via %s is not configured; using %s", via, self.default_provider)
        return self.default_provider

    def _routed(self, decision: Decision) -> Decision:
        """The decision with every reply on a configured provider; what the engine had to
        change in its replies (cleaned, cut short) is logged, by rule and never by text."""
        for warning in decision.warnings:
            log.warning("rule %s: %s", decision.rule, warning)
        replies = tuple(replace(r, via=self.route(r.via)) for r in decision.replies)
        return replace(decision, replies=replies)

    async def receive(self, message: InboundMessage) -> InboundResult:
        """Stores an inbound message and queues its replies, committed together."""
        rules, now = self.rules.current, self.clock()

        def decide(contact: Contact) -> Decision:
            return self._routed(engine.decide(rules, message, contact, now))

        settings = rules.settings
        history = max(settings.reply_limit.per, settings.loop_guard.per)
        job = InboundJob(message, decide, settings.dedupe_window, history)
        return await self.store.receive_inbound(job)

    async def send(
        self,
        phone: str,
        text: str,
        via: str | None,
        origin: str,
        send_at: datetime | None = None,
    ) -> list[Message]:
        """Queues a message written by a person; an agent's reply hands the chat to people.
        With `send_at` it waits in the outbox until then, or, far enough ahead on a provider
        that schedules by itself (MasSMS), goes to the provider's scheduler at once. A text
        with a control character, or nothing visible, raises UnsendableText: a person typed
        it, so it is refused rather than changed behind their back."""
        settings = self.rules.current.settings
        normalize_phone(phone, settings.country)  # InvalidPhoneNumber before anything is queued
        text = sendable(text, strict=True)
        provider = self.route(via)
        prepared = engine.prepare(text, settings.smart_encoding)
        replies = [replace(r, via=provider) for r in prepared.replies]
        due = None
        if send_at is not None:
            now = self.clock()
            within_horizon(send_at, now, SEND_HORIZON)  # BadMoment before anything is queued
            if send_at <= now:
                send_at = None
            elif self.providers[provider].schedules and send_at - now >= NATIVE_SCHEDULE_AHEAD:
                due = now
        return await self.store.queue_outbound(
            phone, replies, origin, handoff=origin == "agent", send_at=send_at, due=due
        )

    async def simulate(self, phone: str, text: str, at: datetime | None = None) -> dict[str, Any]:
        """What the rules would answer, without storing or sending anything."""
        try:
            conversation = await self.store.conversation(phone)
            contact = Contact(
                phone, conversation.mode, conversation.opted_out, conversation.fields, False
            )
        except UnknownContactError:
            contact = Contact(phone)
        now = within_horizon(at, self.clock(), SIMULATE_HORIZON) if at is not None else self.clock()
        decision = engine.decide(self.rules.current, InboundMessage(phone, text, now), contact, now)
        return simulation_json(decision)

    async def check_balances(self) -> dict[str, dict[str, Any]]:
        """Asks every provider for its credits; warns below `settings.low_credit`."""
        low_credit = self.rules.current.settings.low_credit
        for balance in await ask_balances(self.providers):
            credits = None if balance.unlimited else balance.credits
            low = low_credit is not None and credits is not None and credits < low_credit
            if balance.error:
                log.warning("balance of %s unknown: %s", balance.provider, balance.error)
            elif low:
                log.warning(
                    "%s has %g credits left, below low_credit %g",
                    balance.provider,
                    credits,
                    low_credit,
                )
            self.balances[balance.provider] = {
                "credits": credits,
                "low": low,
                "error": balance.error,
                "checked_at": to_iso(self.clock()),
            }
        return self.balances

    async def _check_balances_forever(self, interval: float = 900.0) -> None:
        while True:
            try:
                await self.check_balances()
            except Exception:
                log.exception("checking balances failed")
            await asyncio.sleep(interval)

    async def expire_flows(self) -> int:
        """Ends flows whose answer is overdue, sending their timeout_reply; returns how many."""
        rules, now = self.rules.current, self.clock()
        ended = 0
        for contact in await self.store.contacts_in_flows():
            decision = engine.expire_flow(rules, contact, now)
            if decision is not None:
                await self.store.apply_decision(contact.phone, self._routed(decision), contact.flow)
                ended += 1
        return ended

    async def _expire_flows_forever(self, interval: float = 30.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire_flows()
            except Exception:  # a bad moment must not stop the sweeps for good
                log.exception("expiring flows failed")

    def webhook_urls(self, base_url: str, shown_token: str | None = None) -> dict[str, str]:
        """The webhook URLs, with `shown_token` (a masked token) in place of the token."""
        token = self.webhook_token if shown_token is None else shown_token
        base = f"{base_url.rstrip('/')}/webhooks/massiva/{token}"
        return {"inbound": f"{base}/inbound", "status": f"{base}/status", "both": base}


def simulation_json(decision: Decision) -> dict[str, Any]:
    return {
        "rule": decision.rule,
        "replies": [{"text": r.text, "segments": r.segments} for r in decision.replies],
        "explanation": decision.explanation,
        "mode": decision.mode,
        "error": decision.error,
        "warnings": list(decision.warnings),
    }


async def healthz(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        ok = await service.store.ping()
    except Exception:
        ok = False
    if not ok:
        return JSONResponse({"status": "database unavailable"}, status_code=503)
    # Reading is not enough: a full disk must not look healthy while every write fails.
    problem = await service.store.write_problem()
    if problem is not None:
        return JSONResponse({"status": "database cannot write", "error": problem}, status_code=503)
    # Low credit is reported, not failed: the service itself is healthy.
    low = sorted(name for name, entry in service.balances.items() if entry.get("low"))
    return JSONResponse({"status": "ok", "low_credit": low})


def create_app(
    settings: Settings,
    *,
    clock: Clock,
    providers: dict[str, Provider] | None = None,
    on_ready: Callable[[Service], None] | None = None,
) -> Starlette:
    """Builds the ASGI app; its lifespan opens the database and runs the workers."""
    service = Service(settings, clock=clock, providers=providers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        if on_ready is not None:
            on_ready(service)
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            *webhooks.routes,
            *api.routes,
            *admin.routes,
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
