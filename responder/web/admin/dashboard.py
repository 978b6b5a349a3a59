"""The dashboard: counts, delivery, top rules, balances."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from responder.web import charts, periods, views
from responder.web.admin.core import _render, _service
from responder.web.sessions import Session

if TYPE_CHECKING:
    pass


# -- dashboard -----------------------------------------------------------------------------------


async def dashboard(request: Request, session: Session) -> Response:
    service = _service(request)
    tz = service.rules.current.settings.timezone
    today = service.clock().astimezone(tz).date()
    period, problem = periods.chosen(dict(request.query_params), today)
    since, until = period.bounds(tz)
    numbers = await service.dashboard_numbers(since, until)
    days = period.days
    daily = views.daily_counts(numbers["hourly"], tz, days)
    statuses = numbers["statuses"]
    delivered, failed, sent, unconfirmed = (
        statuses.get(s, 0) for s in ("delivered", "failed", "sent", "unconfirmed")
    )
    settled = delivered + failed + sent + unconfirmed
    pending = sum(statuses.get(s, 0) for s in ("queued", "sending", "scheduled"))
    top = [(views.RULE_LABELS.get(r, r), n) for r, n in numbers["top_rules"]]
    parts = [
        ("entregados", delivered, "delivered"),
        ("enviados, sin informe de entrega", sent, "sent"),
        ("sin confirmar (respuesta ilegible)", unconfirmed, "unconfirmed"),
        ("fallidos", failed, "failed"),
    ]
    return _render(
        request,
        session,
        "dashboard.html",
        section="dashboard",
        period=period,
        choices=periods.CHOICES,
        error=problem,
        providers=sorted(numbers["providers"].items()),
        daily_chart=charts.daily_bars(daily),
        daily=daily,
        totals=(sum(d[1] for d in daily), sum(d[2] for d in daily)),
        delivered=delivered,
        failed=failed,
        sent=sent,
        unconfirmed=unconfirmed,
        pending=pending,
        rate=round(100 * delivered / settled) if settled else None,
        delivery_chart=charts.stacked_bar(parts, width=460) if settled else None,
        top=top,
        top_chart=charts.horizontal_bars(top, width=460, label_width=170) if top else None,
        attention=numbers["attention"],
        counts=numbers["counts"],
        balances=await service.fresh_balances(),
    )
