"""Synthetic patients for scale tests and benchmarks (never run by `make test`).

Bulk inserts, so 100,000 patients take well under a minute on SQLite. Every
patient is at some stage of one of a few realistic workups (the vignettes and
their earlier stages); the checklist snapshot of each stage is computed once
with the engine and reused, so lists see the same precomputed columns that the
service layer would have written.
"""

import json
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from workup import checklist as checklist_builder
from workup import services
from workup.engine import PatientInput, RecordInput, build_facts, evaluate
from workup.models import Membership, Patient, Site, StepRecord, Workup, WorkupSuggestion
from workup.protocol_cache import get_spec

CASES_FILE = Path(settings.BASE_DIR) / "fixtures" / "cases" / "mastocytosis-vignettes.json"
BATCH = 5000


@dataclass(frozen=True)
class Stage:
    """One workup template cut after `done` steps, with its precomputed snapshot."""

    adult: bool
    sex: str
    findings: tuple[tuple[str, dict], ...]
    progress_done: int
    progress_applicable: int
    suggested: tuple[str, ...]


class Command(BaseCommand):
    help = "Create N synthetic patients over K synthetic sites, at every stage of the workup."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, required=True)
        parser.add_argument("--sites", type=int, default=1)
        parser.add_argument("--seed", type=int, default=20261125)
        parser.add_argument(
            "--member",
            action="append",
            default=[],
            help="Username to make a clinician at every synthetic site (repeatable).",
        )

    def handle(self, *args, patients: int, sites: int, seed: int, member: list, **options):
        if patients < 1 or sites < 1:
            raise CommandError("--patients and --sites must be at least 1.")
        started = time.perf_counter()
        rng = random.Random(seed)
        protocol = services.current_protocol()
        stages = build_stages(get_spec(protocol))
        site_objects = [
            Site.objects.get_or_create(
                code=f"synthetic-{i}", defaults={"name": f"Synthetic Site {i}"}
            )[0]
            for i in range(1, sites + 1)
        ]
        for username in member:
            user = get_user_model().objects.get(username=username)
            for site in site_objects:
                Membership.objects.get_or_create(
                    user=user, site=site, defaults={"role": Membership.Role.CLINICIAN}
                )
        first = Patient.objects.filter(mrn__startswith="SYN").count()
        ids = IdBlock()
        created = 0
        while created < patients:
            size = min(BATCH, patients - created)
            with transaction.atomic():
                self._batch(rng, protocol, stages, site_objects, first + created, size, ids)
            created += size
        ids.reset_sequences()
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {patients} synthetic patients over {sites} site(s) "
                f"in {time.perf_counter() - started:.1f} s."
            )
        )

    def _batch(self, rng, protocol, stages, sites, offset, size, ids):
        """Insert one batch with executemany: model instances cost more than the rows."""
        today = timezone.localdate()
        now = timezone.now()
        step_ids = dict(protocol.stepdefinition_set.values_list("code", "pk"))
        patient_rows, workup_rows, record_rows, suggestion_rows = [], [], [], []
        for i in range(size):
            n = offset + i
            stage = rng.choice(stages)
            age_days = rng.randint(19 * 365, 85 * 365) if stage.adult else rng.randint(90, 17 * 365)
            patient_id, workup_id = ids.next("patient"), ids.next("workup")
            changed = now - timedelta(minutes=rng.randint(0, 60 * 24 * 365))
            patient_rows.append(
                (
                    patient_id,
                    sites[n % len(sites)].pk,
                    f"SYN{n:08d}",
                    f"Synthetic{n:07d}",
                    rng.choice(GIVEN_NAMES),
                    today - timedelta(days=age_days),
                    stage.sex,
                    now,
                    now,
                )
            )
            workup_rows.append(
                (
                    workup_id,
                    patient_id,
                    protocol.pk,
                    "open",
                    changed,
                    False,
                    "",
                    1,
                    stage.progress_done,
                    stage.progress_applicable,
                    json.dumps(list(stage.suggested)),
                    changed,
                )
            )
            day = today - timedelta(days=rng.randint(30, 700))
            for step_code, values in stage.findings:
                repeats = [values]
                if step_code == "serum_tryptase" and rng.random() < 0.5:
                    # A repeated tryptase: an earlier value with the same baseline flag.
                    repeats.insert(
                        0, dict(values, value_ng_ml=round(values["value_ng_ml"] * 0.9, 1))
                    )
                for recorded in repeats:
                    record_rows.append(
                        (
                            ids.next("steprecord"),
                            workup_id,
                            step_ids[step_code],
                            json.dumps(recorded),
                            day,
                            "",
                            changed,
                            changed,
                        )
                    )
                    day += timedelta(days=rng.randint(1, 30))
            suggestion_rows += [(ids.next("suggestion"), workup_id, c) for c in stage.suggested]
        insert(
            Patient,
            [
                "id",
                "site_id",
                "mrn",
                "family_name",
                "given_name",
                "birth_date",
                "sex",
                "created_at",
                "updated_at",
            ],
            patient_rows,
        )
        insert(
            Workup,
            [
                "id",
                "patient_id",
                "protocol_id",
                "status",
                "opened_at",
                "adult_pathway",
                "adult_pathway_reason",
                "version",
                "progress_done",
                "progress_applicable",
                "suggested_steps",
                "last_change_at",
            ],
            workup_rows,
        )
        insert(
            StepRecord,
            [
                "id",
                "workup_id",
                "step_id",
                "values",
                "performed_on",
                "note",
                "recorded_at",
                "updated_at",
            ],
            record_rows,
        )
        insert(WorkupSuggestion, ["id", "workup_id", "step_code"], suggestion_rows)


GIVEN_NAMES = ("Alex", "Sam", "Robin", "Kim", "Jo", "Noa")


class IdBlock:
    """Primary keys handed out in order, so rows of one batch can refer to each other."""

    MODELS = {
        "patient": Patient,
        "workup": Workup,
        "steprecord": StepRecord,
        "suggestion": WorkupSuggestion,
    }

    def __init__(self):
        self.last = {
            name: model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            for name, model in self.MODELS.items()
        }

    def next(self, name: str) -> int:
        self.last[name] += 1
        return self.last[name]

    def reset_sequences(self) -> None:
        """PostgreSQL sequences must move past the ids we chose ourselves."""
        statements = connection.ops.sequence_reset_sql(no_style(), list(self.MODELS.values()))
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def insert(model, columns: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    placeholders = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", rows)


def build_stages(spec) -> list[Stage]:
    """Every prefix of every vignette's findings, evaluated once each."""
    cases = json.loads(CASES_FILE.read_text())
    stages = []
    for case in cases:
        adult = case["patient"]["age_years"] >= 18
        findings = [
            (code, {k: v for k, v in values.items() if not spec.step(code).field(k).is_calculated})
            for code, values in case["findings"].items()
        ]
        for done in range(len(findings) + 1):
            prefix = tuple(findings[:done])
            facts = build_facts(
                spec,
                patient=PatientInput(case["patient"]["age_years"], case["patient"]["sex"]),
                records=[RecordInput(code, values, date(2026, 1, 1)) for code, values in prefix],
            )
            evaluation = evaluate(spec, facts)
            checklist = checklist_builder.build_checklist(spec, evaluation, [], {})
            stages.append(
                Stage(
                    adult=adult,
                    sex=case["patient"]["sex"],
                    findings=prefix,
                    progress_done=sum(1 for s in evaluation.steps.values() if s.state == "done"),
                    progress_applicable=checklist.progress_applicable,
                    suggested=tuple(evaluation.suggested),
                )
            )
    return stages
