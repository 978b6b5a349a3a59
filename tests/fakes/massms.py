"""Fake MasSMS (Markettext) HTTP API, after `shared/providers/massms-http-api.es.txt`.

The client's base URL is `{server.url}/massms/api`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from starlette.responses import Response

from tests.fakes.common import FakeProvider, Recorded, SentSms

MAX_RECIPIENTS = 100
MAX_SENDER_ID = 11

SENT_TO_PLATFORM = 0
DELIVERED = 1
SCHEDULED = 4


@dataclass
class MasSMSSent(SentSms):
    """An accepted MasSMS message with its sending options."""

    senderid: str | None = None
    smstype: str = "y"
    date_delivery: str | None = None
    time_delivery: str | None = None


def _text(body: str, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="text/plain")


def _valid_schedule(date: str, hour: str) -> bool:
    try:
        datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H:%M")
    except ValueError:
        return False
    return len(date) == 10 and len(hour) == 5


class FakeMasSMS(FakeProvider):
    """In-memory MasSMS account: `sendmsg.php`, `query.php`, `getbalance.php`.

    `balance` goes down by one point per recipient; `sent` lists accepted
    messages and `statuses` maps msgid to the code `query.php` reports.

    Answers that go wrong for one number although its message is sent: a number in
    `unlisted` is left out of the answer, one in `garbled` is answered `movil:` without
    its msgid.
    """

    def __init__(
        self,
        api_id: str = "miempresa",
        user: str = "demo",
        password: str = "secret",
        balance: int = 1000,
        product_active: bool = True,
        company_active: bool = True,
    ) -> None:
        self.api_id = api_id
        self.user = user
        self.password = password
        self.balance = balance
        self.product_active = product_active
        self.company_active = company_active
        self.sent: list[MasSMSSent] = []
        self.statuses: dict[str, int] = {}
        self.unlisted: set[str] = set()
        self.garbled: set[str] = set()
        super().__init__(
            {
                "/massms/api/sendmsg.php": self._sendmsg,
                "/massms/api/query.php": self._query,
                "/massms/api/getbalance.php": self._getbalance,
            }
        )

    def set_status(self, msgid: str, status: int) -> None:
        """Set what `query.php` answers for `msgid` (`STATUS:<status>`)."""
        if msgid not in self.statuses:
            raise KeyError(msgid)
        self.statuses[msgid] = status

    def deliver(self, msgid: str) -> None:
        """Mark one message delivered (status 1), scheduled or not."""
        self.set_status(msgid, DELIVERED)

    def deliver_all(self) -> None:
        """Mark every message delivered (status 1)."""
        for msgid in list(self.statuses):
            self.statuses[msgid] = DELIVERED

    def _known_account(self, params: dict[str, str]) -> bool:
        return params.get("api_id") == self.api_id and params.get("user") == self.user

    def _sendmsg(self, req: Recorded) -> Response:
        params = req.params
        for code, field in enumerate(("api_id", "user", "password", "to", "text"), start=101):
            if not params.get(field):
                return _text(str(code))
        senderid = params.get("senderid") or None
        if senderid is not None and len(senderid) > MAX_SENDER_ID:
            return _text("106")
        if not self._known_account(params) or params["password"] != self.password:
            return _text("107")
        if not self.product_active:
            return _text("108")
        if not self.company_active:
            return _text("109")
        numbers = [n.strip() for n in params["to"].split(",") if n.strip()]
        if not numbers:
            return _text("104")
        if len(numbers) > MAX_RECIPIENTS:
            return _text("111")
        if self.balance < len(numbers):
            return _text("110")

        smstype = params.get("smstype") or "y"
        date = params.get("date_delivery") or None
        hour = params.get("time_delivery") or None
        if smstype not in ("y", "p"):
            return _text(f"invalid smstype {smstype!r}", status_code=400)
        if smstype == "p" and not _valid_schedule(date or "", hour or ""):
            return _text("smstype p needs date_delivery and time_delivery", status_code=400)

        answer = []
        for number in numbers:
            msgid = uuid.uuid4().hex
            self.sent.append(
                MasSMSSent(msgid, number, params["text"], senderid, smstype, date, hour)
            )
            self.statuses[msgid] = SCHEDULED if smstype == "p" else SENT_TO_PLATFORM
            if number in self.garbled:
                answer.append(f"{number}:")
            elif number not in self.unlisted:
                answer.append(f"{number}:{msgid}")
        self.balance -= len(numbers)
        return _text(",".join(answer))

    def _query(self, req: Recorded) -> Response:
        if not self._known_account(req.params):
            return _text("107")
        status = self.statuses.get(req.params.get("msgid", ""))
        return _text("NOTFOUND" if status is None else f"STATUS:{status}")

    def _getbalance(self, req: Recorded) -> Response:
        if not self._known_account(req.params):
            return _text("107")
        return _text(str(self.balance))
