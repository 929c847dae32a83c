"""The CSV export: columns and a data dictionary from the ProtocolSpec, one row per workup.

Pure: the columns come from the protocol, each row from one `WorkupExport`
(data.py). Columns, in order:

- who and what: protocol code and version, site, patient and workup pseudonyms;
  with identifiers also the workup id, MRN, names and birth date; then sex, age
  (on the export day, as the rules see it), workup status, opening date and the
  adult-pathway override;
- per step: `<step>.state`, `<step>.date` (performed on, of the record shown),
  `<step>.records` (how many results), then `<step>.<field>` for every field.
  The values are those of the record the rules use (for a repeatable step such
  as serum tryptase: the latest baseline value, see protocol-authoring.md);
  every record is in the FHIR export;
- `calc.<code>`: every derived value the checklist shows.

Values: booleans `true`/`false`, numbers as recorded, choices as their codes,
dates ISO 8601, missing values empty. Free text that a spreadsheet would run
as a formula (starting with = + - @) is prefixed with an apostrophe.
Clinicians' notes and mark reasons are never exported to CSV.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from workup.core.checklist import STATE_DISPLAY
from workup.core.engine import NOT_YET, RecordInput, counting_record
from workup.core.formatting import format_number
from workup.core.spec import FieldSpec, ProtocolSpec
from workup.exports.coding import ProtocolCoding
from workup.exports.data import WorkupExport

DICTIONARY_HEADER = ("column", "label", "type", "unit", "ucum", "allowed_values", "description")
SEX_CHOICES = (("female", "Female"), ("male", "Male"), ("other", "Other"), ("unknown", "Unknown"))
WORKUP_STATUS_CHOICES = (("open", "Open"), ("closed", "Closed"))
BOOLEAN_VALUES = "true; false"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST_CHARACTERS = frozenset(_FORMULA_STARTS)
# A plain number ("-3", "+1.5e3") is read as a number by a spreadsheet, never as a formula.
_PLAIN_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    type: str
    unit: str = ""
    ucum: str = ""
    allowed: str = ""
    description: str = ""

    def dictionary_row(self) -> list[str]:
        return [
            self.name,
            self.label,
            self.type,
            self.unit,
            self.ucum,
            self.allowed,
            self.description,
        ]


def _choices(choices: Iterable[tuple[str, str]]) -> str:
    return "; ".join(f"{code}={label}" for code, label in choices)


def _range(field: FieldSpec) -> str:
    if field.min_value is None and field.max_value is None:
        return ""
    low = "" if field.min_value is None else format_number(field.min_value)
    high = "" if field.max_value is None else format_number(field.max_value)
    return f"{low}..{high}"


def columns(spec: ProtocolSpec, coding: ProtocolCoding, *, identifiers: bool) -> list[Column]:
    """Every column of the export, in order, each with what the data dictionary says of it."""
    cols = [
        Column("protocol.code", "Protocol", "text", description=spec.title),
        Column("protocol.version", "Protocol version", "integer"),
        Column("site.code", "Site", "text", description="The clinic's code."),
        Column(
            "patient.pseudonym",
            "Patient pseudonym",
            "text",
            description="Stable per site and patient; not reversible without the site's secret.",
        ),
        Column(
            "workup.pseudonym",
            "Workup pseudonym",
            "text",
            description="Tells one patient's workups apart; not reversible without the secret.",
        ),
    ]
    if identifiers:
        cols += [
            Column("workup.id", "Workup id", "integer", description="The app's database id."),
            Column("patient.mrn", "MRN", "text", description="Medical record number at the site."),
            Column("patient.family_name", "Family name", "text"),
            Column("patient.given_name", "Given name", "text"),
            Column("patient.birth_date", "Birth date", "date", description="ISO 8601."),
        ]
    cols += [
        Column("patient.sex", "Sex", "choice", allowed=_choices(SEX_CHOICES)),
        Column(
            "patient.age_years",
            "Age",
            "decimal",
            unit="years",
            ucum="a",
            description="On the export day, as the checklist's rules see it (infants fractional).",
        ),
        Column("workup.status", "Workup status", "choice", allowed=_choices(WORKUP_STATUS_CHOICES)),
        Column("workup.opened_on", "Workup opened on", "date", description="ISO 8601."),
        Column(
            "workup.adult_pathway",
            "Adult-pathway override",
            "boolean",
            allowed=BOOLEAN_VALUES,
            description="A clinician moved a post-pubertal adolescent to the adult pathway.",
        ),
    ]
    state_choices = _choices((state, label) for state, (label, _, _) in STATE_DISPLAY.items())
    for step in spec.steps:
        cols += [
            Column(
                f"{step.code}.state",
                f"{step.title}: state",
                "choice",
                allowed=state_choices,
                description="The step's state on the checklist (never a diagnosis).",
            ),
            Column(
                f"{step.code}.not_yet",
                f"{step.title}: not yet, awaiting",
                "text",
                description='With state not_yet: what is missing, e.g. "record history".',
            ),
            Column(
                f"{step.code}.date",
                f"{step.title}: performed on",
                "date",
                description="ISO 8601; of the result whose values this row shows.",
            ),
            Column(
                f"{step.code}.records",
                f"{step.title}: number of results",
                "integer",
                description="Results recorded for the step"
                + (
                    " (repeatable: the row shows the one the rules use)."
                    if step.repeatable
                    else "."
                ),
            ),
        ]
        for field in step.fields:
            cols.append(_field_column(step.code, step.title, field, coding))
    for calc in spec.calculations:
        if not calc.display:
            continue
        cols.append(
            Column(
                f"calc.{calc.code}",
                calc.label,
                "computed",
                unit=calc.unit,
                ucum=coding.ucum(calc.unit) or "",
                description=" ".join(
                    part
                    for part in (
                        "Derived by the checklist engine (number, text or true/false); empty "
                        "when not computable.",
                        calc.formula,
                        calc.source,
                    )
                    if part
                ),
            )
        )
    return cols


def _field_column(step_code: str, step_title: str, field: FieldSpec, coding) -> Column:
    if field.kind == "boolean":
        allowed = BOOLEAN_VALUES
    elif field.kind in ("choice", "multi_choice"):
        allowed = _choices(field.choices)
    else:
        allowed = _range(field)
    description = field.help_text
    if field.kind == "multi_choice":
        description = f"Codes separated by '; '. {description}".strip()
    if field.is_calculated:
        description = f"Computed by the engine ({field.calculation}), never typed in. {description}"
    return Column(
        f"{step_code}.{field.code}",
        f"{step_title}: {field.label}",
        field.kind,
        unit=field.unit,
        ucum=coding.ucum(field.unit) or "",
        allowed=allowed,
        description=description.strip(),
    )


def csv_value(value: Any) -> str:
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list | tuple):
        return "; ".join(csv_value(v) for v in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def row_values(
    spec: ProtocolSpec, item: WorkupExport, *, identifiers: bool, opened_on=None
) -> dict[str, str]:
    """Column name -> cell text for one workup (columns() gives the order)."""
    workup, patient, evaluation = item.workup, item.patient, item.evaluation
    values: dict[str, Any] = {
        "protocol.code": spec.code,
        "protocol.version": spec.version,
        "site.code": patient.site_code,
        "patient.pseudonym": patient.pseudonym,
        "workup.pseudonym": workup.pseudonym,
        "patient.sex": patient.sex,
        "patient.age_years": patient.age_years,
        "workup.status": workup.status,
        "workup.opened_on": opened_on,
        "workup.adult_pathway": workup.adult_pathway,
    }
    if identifiers:
        values.update(
            {
                "workup.id": workup.id,
                "patient.mrn": patient.mrn,
                "patient.family_name": patient.family_name,
                "patient.given_name": patient.given_name,
                "patient.birth_date": patient.birth_date,
            }
        )
    by_step: dict[str, list] = {}
    for record in item.records:
        by_step.setdefault(record.step_code, []).append(record)
    for step in spec.steps:
        records = by_step.get(step.code, [])
        shown = counting_record(step, _as_inputs(records)) if records else None
        facts = evaluation.facts.get(step.code) or {}
        outcome = evaluation.steps[step.code]
        values[f"{step.code}.state"] = outcome.state
        values[f"{step.code}.not_yet"] = (
            "; ".join(outcome.awaiting) if outcome.state == NOT_YET else None
        )
        values[f"{step.code}.date"] = shown.performed_on if shown else None
        values[f"{step.code}.records"] = len(records)
        for field in step.fields:
            values[f"{step.code}.{field.code}"] = facts.get(field.code)
    for calc in spec.calculations:
        if calc.display:
            values[f"calc.{calc.code}"] = evaluation.derived.get(calc.code)
    return {name: csv_value(value) for name, value in values.items()}


def _as_inputs(records) -> list[RecordInput]:
    return [RecordInput(r.step_code, r.values, r.performed_on, sequence=r.id or 0) for r in records]


class _Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def neutralised(cell: Any) -> Any:
    """A cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first), quoted."""
    if (
        isinstance(cell, str)
        and cell[:1] in _FORMULA_FIRST_CHARACTERS
        and not _PLAIN_NUMBER.fullmatch(cell)
    ):
        return "'" + cell
    return cell


def stream_rows(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    """CSV lines; every CSV the app writes goes through here, so every cell is neutralised."""
    writer = csv.writer(_Echo())
    yield writer.writerow([neutralised(c) for c in header])
    for row in rows:
        yield writer.writerow([neutralised(c) for c in row])


def stream_dictionary(cols: list[Column]) -> Iterator[str]:
    return stream_rows(list(DICTIONARY_HEADER), (c.dictionary_row() for c in cols))


def stream_workups(
    spec: ProtocolSpec,
    cols: list[Column],
    items: Iterable[WorkupExport],
    *,
    identifiers: bool,
    local_date,
) -> Iterator[str]:
    """The workup CSV, line by line; `local_date` turns a moment into the clinic's date."""
    names = [c.name for c in cols]

    def rows():
        for item in items:
            opened = item.workup.opened_at
            values = row_values(
                spec,
                item,
                identifiers=identifiers,
                opened_on=local_date(opened) if opened else None,
            )
            yield [values.get(name, "") for name in names]

    return stream_rows(names, rows())
