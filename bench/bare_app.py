"""The ceiling every webhook figure is compared with: a bare Starlette route that reads the four
fields of a Massiva inbound webhook and answers `OK`, storing nothing.

Run: uvicorn --app-dir bench bare_app:app --workers 1 --loop uvloop --http httptools
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

FIELDS = ("msg", "phone", "linea", "email")


async def inbound(request: Request) -> Response:
    # GET reads the query string; POST reads a form body, like the real webhook accepts.
    fields = request.query_params if request.method == "GET" else await request.form()
    values = [fields.get(name) for name in FIELDS]
    if values[0] is None or values[1] is None:
        return PlainTextResponse("missing field(s)", status_code=400)
    return PlainTextResponse("OK")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ready")


app = Starlette(
    routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/webhooks/massiva/{token}/inbound", inbound, methods=["GET", "POST"]),
    ]
)
