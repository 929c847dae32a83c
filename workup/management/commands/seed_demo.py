"""Synthetic patients for scale tests and benchmarks (never run by `make test`).

    manage.py seed_demo --patients 100000 --sites 10

Every patient is at some stage of one of the vignettes' workups: just referred
(no workup yet), just opened, part-way, with the next step ordered, complete;
half of the tryptase results are repeated. The checklist snapshot of each stage
is computed once with the engine and the checklist builder, exactly as the
service layer computes it, and reused for every patient at that stage; so lists
see the precomputed columns the services would have written.

Rows are written in bulk: executemany on SQLite (100,000 patients in well under
a minute), COPY on PostgreSQL (a million patients in a few minutes). Columns are
read from the models: a column this command does not know gets the field's
default and a warning, and tests/test_seed_demo.py compares seeded rows with
what Patient.save() and snapshot.refresh_snapshot() compute.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from workup import reads
from workup.core import checklist as checklist_builder
from workup.core.engine import PatientInput, RecordInput, build_facts, evaluate
from workup.core.search_keys import search_key
from workup.models import (
    Membership,
    Patient,
    ProtocolCase,
    Site,
    StepMark,
    StepRecord,
    Workup,
    WorkupSuggestion,
)
from workup.ops.refresh import update_planner_statistics
from workup.protocols.cache import get_spec

CASES_FILE = Path(settings.BASE_DIR) / "fixtures" / "cases" / "mastocytosis-vignettes.json"
BATCH = 5000
MRN_PREFIX = "SYN"
# Times are counted from 08:00 UTC on this day (naive: UTC is implied).
EPOCH = datetime(2000, 1, 1, 8)
EPOCH_ORDINAL = EPOCH.toordinal()
# Share of patients referred but with no workup opened yet.
REFERRED_SHARE = 0.03
# Share of tryptase results that were repeated (an earlier value, same baseline flag).
REPEATED_TRYPTASE_SHARE = 0.5
# Real surnames from many languages (accents, so the search keys are exercised), each
# made unmistakably synthetic by its suffix: "Müller-Synthetic0000042".
FAMILY_STEMS = (
    "Abara", "Berg", "Çelik", "Dvořák", "Eriksen", "Fernández", "García", "Hoang",
    "Ibáñez", "Jansen", "Kowalski", "Lefèvre", "Müller", "Nakamura", "Østergaard",
    "Papadopoulos", "Quispe", "Rossi", "Šimić", "Tanaka", "Umarov", "Varga", "Wójcik",
    "Xu", "Yılmaz", "Zhang",
)  # fmt: skip
GIVEN_NAMES = ("Alex", "Sam", "Robin", "Kim", "Jo", "Noa", "Zoë", "René", "Aurélie", "Jiří")
# Columns the seeder leaves at their default on purpose (nobody is named as the author).
LEFT_AT_DEFAULT = {"created_by", "opened_by", "last_change_by", "recorded_by", "set_by"}


@dataclass(frozen=True)
class Snapshot:
    """The precomputed columns of a workup, as snapshot.refresh_snapshot stores them."""

    progress_done: int
    progress_applicable: int
    suggested: tuple[str, ...]
    not_yet: tuple[str, ...] = ()
    suggestion_rules: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """A stage's results as rows will hold them (values already JSON), and its snapshot."""

    results: tuple[tuple[str, str], ...]
    snapshot: Snapshot
    suggested_json: str
    not_yet_json: str = "[]"
    rules_json: str = "{}"


@dataclass(frozen=True)
class Stage:
    """One workup at some point: results so far, marks, and the rows either way."""

    adult: bool
    sex: str
    # (step code, mark status, reason), e.g. the next step ordered.
    marks: tuple[tuple[str, str, str], ...]
    # Keyed by "is the tryptase result repeated?" (the same if there is no tryptase).
    variants: dict[bool, Variant]
    # How many times more often than a vignette's stage this one is drawn.
    weight: int = 1


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
        protocol = reads.current_protocol()
        stages = build_stages(get_spec(protocol))
        site_ids = [
            Site.objects.get_or_create(
                code=f"synthetic-{i}", defaults={"name": f"Synthetic Site {i}"}
            )[0].pk
            for i in range(1, sites + 1)
        ]
        for username in member:
            user = get_user_model().objects.get(username=username)
            for site_id in site_ids:
                Membership.objects.get_or_create(
                    user=user, site_id=site_id, defaults={"role": Membership.Role.CLINICIAN}
                )
        writer = Writer(
            step_ids=dict(protocol.stepdefinition_set.values_list("code", "pk")),
            protocol_id=protocol.pk,
            warn=lambda text: self.stderr.write(self.style.WARNING(text)),
        )
        if connection.vendor == "sqlite":
            # A larger page cache for this connection (the default is 2 MB): the
            # indexes of a few hundred thousand rows stay in memory while they grow.
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA cache_size = -262144")
        first = Patient.objects.filter(mrn__startswith=MRN_PREFIX).count()
        created = 0
        while created < patients:
            size = min(BATCH, patients - created)
            with transaction.atomic():
                for n in range(first + created, first + created + size):
                    writer.add_patient(rng, n, site_ids[n % len(site_ids)], stages)
                writer.flush()
            created += size
            if options["verbosity"] > 1:
                self.stdout.write(f"{created} patients ({time.perf_counter() - started:.1f} s)")
        writer.ids.reset_sequences()
        # Planner statistics now: SQLite never gathers them by itself and, without them,
        # sorts every patient for a worklist page; benchmarks run right after seeding.
        update_planner_statistics()
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {patients} synthetic patients over {sites} site(s) "
                f"in {time.perf_counter() - started:.1f} s."
            )
        )


class Table:
    """Rows for one model's table, in the column order given, plus every other column.

    A column the seeder does not name gets the field's default. Unless it is one we
    leave at the default on purpose, that is worth a warning: it may be a new
    precomputed column that lists read, which the seeder must learn to fill.
    """

    def __init__(self, model: type[Model], columns: list[str], warn) -> None:
        fields = {f.attname: f for f in model._meta.concrete_fields}
        unknown = set(columns) - set(fields)
        if unknown:
            raise CommandError(f"{model.__name__} has no column(s) {sorted(unknown)}.")
        rest = [f for name, f in fields.items() if name not in columns]
        for f in rest:
            if not f.null and not f.has_default():
                raise CommandError(
                    f"seed_demo does not fill {model.__name__}.{f.name}, which has no "
                    "default: teach it how (workup/management/commands/seed_demo.py)."
                )
            if f.name not in LEFT_AT_DEFAULT:
                warn(f"seed_demo: {model.__name__}.{f.name} is left at its default.")
        self.model = model
        self.columns = [fields[c].column for c in columns] + [f.column for f in rest]
        self.defaults = tuple(f.get_db_prep_save(f.get_default(), connection) for f in rest)
        self.rows: list[tuple] = []

    def add(self, *values) -> None:
        self.rows.append(values + self.defaults)

    def flush(self) -> None:
        insert(self.model, self.columns, self.rows)
        self.rows = []


class Writer:
    """Turns stages into rows for every table a workup lives in."""

    MODELS = (Patient, Workup, StepRecord, StepMark, WorkupSuggestion)

    def __init__(self, *, step_ids: dict[str, int], protocol_id: int, warn) -> None:
        self.step_ids = step_ids
        self.protocol_id = protocol_id
        self.ids = IdBlock(self.MODELS)
        self.today_ordinal = timezone.localdate().toordinal()
        self.sqlite = connection.vendor == "sqlite"
        self.keys = {name: search_key(name) for name in GIVEN_NAMES}
        self.patients = Table(
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
                "mrn_key",
                "family_key",
                "given_key",
            ],
            warn,
        )
        self.workups = Table(
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
                "not_yet_steps",
                "suggestion_rules",
                "last_change_at",
            ],
            warn,
        )
        self.records = Table(
            StepRecord,
            ["id", "workup_id", "step_id", "values", "performed_on", "note", "recorded_at"]
            + ["updated_at"],
            warn,
        )
        self.marks = Table(
            StepMark, ["id", "workup_id", "step_id", "status", "reason", "set_at"], warn
        )
        self.suggestions = Table(WorkupSuggestion, ["id", "workup_id", "step_code", "state"], warn)
        self._cum_weights: list[int] | None = None

    def cum_weights(self, stages: list[Stage]) -> list[int]:
        if self._cum_weights is None:
            self._cum_weights = list(accumulate(stage.weight for stage in stages))
        return self._cum_weights

    def add_patient(self, rng: random.Random, n: int, site_id: int, stages: list[Stage]) -> None:
        random_ = rng.random
        stage = rng.choices(stages, cum_weights=self.cum_weights(stages))[0]
        variant = stage.variants[random_() < REPEATED_TRYPTASE_SHARE]
        referred_only = random_() < REFERRED_SHARE
        # Referred, then the workup opened; results 1 to 30 days apart, the last before today.
        steps = 0 if referred_only else len(variant.results) + len(stage.marks)
        day = self.today_ordinal - 31 * (steps + 1) - int(random_() * 700)
        referred = self.moment(day - int(random_() * 30), random_)
        # Adults 19-85, children 3 months to 17: the rules only ask "18 or over?".
        age_days = (
            19 * 365 + int(random_() * 66 * 365) if stage.adult else 90 + int(random_() * 6000)
        )
        patient_id = self.ids.next(Patient)
        mrn = f"{MRN_PREFIX}{n:08d}"
        family = f"{FAMILY_STEMS[n % len(FAMILY_STEMS)]}-Synthetic{n:07d}"
        given = GIVEN_NAMES[int(random_() * len(GIVEN_NAMES))]
        self.patients.add(
            patient_id,
            site_id,
            mrn,
            family,
            given,
            date.fromordinal(self.today_ordinal - age_days).isoformat(),
            stage.sex,
            referred,
            referred,
            search_key(mrn),
            search_key(family),
            self.keys[given],
        )
        if not referred_only:
            self._add_workup(random_, patient_id, stage, variant, day)

    def _add_workup(self, random_, patient_id: int, stage: Stage, variant: Variant, day: int):
        workup_id = self.ids.next(Workup)
        opened_at = last_change = self.moment(day, random_)
        for step_code, values_json in variant.results:
            day += 1 + int(random_() * 30)
            last_change = self.moment(day, random_)
            self.records.add(
                self.ids.next(StepRecord),
                workup_id,
                self.step_ids[step_code],
                values_json,
                date.fromordinal(day).isoformat(),
                "",
                last_change,
                last_change,
            )
        for step_code, status, reason in stage.marks:
            day += 1 + int(random_() * 30)
            last_change = self.moment(day, random_)
            self.marks.add(
                self.ids.next(StepMark),
                workup_id,
                self.step_ids[step_code],
                status,
                reason,
                last_change,
            )
        snapshot = variant.snapshot
        self.workups.add(
            workup_id,
            patient_id,
            self.protocol_id,
            Workup.Status.OPEN,
            opened_at,
            False,
            "",
            # Opening is version 1; every write since bumped it.
            1 + len(variant.results) + len(stage.marks),
            snapshot.progress_done,
            snapshot.progress_applicable,
            variant.suggested_json,
            variant.not_yet_json,
            variant.rules_json,
            last_change,
        )
        for state, codes in (
            (WorkupSuggestion.State.SUGGESTED, snapshot.suggested),
            (WorkupSuggestion.State.NOT_YET, snapshot.not_yet),
        ):
            for code in codes:
                self.suggestions.add(self.ids.next(WorkupSuggestion), workup_id, code, state)

    def moment(self, day_ordinal: int, random_) -> str:
        """A time between 08:00 and 18:00 UTC that day, written as Django writes it.

        Strings, not datetime objects: the driver's adapters cost more than the insert.
        SQLite: naive UTC, str() (DatabaseOperations.adapt_datetimefield_value), so
        that lookups compare like with like; PostgreSQL: ISO 8601 with the offset.
        """
        moment = EPOCH + timedelta(days=day_ordinal - EPOCH_ORDINAL, minutes=random_() * 600)
        return str(moment) if self.sqlite else f"{moment.isoformat()}+00:00"

    def flush(self) -> None:
        # Parents first: PostgreSQL checks foreign keys at the end of the transaction
        # anyway, but SQLite checks them as rows arrive unless deferred.
        for table in (self.patients, self.workups, self.records, self.marks, self.suggestions):
            table.flush()


def expand_repeats(findings, repeated: bool) -> list[tuple[str, dict]]:
    """The results in the order they were made; a repeated tryptase has an earlier value."""
    results = []
    for step_code, values in findings:
        if repeated and step_code == "serum_tryptase":
            results.append(
                (step_code, dict(values, value_ng_ml=round(values["value_ng_ml"] * 0.9, 1)))
            )
        results.append((step_code, values))
    return results


class IdBlock:
    """Primary keys handed out in order, so rows of one batch can refer to each other."""

    def __init__(self, models) -> None:
        self.models = list(models)
        self.last = {
            model: model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            for model in self.models
        }

    def next(self, model) -> int:
        self.last[model] += 1
        return self.last[model]

    def reset_sequences(self) -> None:
        """PostgreSQL sequences must move past the ids we chose ourselves."""
        statements = connection.ops.sequence_reset_sql(no_style(), self.models)
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def insert(model, columns: list[str], rows: list[tuple]) -> None:
    """COPY on PostgreSQL (several times faster than INSERT), executemany elsewhere."""
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", rows)


def build_stages(spec) -> list[Stage]:
    """Every prefix of every vignette's findings, each also with its next step ordered;
    and a complete workup, drawn as often as a tenth of all stages."""
    stages = []
    for case in version_cases(spec):
        patient = PatientInput(case["patient"]["age_years"], case["patient"]["sex"])
        findings = entered_values(spec, case["findings"].items())
        for done in range(len(findings) + 1):
            prefix = findings[:done]
            stage = make_stage(spec, patient, prefix, ())
            stages.append(stage)
            suggested = stage.variants[False].snapshot.suggested
            if suggested:
                ordered = (suggested[0], StepMark.Status.ORDERED, "")
                stages.append(make_stage(spec, patient, prefix, (ordered,)))
    complete = make_stage(
        spec,
        PatientInput(COMPLETE_PATIENT["age_years"], COMPLETE_PATIENT["sex"]),
        entered_values(spec, COMPLETE_RESULTS),
        COMPLETE_MARKS,
        weight=max(1, len(stages) // 9),
    )
    assert not complete.variants[False].snapshot.suggested, (
        "the complete workup still suggests steps"
    )
    return [*stages, complete]


def version_cases(spec) -> list[dict]:
    """The version's own case library (the vignettes file when it has none)."""
    library = [case.as_case() for case in ProtocolCase.objects.filter(protocol_id=spec.id)]
    return sorted(library, key=lambda c: c["id"]) or json.loads(CASES_FILE.read_text())


def entered_values(spec, findings) -> tuple[tuple[str, dict], ...]:
    """Only what a clinician types: calculated fields are the engine's to derive, and
    steps or fields the version does not have are left out (one list serves v1 and v2)."""
    return tuple(
        (
            code,
            {
                k: v
                for k, v in values.items()
                if spec.step(code).field(k) and not spec.step(code).field(k).is_calculated
            },
        )
        for code, values in findings
        if code in spec.steps_by_code
    )


def make_stage(spec, patient: PatientInput, findings, marks, weight: int = 1) -> Stage:
    variants = {}
    has_tryptase = any(code == "serum_tryptase" for code, _ in findings)
    for repeated in (False, True) if has_tryptase else (False,):
        results = expand_repeats(findings, repeated)
        snapshot = snapshot_of(spec, patient, results, marks)
        variants[repeated] = Variant(
            results=tuple((code, json.dumps(values)) for code, values in results),
            snapshot=snapshot,
            suggested_json=json.dumps(list(snapshot.suggested)),
            not_yet_json=json.dumps(list(snapshot.not_yet)),
            rules_json=json.dumps(snapshot.suggestion_rules),
        )
    variants.setdefault(True, variants[False])
    return Stage(patient.age_years >= 18, patient.sex, marks, variants, weight)


def snapshot_of(spec, patient: PatientInput, results, marks) -> Snapshot:
    """What snapshot.refresh_snapshot would store: the same engine and checklist builder."""
    day = date(2026, 1, 1)
    records = [
        RecordInput(code, values, day + timedelta(days=i), sequence=i + 1)
        for i, (code, values) in enumerate(results)
    ]
    statuses = {code: status for code, status, _ in marks}
    evaluation = evaluate(spec, build_facts(spec, patient=patient, records=records), marks=statuses)
    checklist = checklist_builder.build_checklist(
        spec,
        evaluation,
        [
            checklist_builder.RecordView(r.sequence, r.step_code, r.values, r.performed_on)
            for r in records
        ],
        {code: checklist_builder.MarkView(status, reason) for code, status, reason in marks},
    )
    return Snapshot(
        progress_done=checklist.progress_done,
        progress_applicable=checklist.progress_applicable,
        suggested=tuple(item.code for item in checklist.suggested),
        not_yet=tuple(item.code for item in checklist.not_yet),
        suggestion_rules={
            item.code: [r.code for r in item.reasons] for item in checklist.suggested
        },
    )


# A complete workup (as in bench/pdf_bench.py): an adult with typical skin lesions, worked
# up to the marrow, every step documented or marked; results in the order they were made,
# baseline tryptase every few months (one not at baseline).
COMPLETE_PATIENT = {"age_years": 58, "sex": "female"}
COMPLETE_RESULTS = (
    ("serum_tryptase", {"value_ng_ml": 38.0, "is_baseline": True}),
    (
        "history",
        {
            "mediator_symptoms": True,
            "anaphylaxis": True,
            "anaphylaxis_trigger": "hymenoptera",
            "episode_urticaria_angioedema_pruritus": False,
            "episode_presyncope_syncope": True,
            "episode_flushing": True,
            "unexplained_osteoporosis": False,
            "osteoporosis_other_cause": False,
        },
    ),
    (
        "skin_exam",
        {
            "typical_lesions": True,
            "lesion_pattern": "mpcm_monomorphic",
            "lesion_count": 40,
            "darier_sign": "positive",
            "extensive_involvement": False,
        },
    ),
    ("physical_exam", {"hepatomegaly": False, "splenomegaly": False, "lymphadenopathy": False}),
    ("serum_tryptase", {"value_ng_ml": 41.5, "is_baseline": True}),
    (
        "urine_mediators",
        {
            "n_methylhistamine_ug_g_creat": 210.0,
            "collected_during_symptoms": False,
            "any_elevated": True,
        },
    ),
    ("cbc_diff", {"hemoglobin_g_dl": 13.1, "platelets_10e9_l": 240.0, "anc_10e9_l": 3.9}),
    (
        "chemistry_liver",
        {"alp_u_l": 88.0, "alt_u_l": 24.0, "albumin_g_dl": 4.2, "liver_dysfunction": False},
    ),
    ("skin_biopsy", {"mc_infiltrate_increased": True, "kit_d816v_lesional": "positive"}),
    ("acute_tryptase", {"value_ng_ml": 61.5, "hours_after_onset": 2.0}),
    (
        "kit_d816v_peripheral_blood",
        {"result": "positive", "method": "ddpcr", "high_sensitivity": True, "vaf_percent": 0.8},
    ),
    ("hat_genotyping", {"extra_alpha_copies": 0, "hat_present": False}),
    ("serum_tryptase", {"value_ng_ml": 52.0, "is_baseline": False}),
    (
        "bone_marrow_biopsy",
        {
            "mc_aggregates_ge15": True,
            "atypical_morphology_gt25pct": True,
            "kit_d816v_bm": "positive",
            "cd25_cd2_cd30_aberrant": True,
            "kit_bm_method": "ddpcr",
            "kit_bm_vaf_percent": 1.2,
            "cd25_aberrant": True,
            "cd2_aberrant": False,
            "cd30_aberrant": True,
            "mc_infiltration_pct": 15.0,
            "associated_myeloid_neoplasm": False,
            "tk_fusion_detected": False,
        },
    ),
    ("serum_tryptase", {"value_ng_ml": 36.0, "is_baseline": True}),
    ("dexa", {"lowest_t_score": -1.8, "site": "lumbar spine L1-L4"}),
    (
        "abdominal_imaging",
        {
            "modality": "ultrasound",
            "hepatomegaly": False,
            "splenomegaly": False,
            "lymphadenopathy_gt2cm": False,
            "ascites": False,
        },
    ),
    ("serum_tryptase", {"value_ng_ml": 34.5, "is_baseline": True}),
    ("epinephrine_autoinjector", {"prescribed": True, "count": 2, "trained": True}),
    (
        "trigger_counseling",
        {"completed": True, "topics": "Hymenoptera, heat, alcohol, NSAIDs, opioids, anaesthesia"},
    ),
    ("anesthesia_alert", {"documented": True}),
    (
        "venom_specific_ige",
        {"honeybee_ige_kua_l": 0.2, "wasp_ige_kua_l": 8.4, "skin_test_done": True},
    ),
    ("venom_immunotherapy_referral", {"referred": True, "centre": "Allergy centre"}),
    ("specialist_referral", {"referred": True, "centre": "ECNM reference centre"}),
    ("acute_tryptase", {"value_ng_ml": 48.0, "hours_after_onset": 1.5}),
    ("cbc_diff", {"hemoglobin_g_dl": 12.8, "platelets_10e9_l": 232.0, "anc_10e9_l": 4.1}),
    ("serum_tryptase", {"value_ng_ml": 33.0, "is_baseline": True}),
    ("serum_tryptase", {"value_ng_ml": 35.5, "is_baseline": True}),
    ("serum_tryptase", {"value_ng_ml": 31.0, "is_baseline": True}),
)
COMPLETE_MARKS = (
    ("medical_alert_id", "declined", "Prefers a wallet card to a bracelet; card given."),
)
