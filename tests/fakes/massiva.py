"""Fake Massiva (MassivaMovil) web service, after `shared/providers/massiva-api.es.txt`.

The client's base URL is `{server.url}/webservices`.
"""

from __future__ import annotations

import time
from xml.sax.saxutils import escape

import httpx
from starlette.responses import Response

from tests.fakes.common import FakeProvider, Recorded, SentSms, call_webhook

MAX_URL = 2048
MAX_TEXT = 160

SEND_MESSAGES = {
    0: "No se logro ningún envío. Verifique la longitud de el(los) mensaje(s) "
    "o que los teléfonos de envío estén correctos",
    -1: "Autenticación fallida. Usuario o Clave Incorrecta",
    -2: "Faltan campos con data (usuario, clave, teléfono, texto). No se pueden enviar SMS",
    -3: "Campos teléfonos y texto son obligatorios",
    -4: "La empresa no tiene Plan de SMS Activo. "
    "Por favor comuníquese con el Administrador del Sistema",
    -5: "La Empresa NO dispone de SMS para enviar. "
    "Por favor comuníquese con el Administrador del Sistema",
    -6: "El usuario NO dispone de SMS para enviar. "
    "Por favor comuníquese con el Administrador del Sistema",
}
SEND_OK = "Envio Exitoso"
CREDITS_OK = "consulta exitosa"
CREDITS_MISSING = "No se recibieron los campos usuario y clave"
DELIVERED_LINE = "+584142122268"
FAILED_DETAIL = "ERROR EN ENVIO"

_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
# GSM-7's extension table: on the air each of these is ESC (0x1B) and a second septet.
GSM7_EXTENSION = "\x0c^{}\\[~]|€"


def _attr(value: str) -> str:
    return '"' + escape(value, _ATTR_ENTITIES) + '"'


def _xml(body: str) -> Response:
    return Response(f"<respuesta>{body}</respuesta>", media_type="text/xml")


def _valid_phone(phone: str) -> bool:
    return phone.isascii() and phone.isdigit() and 10 <= len(phone) <= 12


class FakeMassiva(FakeProvider):
    """In-memory Massiva account: `SendSms`, `obtenerCreditoDisponible`, and its webhooks.

    `credits` goes down by one per accepted message; `sent` lists them.
    `company_credits_exhausted = True` makes sends answer -5.

    Each `texto` is echoed in the answer as it came, XML-escaped but with control characters
    left in, so one of them (a form feed...) makes the whole answer unreadable XML.
    `echo_gsm7_escapes = True` echoes each character of GSM-7's extension table (`€`, `[`,
    `~`...) with the ESC control character before it, as the septets a gateway sends: then
    even a clean text breaks the answer.
    """

    def __init__(
        self,
        user: str = "demo@example.com",
        password: str = "secret",
        credits: int = 1000,
        plan_active: bool = True,
    ) -> None:
        self.user = user
        self.password = password
        self.credits = credits
        self.plan_active = plan_active
        self.company_credits_exhausted = False
        self.echo_gsm7_escapes = False
        self.sent: list[SentSms] = []
        self._next_id = 1000
        super().__init__(
            {
                "/webservices/SendSms": self._send_sms,
                "/webservices/obtenerCreditoDisponible": self._credits,
            }
        )

    @property
    def next_id(self) -> str:
        """The id the next message accepted will get (what its delivery report will name)."""
        return str(self._next_id)

    def _authenticated(self, params: dict[str, str]) -> bool:
        return params.get("usuario") == self.user and params.get("clave") == self.password

    def _send_sms(self, req: Recorded) -> Response:
        if req.method == "GET" and len(req.path) + 1 + len(req.raw) > MAX_URL:
            return Response("Request-URI Too Long", status_code=414, media_type="text/plain")
        params = req.params
        if not params.get("usuario") or not params.get("clave"):
            return self._send_error(-2)
        if not params.get("telefonos") or not params.get("texto"):
            return self._send_error(-3)
        if not self._authenticated(params):
            return self._send_error(-1)
        if not self.plan_active:
            return self._send_error(-4)
        if self.company_credits_exhausted:
            return self._send_error(-5)

        phones = params["telefonos"].split(";")
        texts = params["texto"].split("|")
        counts_match = len(texts) in (1, len(phones))
        if len(texts) == 1:
            texts = texts * len(phones)
        pairs = [(phone, texts[i] if i < len(texts) else "") for i, phone in enumerate(phones)]
        valid = [
            counts_match and _valid_phone(phone) and len(text) <= MAX_TEXT for phone, text in pairs
        ]
        accepted = sum(valid)
        if accepted and self.credits < accepted:
            return self._send_error(-6)

        stamp = time.strftime("%Y%m%d%H%M%S")
        cells = []
        for (phone, text), ok in zip(pairs, valid, strict=True):
            sms_id = str(self._next_id)
            self._next_id += 1
            if ok:
                self.sent.append(SentSms(sms_id, phone, text))
                sid, status = f"{phone}0004{stamp}", "0"
            else:
                sid, status = "N/A", "2"
            echoed = text
            if self.echo_gsm7_escapes:
                echoed = "".join("\x1b" + c if c in GSM7_EXTENSION else c for c in text)
            cells.append(
                f"<celular id={_attr(sms_id)} sid={_attr(sid)} status={_attr(status)} "
                f"num_celular={_attr(phone)} texto={_attr(echoed)}/>"
            )
        self.credits -= accepted
        message = SEND_OK if accepted else SEND_MESSAGES[0]
        return _xml(
            f"<mensaje>{escape(message)}</mensaje><status>{accepted}</status>"
            f"<telefonos>{''.join(cells)}</telefonos>"
        )

    @staticmethod
    def _send_error(status: int) -> Response:
        return _xml(f"<mensaje>{escape(SEND_MESSAGES[status])}</mensaje><status>{status}</status>")

    def _credits(self, req: Recorded) -> Response:
        if not req.params.get("usuario") or not req.params.get("clave"):
            credits, message = -1, CREDITS_MISSING
        elif not self._authenticated(req.params):
            credits, message = -1, SEND_MESSAGES[-1]
        else:
            credits, message = self.credits, CREDITS_OK
        return _xml(f"<creditos>{credits}</creditos><mensaje>{escape(message)}</mensaje>")

    async def report_status(
        self,
        webhook_url: str,
        id: str,
        estatus: int,
        detalle: str | None = None,
        method: str = "GET",
    ) -> httpx.Response:
        """Call the user's status URL as Massiva does after dispatch (1 delivered, 2 failed)."""
        if detalle is None:
            detalle = DELIVERED_LINE if estatus == 1 else FAILED_DETAIL
        params = {
            "id": id,
            "estatus": str(estatus),
            "fecha_actualizacion": time.strftime("%Y-%m-%d %H:%M:%S"),
            "usuario": self.user,
            "detalle": detalle,
        }
        return await call_webhook(webhook_url, params, method)

    async def send_inbound(
        self,
        webhook_url: str,
        msg: str,
        phone: str,
        linea: str = "584141234567",
        email: str | None = None,
        method: str = "GET",
        encoding: str = "utf-8",
    ) -> httpx.Response:
        """Forward an inbound SMS to the user's URL as Massiva does.

        `encoding="latin-1"` percent-encodes the text as Latin-1 (`Ma%F1ana`).
        """
        params = {"msg": msg, "phone": phone, "linea": linea}
        if email is not None:
            params["email"] = email
        return await call_webhook(webhook_url, params, method, encoding)
