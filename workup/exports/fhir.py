"""The FHIR R4 export of one workup: a Bundle (type collection), built as plain JSON.

Pure: from a `WorkupExport` (data.py), the protocol's coding (coding.py) and the
identifier systems (policy.py). Validated with the R4B models of fhir.resources
(`validate_bundle`). What goes in (docs/exports.md has the full mapping):

- Patient: gender, the per-site pseudonym; MRN, name and birth date only with identifiers.
- Observation per recorded value (every record of a repeatable step), its code the
  verified standard code where the coding file has one (LOINC 21582-2 for tryptase
  with UCUM ng/mL, 55201-8 for KIT) plus our local code, effectiveDateTime = the
  day it was performed. Qualifier fields (tryptase is_baseline, hours after
  onset; KIT method, sensitivity, VAF) are components and a note, so baseline
  and acute tryptase are told apart.
- Procedure per biopsy (skin biopsy: SNOMED CT 240977001); its findings are
  Observations `partOf` it. Panels (blood count, chemistry) group their values.
- Observation per derived value the checklist shows (local code `calc.<code>`).
- CarePlan: the checklist itself, one activity per step with its state, the
  rules' reasons and sources. Never a Condition: this is a checklist, not a diagnosis.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from workup.core import engine
from workup.core.checklist import Checklist, ChecklistItem, Reason, build_checklist
from workup.core.formatting import format_value
from workup.core.spec import FieldSpec, ProtocolSpec, StepSpec
from workup.exports.coding import UCUM_SYSTEM, Code, ProtocolCoding
from workup.exports.data import WorkupExport

FHIR_JSON = "application/fhir+json"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
# Any fixed UUID: resource ids are uuid5 names under it, so a re-export gives the same ids.
_NAMESPACE = uuid.UUID("6f1c1f3e-3b7a-5a53-9d5e-1f0c2a7b9e41")
NDJSON = "application/fhir+ndjson"

GENDER = {"male": "male", "female": "female", "other": "other", "unknown": "unknown"}

# Checklist state -> CarePlan.activity.detail.status. Our own state also goes in
# statusReason (coded), so "suggested" and "not yet suggested" stay distinct.
ACTIVITY_STATUS = {
    engine.DONE: "completed",
    engine.SUGGESTED: "not-started",
    engine.ORDERED: "scheduled",
    engine.DECLINED: "cancelled",
    engine.NOT_INDICATED: "not-started",  # with doNotPerform = true
    engine.NOT_YET: "not-started",  # statusReason says what is missing
    engine.NOT_SUGGESTED: "not-started",
}


@dataclass(frozen=True)
class Systems:
    """Identifier and app-level code systems (from settings, see policy.py)."""

    mrn: str
    patient_pseudonym: str
    workup_id: str
    workup_pseudonym: str
    checklist_state: str


def concept(codes: tuple[Code, ...], local: dict[str, str], text: str) -> dict[str, Any]:
    return {"coding": [c.as_coding() for c in codes] + [local], "text": text}


class _BundleBuilder:
    def __init__(self, seed: str):
        self.seed = seed
        self.entries: list[dict[str, Any]] = []

    def add(self, key: str, resource: dict[str, Any]) -> str:
        """Add a resource under a stable id; return the reference to it."""
        resource_id = stable_id(f"{self.seed}/{key}")
        full_url = f"urn:uuid:{resource_id}"
        self.entries.append({"fullUrl": full_url, "resource": {**resource, "id": resource_id}})
        return full_url


def stable_id(name: str) -> str:
    """`str(uuid.uuid5(_NAMESPACE, name))`, written out: a bulk export makes ~25 per workup,
    and the uuid module's objects cost more than the hash."""
    digest = bytearray(hashlib.sha1(_NAMESPACE.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ndjson_line(bundle: dict[str, Any]) -> str:
    """One Bundle as one line of NDJSON (compact, UTF-8, no newline inside)."""
    try:
        return orjson.dumps(bundle).decode() + "\n"
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: the standard library copes
        return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")) + "\n"


def build_bundle(
    spec: ProtocolSpec,
    coding: ProtocolCoding,
    item: WorkupExport,
    *,
    identifiers: bool,
    systems: Systems,
    generated_at: datetime,
) -> dict[str, Any]:
    """The Bundle as a JSON-ready dict. Notes and mark reasons only with identifiers."""
    builder = _BundleBuilder(item.workup.pseudonym)
    issued = _moment(generated_at)
    patient_ref = builder.add("patient", _patient(item, identifiers, systems))
    subject = {"reference": patient_ref}
    outcome_refs: dict[str, list[str]] = {}

    for record in item.records:
        step = spec.steps_by_code.get(record.step_code)
        if step is None:
            continue
        refs = _record_resources(builder, spec, coding, step, record, subject, identifiers)
        outcome_refs.setdefault(step.code, []).extend(refs)

    for calc in spec.calculations:
        value = item.evaluation.derived.get(calc.code)
        if not calc.display or value is None:
            continue
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": concept((), coding.local(f"calc.{calc.code}", calc.label), calc.label),
            "subject": subject,
            "issued": issued,
            **_derived_value(value, calc.unit, coding),
            "note": [
                {
                    "text": "Derived by the checklist engine from the recorded values when "
                    "this bundle was made; never typed in."
                    + (f" {calc.source}" if calc.source else "")
                }
            ],
        }
        if calc.formula:
            observation["method"] = {"text": calc.formula}
        builder.add(f"calc/{calc.code}", observation)

    checklist = build_checklist(spec, item.evaluation, item.records, item.marks)
    builder.add(
        "careplan",
        _care_plan(spec, coding, item, checklist, subject, outcome_refs, identifiers, systems),
    )
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(_NAMESPACE, f"{item.workup.pseudonym}/bundle")),
        "type": "collection",
        "timestamp": issued,
        "entry": builder.entries,
    }


def _moment(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat()


def _patient(item: WorkupExport, identifiers: bool, systems: Systems) -> dict[str, Any]:
    patient = item.patient
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {"use": "secondary", "system": systems.patient_pseudonym, "value": patient.pseudonym}
        ],
        "gender": GENDER.get(patient.sex, "unknown"),
    }
    if identifiers:
        resource["identifier"].insert(
            0,
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": IDENTIFIER_TYPE,
                            "code": "MR",
                            "display": "Medical record number",
                        }
                    ]
                },
                "system": systems.mrn,
                "value": patient.mrn,
            },
        )
        resource["name"] = [{"family": patient.family_name, "given": [patient.given_name]}]
        resource["birthDate"] = patient.birth_date.isoformat()
    return resource


def _has_value(value: Any) -> bool:
    return value not in (None, "", [])


def _record_resources(builder, spec, coding, step: StepSpec, record, subject, identifiers):
    """The resources of one result: its Procedure or panel, and an Observation per value."""
    step_coding = coding.step(step.code)
    recorded = [
        f for f in step.fields if not f.is_calculated and _has_value(record.values.get(f.code))
    ]
    qualifiers = [f for f in recorded if f.code in step_coding.qualifiers]
    values = [f for f in recorded if f.code not in step_coding.qualifiers]
    if not values:  # only qualifiers were recorded: then they are the values
        values, qualifiers = qualifiers, []
    effective = record.performed_on.isoformat() if record.performed_on else None
    refs: list[str] = []
    step_concept = coding.concept(step.code, "", step.title, step.title)
    notes = [
        step.title
        + "".join(f"; {f.label}: {format_value(f, record.values[f.code])}" for f in qualifiers)
    ]
    if identifiers and record.note:
        notes.append(record.note)

    procedure_ref = None
    if step_coding.procedure is not None:
        procedure = {
            "resourceType": "Procedure",
            "status": "completed",
            "code": step_concept,
            "subject": subject,
        }
        if effective:
            procedure["performedDateTime"] = effective
        if identifiers and record.note:
            procedure["note"] = [{"text": record.note}]
        procedure_ref = builder.add(f"record/{record.id}/procedure", procedure)
        refs.append(procedure_ref)

    components = [
        {
            "code": coding.concept(step.code, f.code, f.label, f.label),
            **_value(step.code, f, record.values[f.code], coding),
        }
        for f in qualifiers
    ]
    members = []
    for f in values:
        observation: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
        if step_coding.category:
            observation["category"] = [_category(step_coding.category)]
        observation["code"] = coding.concept(step.code, f.code, f.label, f"{step.title}: {f.label}")
        observation["subject"] = subject
        if effective:
            observation["effectiveDateTime"] = effective
        observation.update(_value(step.code, f, record.values[f.code], coding))
        if components:
            observation["component"] = components
        observation["note"] = [{"text": text} for text in notes]
        if procedure_ref:
            observation["partOf"] = [{"reference": procedure_ref}]
        members.append(builder.add(f"record/{record.id}/{f.code}", observation))
    refs.extend(members)

    if step_coding.panel is not None and members:
        panel: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
        if step_coding.category:
            panel["category"] = [_category(step_coding.category)]
        panel.update(code=step_concept, subject=subject)
        if effective:
            panel["effectiveDateTime"] = effective
        panel["hasMember"] = [{"reference": ref} for ref in members]
        refs.insert(0, builder.add(f"record/{record.id}/panel", panel))
    return refs


def _category(code: str) -> dict[str, Any]:
    return {"coding": [{"system": OBSERVATION_CATEGORY, "code": code}]}


def _value(step_code: str, field: FieldSpec, value: Any, coding: ProtocolCoding) -> dict:
    """Observation.value[x] (or dataAbsentReason) for one recorded value."""
    if field.kind == "boolean":
        return {"valueBoolean": bool(value)}
    if field.kind == "choice":
        if value in coding.not_performed_values:
            return {
                "dataAbsentReason": {
                    "coding": [
                        {"system": DATA_ABSENT_REASON, "code": "not-performed"},
                    ],
                    "text": field.choice_label(value),
                }
            }
        label = field.choice_label(value)
        return {
            "valueCodeableConcept": {
                "coding": [
                    {
                        "system": coding.answer_system(step_code, field.code),
                        "code": str(value),
                        "display": label,
                    }
                ],
                "text": label,
            }
        }
    if field.kind == "multi_choice":
        return {"valueString": format_value(field, value)}
    if field.kind in ("decimal", "integer"):
        if field.kind == "integer" and not field.unit:
            return {"valueInteger": int(value)}
        return {"valueQuantity": _quantity(value, field.unit, coding)}
    if field.kind == "date":
        return {"valueDateTime": str(value)}
    return {"valueString": str(value)}


def _quantity(value: int | float, unit: str, coding: ProtocolCoding) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    if unit:
        quantity["unit"] = unit
        ucum = coding.ucum(unit)
        if ucum:
            quantity.update(system=UCUM_SYSTEM, code=ucum)
    return quantity


def _derived_value(value: Any, unit: str, coding: ProtocolCoding) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, int) and not unit:
        return {"valueInteger": value}
    if isinstance(value, int | float):
        return {"valueQuantity": _quantity(value, unit, coding)}
    return {"valueString": str(value)}


def _reason(reason: Reason, coding: ProtocolCoding) -> dict[str, Any]:
    text = f"{reason.code}: {reason.rationale}".strip()
    if reason.label:
        text += f" ({reason.label})"
    if reason.source:
        text += f" Source: {reason.source}"
    return {
        "coding": [
            {
                "system": coding.rule_system,
                "version": str(coding.version),
                "code": reason.code,
                "display": reason.title,
            }
        ],
        "text": text,
    }


def _activity(
    item: ChecklistItem, coding: ProtocolCoding, refs, identifiers: bool, systems: Systems
) -> dict[str, Any]:
    step = item.step
    status_text = item.state_label
    if item.state == engine.NOT_YET:
        status_text = item.state_text
    if item.mark is not None and identifiers and item.mark.reason:
        status_text += f": {item.mark.reason}"
    detail: dict[str, Any] = {
        "code": coding.concept(step.code, "", step.title, step.title),
        "status": ACTIVITY_STATUS[item.state],
        "statusReason": {
            "coding": [
                {"system": systems.checklist_state, "code": item.state, "display": item.state_label}
            ],
            "text": status_text,
        },
    }
    if item.state == engine.NOT_INDICATED:
        detail["doNotPerform"] = True
    reasons = list(item.reasons)
    if item.state == engine.NOT_INDICATED:
        reasons += item.not_indicated
    if reasons:
        detail["reasonCode"] = [_reason(r, coding) for r in reasons]
    activity: dict[str, Any] = {"detail": detail}
    if refs:
        activity["outcomeReference"] = [{"reference": ref} for ref in refs]
    progress = [f"{n.code}: {n.label or n.rationale} Source: {n.source}" for n in item.notes]
    progress += [
        f"{d.code} {d.title}: {d.positions} App: {d.app_behaviour}" for d in item.disagreements
    ]
    if progress:
        activity["progress"] = [{"text": text} for text in progress]
    return activity


def _care_plan(
    spec,
    coding,
    item: WorkupExport,
    checklist: Checklist,
    subject,
    outcome_refs,
    identifiers,
    systems,
) -> dict[str, Any]:
    workup = item.workup
    identifier = [
        {"use": "secondary", "system": systems.workup_pseudonym, "value": workup.pseudonym}
    ]
    if identifiers:
        identifier.insert(0, {"use": "usual", "system": systems.workup_id, "value": str(workup.id)})
    notes = [
        f"{d.code} {d.title}: {d.positions} App: {d.app_behaviour}"
        for d in checklist.general_disagreements
    ]
    notes += [f"[{key}] {citation}" for key, citation in checklist.sources.items()]
    notes += [f"Could not be evaluated: {error}" for error in checklist.errors]
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "identifier": identifier,
        "status": "active" if workup.status == "open" else "completed",
        "intent": "plan",
        "title": f"{spec.title} (protocol {spec.code} v{spec.version}): workup checklist",
        "description": checklist.disclaimer,
        "subject": subject,
    }
    if workup.opened_at:
        plan["created"] = _moment(workup.opened_at)
    plan["activity"] = [
        _activity(i, coding, outcome_refs.get(i.code, []), identifiers, systems)
        for i in checklist.items
    ]
    if notes:
        plan["note"] = [{"text": text} for text in notes]
    return plan


def validate_bundle(bundle: dict[str, Any]):
    """Parse with the R4B models of fhir.resources (R4-compatible); raises if invalid."""
    from fhir.resources.R4B.bundle import Bundle

    return Bundle.model_validate(bundle)
