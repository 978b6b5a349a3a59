"""Spanish texts of the problems and warnings found in rules.yaml, for the admin. Built from
each Problem's kind, code and params, never from its English message; the errors' texts are
responder.rules.errors_es'."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from responder.rules import conditions as cond
from responder.rules.backtracking import OVERLAP
from responder.rules.errors_es import ERRORS
from responder.rules.hours import Closed, Open
from responder.rules.model import Problem

Params = Mapping[str, Any]

# For a finding without a text of its own (none that the rules code raises: see
# tests/test_messages_es.py): the kind, with the English detail after it.
KIND_NAMES = {
    "syntax": "Error de sintaxis",
    "schema": "Valor no válido",
    "regex": "Expresión regular no válida",
    "template": "Error en la plantilla",
}


def _words(items: list[str]) -> str:
    quoted = [f"«{k}»" for k in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " y " + quoted[-1]


def _while(p: Params) -> str:
    return f" mientras {p['condition_es']}" if p.get("condition_es") else ""


def _rule_at(p: Params) -> str:
    return f"la regla «{p['earlier']}» (línea {p['earlier_line']})"


_UNKNOWN_REASONS: dict[str, Callable[[Params], str]] = {
    "name": lambda p: "una respuesta puede usar message, contact, match, rule, now y hours",
    "message": lambda p: "message tiene text, phone y received_at",
    "hours": lambda p: "hours tiene today y week",
    "match": lambda p: "los grupos con nombre del patrón son " + ", ".join(p["groups"]),
    "no_groups": lambda p: "match está vacío: la regla no tiene un patrón con grupos con nombre",
    "no_hours": lambda p: "settings no tiene hours, así que no muestra nada",
}


def _in_file(p: Params) -> str:
    return f" en {p['file']}" if p.get("file") else ""


# (kind, code) → the Spanish text from the params.
MESSAGES: dict[tuple[str, str], Callable[[Params], str]] = {
    ("shadowed", "keywords"): lambda p: (
        f"Nunca responde: {_rule_at(p)} ya responde a estas palabras clave."
    ),
    ("shadowed", "flow_keywords"): lambda p: (
        f"Nunca responde: la conversación «{p['earlier']}» (línea {p['earlier_line']}) "
        "empieza con estas palabras clave."
    ),
    ("shadowed", "fallback"): lambda p: (
        f"Nunca responde: la respuesta por defecto «{p['earlier']}» (línea "
        f"{p['earlier_line']}) ya responde a todo lo que no responde otra regla."
    ),
    ("shadowed", "catch_all_always"): lambda p: (
        f"Nunca responde: {_rule_at(p)} no tiene palabras clave ni patrón y responde a todos "
        f"los mensajes{_while(p)}, que es cuando esta regla respondería."
    ),
    ("shadowed", "catch_all"): lambda p: (
        f"No responde{_while(p)}: {_rule_at(p)} no tiene palabras clave ni patrón y responde "
        "a todos los mensajes en ese momento. Póngala antes de esa regla para que responda "
        "también entonces."
    ),
    ("duplicate_keyword", ""): lambda p: (
        f"{'La palabra clave' if len(p['keywords']) == 1 else 'Las palabras clave'} "
        f"{_words(p['keywords'])} también "
        f"{'está' if len(p['keywords']) == 1 else 'están'} en {_rule_at(p)}, que va antes "
        f"y responde primero{_while(p)}."
    ),
    ("cost", ""): lambda p: f"La respuesta cuesta {p['parts']} SMS ({p['chars']} caracteres).",
    ("cost", "cut"): lambda p: (
        f"La respuesta cuesta {p['parts']} SMS ({p['chars']} caracteres): solo se envían "
        f"{p['cap']} (max_reply_sms) y el resto se corta."
    ),
    ("ucs2", ""): lambda p: (
        f"La respuesta se envía en UCS-2 (70 caracteres por SMS) por el carácter «{p['char']}»: "
        f"cuesta {p['parts']} SMS ({p['chars']} caracteres)."
    ),
    ("unknown_template", ""): lambda p: (
        f"La plantilla «{p['name']}»{_in_file(p)} no existe en la carpeta de plantillas: la "
        "respuesta falla al llegar ahí."
    ),
    ("backtracking", ""): lambda p: (
        "El patrón puede tardar muchísimo con un mensaje largo casi coincidente: "
        + (
            "alternativas dentro de una repetición coinciden con el mismo texto, como (a|aa)+."
            if p["why"] == OVERLAP
            else "un grupo repetido contiene algo que coincide con el mismo texto de varias "
            "formas, como (\\w+\\s?)+ o (a+)+; separe las repeticiones."
        )
    ),
    ("regex", "never_matches"): lambda p: (
        "Los patrones ven el mensaje en minúsculas, sin acentos ni ¿¡?!.,;: así que "
        f"«{p['char']}» nunca coincide."
    ),
}


def _unknown_variable(why: Callable[[Params], str]) -> Callable[[Params], str]:
    return lambda p: f"Variable desconocida «{p['variable']}»{_in_file(p)}: {why(p)}."


MESSAGES.update(
    {
        ("unknown_variable", reason): _unknown_variable(why)
        for reason, why in _UNKNOWN_REASONS.items()
    }
)
MESSAGES.update(ERRORS)


def spanish(problem: Problem) -> str:
    """The finding in Spanish; an error without a text of its own is named by its kind,
    followed by its English detail."""
    text = MESSAGES.get((problem.kind, problem.code))
    if text is not None:
        return text(problem.params)
    return f"{KIND_NAMES.get(problem.kind, 'Problema')}: {problem.message}"


def describe_es(condition: cond.Condition) -> str:
    """A `when:` condition in Spanish, for the texts above."""
    if isinstance(condition, Open):
        return "está abierto"
    if isinstance(condition, Closed):
        return "está cerrado"
    if isinstance(condition, cond.Days):
        return f"es {condition.source}"
    if isinstance(condition, cond.Hours):
        return f"son las {condition.source}"
    if isinstance(condition, cond.FirstContact):
        return "es el primer mensaje" if condition.expected else "no es el primer mensaje"
    if isinstance(condition, cond.Field):
        if condition.equals is None:
            return f"el campo {condition.name} tiene valor"
        return f"el campo {condition.name} es {condition.equals}"
    if isinstance(condition, cond.Not):
        return f"no ({describe_es(condition.inner)})"
    if isinstance(condition, cond.All):
        return " y ".join(describe_es(p) for p in condition.parts)
    if isinstance(condition, cond.AnyOf):
        return "(" + " o ".join(describe_es(p) for p in condition.parts) + ")"
    return condition.describe()
