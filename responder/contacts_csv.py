"""The contacts CSV (DESIGN §12), read and written without a database: a `phone` column, an
optional `labels` column (labels separated by `;`), every other column a field.

Reading checks the whole file first and says what is wrong with each line; nothing may be
imported until it is clean. An empty cell changes nothing (the field keeps its value, labels
are only ever added). Writing guards against formula injection: a cell that a spreadsheet
would run (starting with `=`, `+`, `-`, `@`, a tab or a carriage return), or that starts
with `'` itself, is written with a `'` in front, which reading takes away again, so an
exported file imports back exactly.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from responder.phone import InvalidPhoneNumber, normalize_phone
from responder.rules.reader import LABEL
from responder.store.models import ContactRecord, ImportRow

MAX_IMPORT_BYTES = 16 * 1024 * 1024  # about 250,000 contacts with a few fields each
MAX_VALUE = 500  # characters in one field's value
MAX_PROBLEMS = 1000  # reported; the count says how many there were in all
PHONE_COLUMN = "phone"
LABELS_COLUMN = "labels"
# Exported for people to read; an import ignores it: only the person opts in or out, by SMS.
OPTED_OUT_COLUMN = "opted_out"
RESERVED = (PHONE_COLUMN, LABELS_COLUMN, OPTED_OUT_COLUMN)
# A field's name, as the API takes it (PATCH /api/contacts/{phone}).
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# What a spreadsheet would read as the start of a formula (OWASP's list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
BOM = "\ufeff"


@dataclass(frozen=True)
class Problem:
    """Why a line cannot be imported: `message` in English (API, CLI), `spanish` (the page)."""

    line: int
    message: str
    spanish: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


@dataclass
class ImportPlan:
    """What a file would import: its clean rows, or what is wrong with it (at most
    MAX_PROBLEMS of `problem_count` problems)."""

    rows: list[ImportRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def clean(self) -> bool:
        return self.problem_count == 0

    def refuse(self, line: int, message: str, spanish: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(line, message, spanish))


def escape(value: str) -> str:
    """A cell as written to the file: never the start of a formula."""
    return QUOTE + value if value.startswith((*FORMULA_START, QUOTE)) else value


def unescape(cell: str) -> str:
    """A cell as read from the file: the `'` that `escape` (or a person in a spreadsheet) put
    before a formula-like value goes away; any other `'` is the value's own."""
    if len(cell) > 1 and cell[0] == QUOTE and cell[1:].startswith((*FORMULA_START, QUOTE)):
        return cell[1:]
    return cell


def decode(data: bytes) -> str:
    """UTF-8, with or without a byte order mark; a file that is not UTF-8 is read as the
    Windows encoding that Excel uses for "CSV" in Spanish (cp1252)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    return text.removeprefix(BOM)


def delimiter(text: str) -> str:
    """`;` when the header line has more of them than commas (Excel in Spanish locales),
    else `,`."""
    header = text.split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


@dataclass(frozen=True)
class Columns:
    """What the header says: where the phone and labels are, and every column's name."""

    phone: int
    labels: int | None
    names: list[str]

    def is_field(self, index: int) -> bool:
        return self.names[index].lower() not in RESERVED


def _header(cells: list[str], plan: ImportPlan) -> Columns | None:
    """The columns; None (with the problems said) when the header cannot be used."""
    names = [cell.strip() for cell in cells]
    lowered = [name.lower() for name in names]
    before = plan.problem_count
    if PHONE_COLUMN not in lowered:
        plan.refuse(
            1,
            "the first line must name the columns, one of them 'phone'",
            "La primera línea debe nombrar las columnas, y una de ellas debe ser 'phone'.",
        )
    for index, name in enumerate(names):
        if not name:
            plan.refuse(
                1, f"column {index + 1} has no name", f"La columna {index + 1} no tiene nombre."
            )
        elif lowered.index(name.lower()) != index:
            plan.refuse(1, f"column {name!r} appears twice", f"La columna «{name}» está repetida.")
        elif name.lower() not in RESERVED and not FIELD_NAME.fullmatch(name):
            plan.refuse(
                1,
                f"column {name!r}: a field name is letters, digits and _ (at most 64, "
                "not starting with a digit)",
                f"La columna «{name}»: el nombre de un dato lleva letras sin acentos, números "
                "y _ (hasta 64, sin empezar por un número).",
            )
    if plan.problem_count > before:
        return None
    labels = lowered.index(LABELS_COLUMN) if LABELS_COLUMN in lowered else None
    return Columns(lowered.index(PHONE_COLUMN), labels, names)


def _row(
    cells: list[str], columns: Columns, country: str
) -> tuple[ImportRow | None, list[tuple[str, str]]]:
    """A clean row, or the (English, Spanish) reasons it is not one."""
    phone_at, labels_at, names = columns.phone, columns.labels, columns.names
    reasons: list[tuple[str, str]] = []
    if len(cells) != len(names):
        reasons.append(
            (
                f"{len(cells)} cells where the header has {len(names)}",
                f"Tiene {len(cells)} celdas y la primera línea {len(names)}.",
            )
        )
        return None, reasons
    raw_phone = unescape(cells[phone_at]).strip()
    phone = ""
    if not raw_phone:
        reasons.append(("no phone number", "Falta el número de teléfono."))
    else:
        try:
            phone = normalize_phone(raw_phone, country)
        except InvalidPhoneNumber:
            reasons.append(
                (
                    f"{raw_phone!r} is not a valid phone number (country {country})",
                    f"«{raw_phone}» no es un número de teléfono válido (país {country}).",
                )
            )
    labels: list[str] = []
    if labels_at is not None:
        for label in unescape(cells[labels_at]).split(";"):
            label = label.strip()
            if not label:
                continue
            if LABEL.fullmatch(label):
                labels.append(label)
            else:
                reasons.append(
                    (
                        f"label {label!r}: letters, digits, _ or - (at most 40)",
                        f"La etiqueta «{label}»: solo letras sin acentos, números, _ o - "
                        "(hasta 40).",
                    )
                )
    fields: dict[str, str] = {}
    for index, name in enumerate(names):
        if not columns.is_field(index):
            continue
        value = unescape(cells[index])
        if not value.strip():
            continue  # an empty cell changes nothing
        if len(value) > MAX_VALUE:
            reasons.append(
                (
                    f"{name}: {len(value)} characters, at most {MAX_VALUE}",
                    f"«{name}» tiene {len(value)} caracteres; el máximo es {MAX_VALUE}.",
                )
            )
        fields[name] = value
    if reasons:
        return None, reasons
    return ImportRow(phone, fields, tuple(dict.fromkeys(labels))), []


def parse(data: bytes, country: str) -> ImportPlan:
    """The rows of a contacts file, each checked, numbers as stored (national numbers read
    as `country`'s); a number twice in the file is a problem (which line should win?)."""
    plan = ImportPlan()
    text = decode(data)
    if not text.strip():
        plan.refuse(1, "the file is empty", "El archivo está vacío.")
        return plan
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text), strict=True)
    columns: Columns | None = None
    seen: dict[str, int] = {}
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error:
            plan.refuse(
                line,
                "the CSV cannot be read from this line on (a quote not closed?)",
                "El CSV no se puede leer desde esta línea (¿unas comillas sin cerrar?).",
            )
            break
        if columns is None:
            columns = _header(cells, plan)
            if columns is None:
                return plan
            continue
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, or one of only separators (";;;" from a spreadsheet)
        row, reasons = _row(cells, columns, country)
        if row is not None and row.phone in seen:
            reasons.append(
                (
                    f"{row.phone} is also on line {seen[row.phone]}",
                    f"El número {row.phone} ya está en la línea {seen[row.phone]}.",
                )
            )
        for message, spanish in reasons:
            plan.refuse(line, message, spanish)
        if row is not None and not reasons:
            seen[row.phone] = line
            plan.rows.append(row)
    if columns is None:
        plan.refuse(1, "the file is empty", "El archivo está vacío.")
    if not plan.clean:
        plan.rows = []
    return plan


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def export_columns(field_names: Iterable[str]) -> list[str]:
    """The header: phone, labels, opted_out, then the fields in name order (a field that a
    rule named like one of those columns is left out: it would read back as that column)."""
    names = sorted(n for n in set(field_names) if n.lower() not in RESERVED)
    return [*RESERVED, *names]


def export_lines(records: Sequence[ContactRecord], columns: Sequence[str]) -> str:
    """CSV lines for `records`, under the header `columns` (export_columns)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for record in records:
        values = [record.fields.get(name) for name in columns[len(RESERVED) :]]
        writer.writerow(
            [
                record.phone,
                ";".join(record.labels),
                "true" if record.opted_out else "false",
                *(_cell(v) for v in values),
            ]
        )
    return out.getvalue()


def header_line(columns: Sequence[str]) -> str:
    """The first line of an export, after the byte order mark that tells Excel it is UTF-8."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(columns)
    return BOM + out.getvalue()
