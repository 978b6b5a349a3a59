"""The fake Massiva of bench/latency.py: `FakeMassiva` that notes when each SMS arrived.

    .venv/bin/python bench/latency_fake.py --port 8123 [--delay 0.1]

Serves `FakeMassiva(credits=10**9)` (tests/fakes/massiva.py, unchanged) with uvicorn on
127.0.0.1, one worker, uvloop + httptools. A thin ASGI wrapper stamps `time.time()` when a
request reaches the app, and every SMS the fake accepts is kept as (arrival time, phone,
text, numbers in that request). Two extra routes: `GET /healthz` (readiness) and
`GET /bench/sent?since=N` (the records from the N-th on, as JSON). `--delay` holds every
answer that many seconds after the arrival is stamped (FakeProvider.delay), like a distant
gateway.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402

from tests.fakes.common import Recorded  # noqa: E402
from tests.fakes.massiva import FakeMassiva  # noqa: E402

ARRIVED: ContextVar[float] = ContextVar("arrived", default=0.0)


class RecordingMassiva(FakeMassiva):
    """Answers exactly as FakeMassiva; also keeps (arrived, phone, text, batch) per SMS."""

    def __init__(self) -> None:
        super().__init__(credits=10**9)
        self.received: list[tuple[float, str, str, int]] = []
        self.send_requests = 0

    def _send_sms(self, req: Recorded) -> Response:
        before = len(self.sent)
        response = super()._send_sms(req)
        self.send_requests += 1
        self.requests.clear()  # FakeProvider keeps every request: not needed here
        accepted = self.sent[before:]
        arrived = ARRIVED.get() or time.time()
        self.received.extend((arrived, s.phone, s.text, len(accepted)) for s in accepted)
        return response


fake = RecordingMassiva()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        ARRIVED.set(time.time())
        if scope["path"] == "/healthz":
            await Response("ok", media_type="text/plain")(scope, receive, send)
            return
        if scope["path"] == "/bench/sent":
            query = parse_qs(scope["query_string"].decode("latin-1"))
            since = int(query.get("since", ["0"])[0])
            body = json.dumps(
                {"requests": fake.send_requests, "sent": fake.received[since:]},
                separators=(",", ":"),
            )
            await Response(body, media_type="application/json")(scope, receive, send)
            return
    await fake.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    fake.delay = args.delay
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
