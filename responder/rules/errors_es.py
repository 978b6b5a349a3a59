"""Spanish texts of the errors found in rules.yaml, for the admin: one per (kind, code), built
from the error's params. Written for a shop owner who has never heard of YAML."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from responder.rules.model import MATCH_MODES
from responder.rules.reader import PROVIDERS
from responder.rules.settings import DELIVERY_MODES

Params = Mapping[str, Any]

# `where` of an unknown key: the YAML key it is under, or one of these.
_WHERE = {
    "the file": "el archivo",
    "rule": "la regla",
    "step": "el paso",
    "flow": "la conversación",
}
_DAYS_HINT = "use lun a dom (o mon a sun)"


def _or(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + " o " + words[-1]


def _setting(p: Params) -> str:
    return f"{p['setting']}: " if p.get("setting") else ""


def _empty_reply(p: Params) -> str:
    example = "template: precios.txt" if p["key"] == "template" else 'reply: "Hola"'
    return f"{p['key']} está vacío: escriba el texto después de {p['key']}:, por ejemplo {example}."


def _template_syntax(p: Params) -> str:
    where = f" {p['file']}" if p.get("file") else ""
    line = f" en la línea {p['template_line']}" if p.get("file") else ""
    closing = {"{{": "}}", "{%": "%}", "{#": "#}"}
    if p.get("unclosed") in closing:
        hint = f"falta cerrar un {p['unclosed']} con {closing[p['unclosed']]}"
    else:
        hint = (
            "revise que cada {% if %} o {% for %} termine con {% endif %} o {% endfor %} "
            "y que no falten comillas ni paréntesis"
        )
    return f"La plantilla{where} tiene un error{line}: {hint}."


def _bad_regex(p: Params) -> str:
    if p.get("char"):
        where = f" (revise el carácter {p['position']}, «{p['char']}»)"
    else:
        where = " (revise el final del patrón)" if p.get("position") else ""
    return (
        f"El patrón no es una expresión regular válida{where}: cierre cada ( con ) y cada [ "
        "con ], y ponga \\ antes de un signo que busque tal cual, como \\+ o \\*."
    )


SYNTAX: dict[str, Callable[[Params], str]] = {
    "not_utf8": lambda p: (
        "El archivo no está guardado como texto UTF-8: guárdelo de nuevo eligiendo la "
        "codificación UTF-8."
    ),
    "not_yaml": lambda p: (
        "No se puede leer el archivo: cada línea debe ser «clave: valor» o un elemento de "
        "lista que empieza con «- »."
    ),
    "too_deep": lambda p: (
        "Hay demasiados corchetes o niveles de sangría uno dentro de otro aquí: simplifique "
        "esta parte."
    ),
    "unreadable": lambda p: (
        "No se puede leer esta línea: revise los dos puntos, las comillas y los espacios al "
        "principio."
    ),
    "check_indentation": lambda p: (
        "No se puede leer esta línea: revise los espacios al principio (la sangría)."
    ),
    "quote_never_ends": lambda p: (
        f"Las comillas que abren aquí nunca se cierran: ponga otra {p['quote']} al final del texto."
    ),
    "backslash": lambda p: (
        "Entre comillas dobles, la barra \\ empieza un código como \\n: escriba \\\\ para "
        "poner una barra, o use comillas simples."
    ),
    "quoted_unreadable": lambda p: (
        f"No se puede leer el texto entre comillas que empieza en la línea {p['start_line']}: "
        "revise que sus comillas se cierren."
    ),
    "colon": lambda p: (
        'Un texto con ": " debe ir entre comillas, por ejemplo reply: "Horario: 8 a 5".'
    ),
    "tab": lambda p: (
        "Hay un tabulador en esta línea: use espacios al principio de la línea, no la tecla Tab."
    ),
    "quote_it": lambda p: (
        f"Un texto que empieza con {p['char']} debe ir entre comillas, por ejemplo "
        f'reply: "{p["char"]}Oferta".'
    ),
    "key_without_colon": lambda p: (
        "A esta línea le falta «:» después del nombre (como reply:), o tiene demasiados "
        "espacios al principio."
    ),
    "never_closed": lambda p: (
        f"El «{p['opened']}» que abre aquí nunca se cierra: añada «{p['close']}» al final."
    ),
    "expected_comma": lambda p: (
        f"Falta «,» o «{p['close']}» aquí, dentro del «{p['opened']}» que abre en la línea "
        f"{p['start_line']}: ponga entre comillas cada elemento que tenga «: » o «,»."
    ),
    "closes_nothing": lambda p: (
        f"Este «{p['char']}» no cierra nada: bórrelo, o ponga el texto entre comillas."
    ),
    "list_item": lambda p: (
        "Aquí hay un elemento de lista («- ») donde va «clave: valor»: revise los espacios "
        "al principio de la línea."
    ),
    "after_quote": lambda p: (
        "Hay texto después de la comilla que cierra: ponga todo el texto dentro de las "
        "comillas (dentro de comillas simples, escriba '' para un apóstrofo)."
    ),
    "misaligned": lambda p: (
        f"Esta línea no está alineada con el bloque que empieza en la línea {p['start_line']}: "
        "revise los espacios al principio."
    ),
    "anchor_repeated": lambda p: (
        f"Un texto que empieza con & debe ir entre comillas (este repite el de la línea "
        f"{p['first_line']})."
    ),
    "second_document": lambda p: (
        "Aquí empieza un segundo documento (tras una línea ---): el archivo debe tener uno solo."
    ),
    "merge_key": lambda p: "Las claves << no se admiten: escriba cada clave completa.",
    "unknown_value": lambda p: (
        "Este valor no se puede leer: use textos, números, true o false, listas y claves."
    ),
    "bad_character": lambda p: "El archivo tiene un carácter que no está permitido: bórrelo.",
    "character_not_allowed": lambda p: (
        f"El carácter {p['char']} no está permitido: bórrelo (suele ser invisible: borre la "
        "línea y escríbala de nuevo)."
    ),
    "duplicate_key": lambda p: (
        f"La clave «{p['key']}» está repetida (la primera está en la línea {p['first_line']}): "
        "deje una sola."
    ),
    "tag_misfit": lambda p: f"La etiqueta {p['tag']} no corresponde a este valor: quítela.",
}

SCHEMA: dict[str, Callable[[Params], str]] = {
    # The file as a whole.
    "empty_file": lambda p: "El archivo está vacío: necesita settings: y rules:.",
    "not_mapping": lambda p: (
        "El archivo debe tener settings: y rules: al principio de la línea, sin «- » delante."
    ),
    "rules_not_list": lambda p: (
        "rules: debe ser una lista de reglas, cada una empezando con «- name:»."
    ),
    "unknown_key": lambda p: (
        f"Clave desconocida «{p['key']}» en {_WHERE.get(p['where'], p['where'])}"
        + (f"; ¿quiso decir «{p['suggestion']}»?" if p.get("suggestion") else ".")
    ),
    "too_large": lambda p: f"Las reglas pasan de {p['kib']} KiB: acórtelas.",
    "too_many_templates": lambda p: f"Hay más de {p['most']} plantillas.",
    "bad_template_name": lambda p: (
        f"El nombre de plantilla «{p['name']}» no es válido: use un nombre de archivo simple, "
        "como precios.txt."
    ),
    # Rules.
    "rule_not_mapping": lambda p: (
        "Cada regla debe tener al menos name: y reply:, cada uno en su línea debajo del «- »."
    ),
    "no_name": lambda p: "La regla no tiene nombre (name:).",
    "duplicate_name": lambda p: (
        f"Nombre de regla repetido (la primera está en la línea {p['first_line']})."
    ),
    "empty_keyword": lambda p: "keywords no puede tener palabras vacías.",
    "bad_match": lambda p: f"match debe ser {_or(MATCH_MODES)}.",
    "bad_fuzzy": lambda p: "fuzzy debe ser un número de errores de tipeo, del 0 al 3.",
    "fuzzy_contains": lambda p: "fuzzy no se puede usar con match: contains.",
    "keywords_and_pattern": lambda p: "Use keywords o pattern, no los dos en la misma regla.",
    "answers_nothing": lambda p: (
        "La regla necesita keywords, pattern, when o fallback: true para saber a qué mensajes "
        "responder."
    ),
    "reply_and_template": lambda p: "Use reply o template, no los dos en la misma regla.",
    "empty_reply": _empty_reply,
    "no_reply": lambda p: "La regla necesita reply o template: el texto con el que responde.",
    "unknown_via": lambda p: f"via «{p['value']}» no existe: use {_or(PROVIDERS)}.",
    "bad_label": lambda p: (
        f"{p['key']}: «{p['value']}» no es una etiqueta válida (letras, números, _ o -, hasta 40)."
    ),
    "not_boolean": lambda p: f"{p['key']} debe ser true o false (sin comillas).",
    # Conditions (`when:`) and times.
    "bad_when": lambda p: (
        "when: debe ser open, closed (o abierto, cerrado) o condiciones como "
        "{days: lun-vie, hours: 08:00-17:00}."
    ),
    "no_hours": lambda p: "when: open / closed necesita el horario en settings.hours.",
    "bad_field": lambda p: (
        "field necesita {name: CAMPO, equals: VALOR}, por ejemplo {name: ciudad, equals: Caracas}."
    ),
    "needs_conditions": lambda p: (
        f"{p['key']} necesita una lista de condiciones, por ejemplo "
        f"{p['key']}: [{{days: sab}}, {{days: dom}}]."
    ),
    "unknown_day": lambda p: f"Día desconocido «{p['value']}»: {_DAYS_HINT}, por ejemplo sab,dom.",
    "unknown_day_range": lambda p: (
        f"Días desconocidos «{p['value']}»: {_DAYS_HINT}, por ejemplo lun-vie."
    ),
    "bad_time_range": lambda p: f'Horario «{p["value"]}» no válido: escríbalo como "08:00-17:00".',
    "time_out_of_range": lambda p: (
        f"Hora imposible en «{p['value']}»: las horas van de 00 a 24 y los minutos de 00 a 59."
    ),
    "bad_duration": lambda p: (
        f"{_setting(p)}«{p['value']}» no es una duración: escriba por ejemplo 10s, 5m, 1h o 2d "
        "(segundos, minutos, horas o días)."
    ),
    # settings.hours
    "bad_hours": lambda p: (
        f"Horario no válido en «{p['key']}»: use días como mon-fri o lun-vie con "
        '"08:00-17:00" (o varias franjas "08:00-12:00, 14:00-18:00"), '
        'closed: ["2026-12-25"] y quiet: "21:00-08:00".'
    ),
    "empty_shift": lambda p: (
        f"La franja «{p['value']}» empieza y termina a la misma hora: un día entero es 00:00-24:00."
    ),
    "starts_at_24": lambda p: f"La franja «{p['value']}» empieza a las 24:00: escriba 00:00.",
    "shifts_overlap": lambda p: f"Las franjas «{p['value']}» se cruzan: sepárelas.",
    "day_twice": lambda p: (
        f"«{p['key']}» repite un día que ya tiene horario en la línea {p['first_line']}."
    ),
    "closed_not_list": lambda p: (
        'closed: debe ser una lista de fechas, por ejemplo closed: ["2026-12-25"].'
    ),
    "bad_date": lambda p: (
        f"«{p['value']}» no es una fecha: escríbala como 2026-12-25 (año-mes-día)."
    ),
    # Other settings.
    "settings_not_mapping": lambda p: (
        "settings: debe tener un ajuste por línea, como timezone: America/Caracas."
    ),
    "unknown_timezone": lambda p: (
        f"Zona horaria desconocida «{p['value']}»: use un nombre como America/Caracas."
    ),
    "unknown_country": lambda p: (
        f"País desconocido «{p['value']}»: use su código de dos letras, como VE, CO o MX."
    ),
    "bad_limit": lambda p: (
        f"{p['key']} debe ser {{count: N, per: DURACIÓN}}, por ejemplo "
        f"{p['key']}: {{count: 5, per: 1h}}."
    ),
    "bad_limit_values": lambda p: (
        f"{p['key']}: count debe ser un número mayor que 0 y per una duración como 1h."
    ),
    "bad_max_reply_sms": lambda p: f"max_reply_sms debe ser un número del 1 al {p['most']}.",
    "bad_keyword_reply": lambda p: (
        f"{p['key']} debe tener keywords y reply, por ejemplo {p['key']}: "
        '{keywords: [baja], reply: "Listo"}, o ser false para desactivarlo.'
    ),
    "bad_retry": lambda p: (
        "retry debe ser {attempts: N, max_age: DURACIÓN}, por ejemplo {attempts: 8, max_age: 6h}."
    ),
    "bad_attempts": lambda p: "retry: attempts debe ser un número, 1 o más.",
    "bad_delivery": lambda p: f"delivery debe ser {_or(DELIVERY_MODES)}.",
    "bad_send_rate": lambda p: (
        "send_rate debe dar los mensajes por segundo de cada proveedor, por ejemplo {massiva: 5}."
    ),
    "unknown_provider": lambda p: (
        f"send_rate: proveedor desconocido «{p['provider']}»: use {_or(PROVIDERS)}."
    ),
    "bad_rate": lambda p: (
        f"send_rate: {p['provider']} necesita un número mayor que 0 (mensajes por segundo)."
    ),
    "bad_low_credit": lambda p: "low_credit debe ser un número de créditos, 0 o más.",
    "bad_retention": lambda p: "retention debe ser {messages: DURACIÓN}, por ejemplo 730d.",
    "short_retention": lambda p: "retention: {messages: ...} debe ser de 1d o más.",
    # Flows.
    "flows_not_mapping": lambda p: (
        "flows: debe tener cada conversación bajo su nombre, cada una con trigger: y steps:."
    ),
    "bad_flow": lambda p: "La conversación necesita trigger: y steps:.",
    "no_trigger": lambda p: "trigger: necesita keywords, por ejemplo {keywords: [encuesta]}.",
    "no_steps": lambda p: "steps: debe ser una lista con al menos un paso.",
    "step_not_mapping": lambda p: 'Cada paso debe tener ask: o say:, por ejemplo - say: "Hola".',
    "ask_or_say": lambda p: (
        "Cada paso lleva ask: (pregunta y espera la respuesta) o say: (solo envía), uno de los dos."
    ),
    "bad_save": lambda p: (
        "save: va en un paso ask: y es el nombre de un campo (letras, números y _)."
    ),
    "bad_goto": lambda p: "goto: es el id de un paso, o {respuesta: id del paso, ...}.",
    "unknown_step": lambda p: f"goto: ningún paso tiene id «{p['target']}».",
    "bad_max_retries": lambda p: "max_retries debe ser un número, 0 o más.",
}

ERRORS: dict[tuple[str, str], Callable[[Params], str]] = {
    **{("syntax", code): text for code, text in SYNTAX.items()},
    **{("schema", code): text for code, text in SCHEMA.items()},
    ("regex", "bad_regex"): _bad_regex,
    ("regex", "regex_engine"): lambda p: (
        "El patrón no se puede usar: simplifíquelo o escríbalo de otra forma."
    ),
    ("template", "template_not_found"): lambda p: (
        f"La plantilla «{p['name']}» no existe en la carpeta de plantillas."
    ),
    ("template", "syntax"): _template_syntax,
}
