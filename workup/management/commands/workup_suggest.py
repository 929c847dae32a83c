"""Evaluate cases (vignette shape) against the published protocol; print JSON.

Touches no patient in the database. Invalid input exits with status 2 and a
message naming the case and the field; never a traceback.
"""

import json
import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from workup import engine
from workup.engine import PatientInput, RecordInput, build_facts, evaluate
from workup.protocol_cache import get_spec
from workup.services import DEFAULT_PROTOCOL_CODE, NoPublishedProtocol, current_protocol
from workup.spec import ProtocolSpec
from workup.values import validate_step_values

SEXES = ("male", "female", "other", "unknown")


class InvalidCase(Exception):
    pass


class Command(BaseCommand):
    help = "Suggest next steps for cases given as JSON (the shape of example-vignettes.json)."

    def add_arguments(self, parser):
        parser.add_argument("cases", help="JSON file with a list of cases, or - for stdin.")
        parser.add_argument("--protocol", default=DEFAULT_PROTOCOL_CODE)

    def handle(self, *args, cases: str, protocol: str, **options):
        try:
            spec = get_spec(current_protocol(protocol))
        except NoPublishedProtocol as error:
            raise CommandError(str(error), returncode=2) from None
        try:
            data = self._read(cases)
            results = [suggest(spec, case, index) for index, case in enumerate(data)]
        except InvalidCase as error:
            raise CommandError(str(error), returncode=2) from None
        self.stdout.write(json.dumps(results, indent=2, ensure_ascii=False))

    def _read(self, path: str):
        try:
            if path == "-":
                data = json.load(sys.stdin)
            else:
                with open(path, encoding="utf-8") as handle:
                    data = json.load(handle)
        except OSError as error:
            raise InvalidCase(f"cannot read {path}: {error.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InvalidCase(f"{path} is not valid JSON: {error}") from None
        if not isinstance(data, list):
            raise InvalidCase("expected a JSON list of cases")
        return data


def suggest(spec: ProtocolSpec, case, index: int) -> dict:
    if not isinstance(case, dict):
        raise InvalidCase(f"case #{index + 1}: expected an object")
    case_id = case.get("id", f"#{index + 1}")
    label = f"case {case_id}"
    patient = case.get("patient")
    if not isinstance(patient, dict):
        raise InvalidCase(f"{label}: 'patient' must be an object with age_years and sex")
    age = patient.get("age_years")
    if isinstance(age, bool) or not isinstance(age, int | float) or not 0 <= age <= 120:
        raise InvalidCase(f"{label}: patient.age_years must be a number from 0 to 120")
    sex = patient.get("sex")
    if sex not in SEXES:
        raise InvalidCase(f"{label}: patient.sex must be one of {', '.join(SEXES)}")
    findings = case.get("findings", {})
    if not isinstance(findings, dict):
        raise InvalidCase(f"{label}: 'findings' must be an object keyed by step code")

    records, supplied_calculated = [], []
    for step_code, values in findings.items():
        if step_code not in spec.steps_by_code:
            raise InvalidCase(f"{label}: unknown step '{step_code}'")
        step = spec.step(step_code)
        problems = validate_step_values(step, values)
        if problems:
            raise InvalidCase(f"{label}: {problems[0]}")
        entered = {k: v for k, v in values.items() if not step.field(k).is_calculated}
        supplied_calculated += [
            (step_code, k, v) for k, v in values.items() if step.field(k).is_calculated
        ]
        records.append(RecordInput(step_code, entered, date.today()))

    facts = build_facts(
        spec,
        patient=PatientInput(
            age_years=age, sex=sex, adult_pathway=bool(patient.get("adult_pathway"))
        ),
        records=records,
    )
    evaluation = evaluate(spec, facts)
    warnings = [f"could not evaluate: {e}" for e in evaluation.errors]
    for step_code, field_code, supplied in supplied_calculated:
        computed = evaluation.facts[step_code].get(field_code)
        if computed != supplied:
            warnings.append(
                f"{step_code}.{field_code}: the case gives {supplied!r}, "
                f"the protocol computes {computed!r} (the computed value is used)"
            )
    reasons = {}
    for code, outcome in evaluation.steps.items():
        deciding = (
            outcome.suggest_reasons
            if outcome.state == engine.SUGGESTED
            else outcome.not_indicated_reasons
            if outcome.state == engine.NOT_INDICATED
            else []
        )
        if deciding:
            reasons[code] = [o.code for o in deciding]
    return {
        "id": case_id,
        "suggested": evaluation.codes_in_state(engine.SUGGESTED),
        "not_indicated": evaluation.codes_in_state(engine.NOT_INDICATED),
        "done": [code for code, outcome in evaluation.steps.items() if outcome.done],
        "reasons": reasons,
        "derived": evaluation.derived,
        "warnings": warnings,
    }
