"""Why a message did not go out, in plain Spanish for the inbox: every code the providers'
manuals give, and every outcome the outbox records, has its sentence here. The raw error
stays as it is (in the API, and on hover in the thread); tests/test_failures.py checks that
each code the provider modules know has a sentence, produced through their own parsers."""

from __future__ import annotations

import re

from responder.providers import massms
from responder.providers.base import UNCONFIRMED
from responder.store.models import CANCELLED_BY

# SendSms's overall `status` (responder/providers/massiva.py STATUS_CODES).
MASSIVA_STATUS: dict[int, str] = {
    0: "Massiva no envió nada: revise el número y el largo del texto",
    -1: "Massiva rechazó el usuario o la clave (revise MASSIVA_USER y MASSIVA_PASSWORD)",
    -2: "A la petición a Massiva le faltan datos (usuario, clave, teléfono o texto)",
    -3: "Massiva pide el teléfono y el texto",
    -4: "La cuenta de Massiva no tiene un plan de SMS activo",
    -5: "Sin saldo en Massiva (la empresa no tiene SMS)",
    -6: "Sin saldo en Massiva (el usuario no tiene SMS)",
}
# sendmsg.php's error codes (responder/providers/massms.py ERROR_CODES).
MASSMS_ERRORS: dict[str, str] = {
    "101": "Falta el api_id de MasSMS (MASSMS_API_ID)",
    "102": "Falta el usuario de MasSMS (MASSMS_USER)",
    "103": "Falta la clave de MasSMS (MASSMS_PASSWORD)",
    "104": "A la petición a MasSMS le falta el número",
    "105": "A la petición a MasSMS le falta el texto",
    "106": "El remitente tiene más de 11 caracteres (MASSMS_SENDER_ID)",
    "107": "MasSMS rechazó los datos de acceso (api_id, usuario o clave)",
    "108": "El producto no está activo en la cuenta de MasSMS",
    "109": "La empresa está inactiva en MasSMS: contacte a Markettext",
    "110": "Sin saldo en MasSMS",
    "111": "Más de 100 números en un solo envío a MasSMS",
}
# query.php's failed statuses (massms.py STATUS_CODES whose status is 'failed'): the poller
# stores the module's meaning as the error.
MASSMS_STATUSES: dict[str, str] = {
    "2": "No se pudo llegar al teléfono (apagado o fuera de cobertura)",
    "3": "Número inválido",
    "5": "El número está bloqueado para recibir envíos",
    "6": "Sin saldo en MasSMS",
    "7": "Destino sin cobertura de MasSMS",
}
NO_ANSWER = "El proveedor no respondió"
UNKNOWN = "Falló (vea el detalle)"
# Our own errors (providers, transport, outbox, store), by how they read; the first match wins.
OUTCOMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), spanish)
    for pattern, spanish in (
        (
            re.escape(UNCONFIRMED),
            "Respuesta ilegible del proveedor: puede haber salido, no se reenvía",
        ),
        (r"^massiva: numbers have at most", "Número inválido (más de 12 dígitos)"),
        (r"^massiva: rejected \(", "Texto o número rechazado por Massiva"),
        (r"^\w+: no answer in time", f"{NO_ANSWER} a tiempo"),
        # The transport names the httpx error alone: the connection failed.
        (r"^\w+: [A-Z][A-Za-z]+$", f"{NO_ANSWER}: no se pudo conectar"),
        (r"^\w+: HTTP 429", "El proveedor pidió enviar más despacio"),
        (r"^\w+: HTTP 5\d\d", "El proveedor tuvo una falla (error del servidor)"),
        (r"^\w+: HTTP 4\d\d", "El proveedor rechazó la petición"),
        (r"^\w+: \S+ answer(ed)? ", "Respuesta ilegible del proveedor"),
        (r"^expired: the auto-reply", "Caducó: la respuesta automática esperó demasiado"),
        (r"^expired: ", "Caducó: el mensaje esperó demasiado para enviarse"),
        (r"^provider \w+ is not configured", "El proveedor elegido no está configurado"),
        (r"^interrupted while sending", "Se interrumpió al enviarse y no se reintentó"),
        (r"^not sent: the number opted out", "No enviado: el número se dio de baja"),
        (r"^internal error", "Error interno de responder (vea el registro)"),
        (r"^delivery failed$", "El proveedor informa que no se entregó"),
    )
)
_MASSIVA_CODE = re.compile(r"^massiva: .*\(status (-?\d+): ")
_MASSMS_CODE = re.compile(r"^massms: .*\(error (\d+)\)$")
_FAILING_OVER = re.compile(r" \(failing over to \w+\)$")
# The delivery report's words for a failure (the manual: "ERROR EN ENVIO").
MASSIVA_REPORT = "Massiva no pudo entregarlo al teléfono"


def _massms_status(error: str) -> str | None:
    for code, (status, meaning) in massms.STATUS_CODES.items():
        if status == "failed" and error == meaning:
            return MASSMS_STATUSES.get(code)
    return None


def reason(error: str | None, provider: str | None = None) -> str | None:
    """The error of a message as the shop would say it; None when there is none."""
    if not error:
        return None
    if error.startswith(CANCELLED_BY):
        return f"Cancelado por {error.removeprefix(CANCELLED_BY)}"
    error = _FAILING_OVER.sub("", error)
    if found := _MASSIVA_CODE.match(error):
        return MASSIVA_STATUS.get(int(found.group(1)), f"Massiva respondió el código {found[1]}")
    if found := _MASSMS_CODE.match(error):
        return MASSMS_ERRORS.get(found.group(1), f"MasSMS respondió el error {found[1]}")
    for pattern, spanish in OUTCOMES:
        if pattern.search(error):
            return spanish
    if provider == "massms" and (status := _massms_status(error)) is not None:
        return status
    if provider == "massiva" and not error.startswith("massiva:"):
        return MASSIVA_REPORT  # a delivery report's `detalle`
    return UNKNOWN


# What "enviado" and "entregado" mean, for the statuses' tooltips in the thread.
STATUS_HELP = {
    "queued": "En cola: sale en cuanto el proveedor lo acepte",
    "sending": "Enviando: el proveedor lo está recibiendo ahora",
    "sent": "Enviado: el proveedor lo aceptó; todavía no confirma que llegó al teléfono",
    "delivered": "Entregado: el proveedor confirmó que llegó al teléfono",
    "failed": "Falló: no salió; puede reintentarlo",
    "scheduled": "Programado: sale a la hora indicada",
    "unconfirmed": "Sin confirmar: la respuesta del proveedor no se pudo leer; puede haber "
    "salido, por eso no se reenvía solo",
}
