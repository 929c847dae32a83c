"""The protocol: what a workup contains, as versioned data.

Every row here belongs to one protocol version (code + version). Fixtures use
natural keys (protocol code, version, then the row's own code) so that they load
into an empty or a populated database and diff cleanly in review.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models.signals import pre_save
from simple_history.models import HistoricalRecords


class ProtocolLocked(PermissionDenied):
    """A published or retired protocol version is immutable: change a new draft instead.

    A PermissionDenied, so that a view which lets one through answers 403, never 500.
    """


# Set by `loading_version()`: the protocol version whose rows a loader may write
# although it is published, and whether it may only add rows (the version is in use).
_loading_version: ContextVar[tuple[int, bool] | None] = ContextVar(
    "loading_protocol_version", default=None
)


def _loading(protocol_id: int | None, *, adding: bool) -> bool:
    """Whether a loader may write this row of a published version (`adding`: a new row
    of a kind that may be added to a version in use)."""
    loading = _loading_version.get()
    if loading is None or protocol_id is None or loading[0] != protocol_id:
        return False
    return adding or not loading[1]


class ProtocolQuerySet(models.QuerySet):
    def locked(self) -> "ProtocolQuerySet":
        return self.exclude(status=Protocol.Status.DRAFT)

    def update(self, **kwargs):
        _refuse_bulk(self, "changed")
        return super().update(**kwargs)

    def delete(self):
        _refuse_bulk(self, "deleted")
        return super().delete()


class ProtocolManager(models.Manager.from_queryset(ProtocolQuerySet)):
    def get_by_natural_key(self, code: str, version: int) -> "Protocol":
        return self.get(code=code, version=version)


class Protocol(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        RETIRED = "retired", "Retired"

    code = models.SlugField(max_length=50)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    disclaimer = models.TextField(
        blank=True,
        help_text="Shown on every checklist and print. Leave empty for the default wording.",
    )
    trend_title = models.CharField(
        max_length=200,
        blank=True,
        help_text="Heading of the print's chart of values over time, e.g. "
        "“Serum tryptase over time”. The chart is printed when the version has trend series.",
    )
    trend_value_label = models.CharField(
        max_length=60,
        blank=True,
        help_text="Heading of the value column in the table beside the chart, e.g. “Tryptase”.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    published_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    objects = ProtocolManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["code", "version"], name="protocol_code_version_unique")
        ]
        ordering = ["code", "-version"]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version}, {self.get_status_display().lower()})"

    # What publishing freezes. Only the status may move on (published -> retired).
    CONTENT_FIELDS = (
        "code",
        "version",
        "title",
        "description",
        "disclaimer",
        "trend_title",
        "trend_value_label",
        "published_at",
    )

    def save(self, *args, **kwargs):
        stored = None
        if self.pk is not None:
            stored = (
                Protocol.objects.filter(pk=self.pk).values("status", *self.CONTENT_FIELDS).first()
            )
        if stored and stored["status"] != self.Status.DRAFT:
            changed = [f for f in self.CONTENT_FIELDS if stored[f] != getattr(self, f)]
            if changed:
                raise ProtocolLocked(
                    f"{self.code} v{self.version} is {stored['status']}: its "
                    f"{', '.join(changed)} cannot change. Make a new draft from it instead."
                )
            retiring = (stored["status"], self.status) == (
                self.Status.PUBLISHED,
                self.Status.RETIRED,
            )
            if self.status != stored["status"] and not retiring:
                raise ProtocolLocked(
                    f"{self.code} v{self.version} is {stored['status']}: it cannot become "
                    f"{self.status}. Only a published version can be retired."
                )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        stored = Protocol.objects.filter(pk=self.pk).values_list("status", flat=True).first()
        if stored not in (None, self.Status.DRAFT):
            raise ProtocolLocked(f"{self.code} v{self.version} is {stored}: it cannot be deleted.")
        return super().delete(*args, **kwargs)

    def natural_key(self) -> tuple[str, int]:
        return (self.code, self.version)

    @property
    def is_locked(self) -> bool:
        return self.status != self.Status.DRAFT


def _refuse_bulk(rows: models.QuerySet, verb: str) -> None:
    """Refuse an update() or delete() that touches a published or retired version."""
    lookup = "" if rows.model is Protocol else f"{rows.model.protocol_lookup}__"
    loading = _loading_version.get()
    may_change = loading[0] if loading and not loading[1] else None
    found = (
        rows.exclude(**{f"{lookup}status": Protocol.Status.DRAFT})
        .exclude(**{f"{lookup}pk": may_change})
        .values_list(f"{lookup}code", f"{lookup}version", f"{lookup}status")
        .order_by()
        .first()
    )
    if found is not None:
        code, version, status = found
        raise ProtocolLocked(
            f"{code} v{version} is {status}: its content cannot be {verb}. "
            "Make a new draft from it instead."
        )


@contextmanager
def loading_version(protocol: Protocol, *, add_only: bool = False) -> Iterator[None]:
    """Let a loader write a published version's rows: any row while no workup uses it
    (the rule of `load_protocol`), or, with `add_only`, only new rows (cases, which
    change nothing a workup sees) while workups use it.
    """
    if protocol.workups.exists() and not add_only:
        raise ProtocolLocked(
            f"{protocol.code} v{protocol.version} is {protocol.status} and workups use it: "
            "its content cannot be changed. Make a new draft from it instead."
        )
    token = _loading_version.set((protocol.pk, add_only))
    try:
        yield
    finally:
        _loading_version.reset(token)


class LockedWithProtocolQuerySet(models.QuerySet):
    def update(self, **kwargs):
        _refuse_bulk(self, "changed")
        return super().update(**kwargs)

    def delete(self):
        _refuse_bulk(self, "deleted")
        return super().delete()


class LockedWithProtocol:
    """Refuses to save or delete a row of a published or retired protocol version.

    The one place that makes published content immutable in code (the admin
    shows it read-only too). Fixtures load raw and bypass save(); the pre_save
    guard below lets them in only while no workup uses the version.
    """

    protocol_lookup = "protocol"  # the path from this model to its Protocol
    # Whether a loader may add rows to a published version that workups use (cases).
    addable_in_use = False

    def lock_protocol_id(self) -> int | None:
        return self.protocol_id

    def save(self, *args, **kwargs):
        self._refuse_if_locked("changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._refuse_if_locked("deleted")
        return super().delete(*args, **kwargs)

    def _refuse_if_locked(self, verb: str) -> None:
        protocol_ids = {self.lock_protocol_id()}
        if self.pk is not None:  # the version it belongs to now, if it is being moved
            protocol_ids.add(
                type(self)
                ._base_manager.filter(pk=self.pk)
                .values_list(self.protocol_lookup, flat=True)
                .first()
            )
        protocol_ids.discard(None)
        locked = next(
            (
                protocol
                for protocol in Protocol.objects.filter(pk__in=protocol_ids).locked()
                if not _loading(protocol.pk, adding=self.pk is None and self.addable_in_use)
            ),
            None,
        )
        if locked is not None:
            raise ProtocolLocked(
                f"{locked.code} v{locked.version} is {locked.status}: its "
                f"{self._meta.verbose_name} '{self}' cannot be {verb}. "
                "Make a new draft from it instead."
            )


class _ProtocolPartManager(models.Manager.from_queryset(LockedWithProtocolQuerySet)):
    """Natural key lookups for rows identified by (protocol code, version, code)."""

    def get_by_natural_key(self, protocol_code: str, version: int, code: str):
        return self.get(protocol__code=protocol_code, protocol__version=version, code=code)


class _ProtocolPart(LockedWithProtocol, models.Model):
    protocol = models.ForeignKey(Protocol, on_delete=models.CASCADE)
    code = models.SlugField(max_length=60)

    objects = _ProtocolPartManager()

    class Meta:
        abstract = True

    def natural_key(self) -> tuple:
        return (*self.protocol.natural_key(), self.code)

    natural_key.dependencies = ["workup.protocol"]


class ProtocolSource(_ProtocolPart):
    """A cited source, e.g. code "ECNM14" for the ECNM diagnostic algorithm."""

    citation = models.TextField(help_text="Authors, title, journal, year, volume and pages.")
    url = models.URLField(
        max_length=300, blank=True, help_text="Link to the source (doi.org, PubMed, PMC)."
    )
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="source_code_unique")
        ]
        ordering = ["protocol", "code"]

    def __str__(self) -> str:
        return f"[{self.code}]"


class StepGroup(_ProtocolPart):
    """A heading the checklist lists suggestions under, in order, e.g. "Start now: safety"."""

    title = models.CharField(max_length=200)
    order = models.PositiveIntegerField(
        help_text="Lower comes first: put what starts at once first."
    )
    description = models.CharField(
        max_length=300, blank=True, help_text="One line under the heading, for the clinician."
    )
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="step_group_code_unique")
        ]
        ordering = ["protocol", "order"]

    def __str__(self) -> str:
        return self.title


class StepDefinition(_ProtocolPart):
    title = models.CharField(max_length=200)
    section = models.CharField(max_length=100)
    order = models.PositiveIntegerField()
    help_text = models.TextField(blank=True)
    applies_to = models.CharField(max_length=200, blank=True)
    repeatable = models.BooleanField(
        default=False, help_text="May be recorded more than once (e.g. serum tryptase)."
    )
    counts_latest_where = models.SlugField(
        max_length=60,
        blank=True,
        help_text=(
            "For a repeatable step: a boolean field code. The latest record where it is true "
            "is the one the rules see (e.g. is_baseline); without one, the latest record."
        ),
    )
    is_safety_item = models.BooleanField(default=False)
    source = models.CharField(max_length=300, blank=True)
    group = models.SlugField(
        max_length=60,
        blank=True,
        help_text="Code of the step group its suggestion is listed under (safety first).",
    )
    # "Not yet: record X" (missing data is never shown as "not indicated").
    deciding_inputs = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            'What must be recorded before the rules can decide this step: [{"label": '
            '"baseline serum tryptase", "recorded": JSONLogic that is true once it is}]. '
            "While one is missing and no rule suggests the step, it reads "
            '"not yet: record <label>".'
        ),
    )
    deciding_applies = models.JSONField(
        null=True,
        blank=True,
        help_text="JSONLogic: when the deciding inputs apply (empty: always).",
    )
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="step_code_unique"),
        ]
        ordering = ["protocol", "order", "code"]

    def __str__(self) -> str:
        return self.title


class FieldDefinitionManager(models.Manager.from_queryset(LockedWithProtocolQuerySet)):
    def get_by_natural_key(self, protocol_code: str, version: int, step_code: str, code: str):
        return self.get(
            step__protocol__code=protocol_code,
            step__protocol__version=version,
            step__code=step_code,
            code=code,
        )


class FieldDefinition(LockedWithProtocol, models.Model):
    class Kind(models.TextChoices):
        DECIMAL = "decimal", "Decimal number"
        INTEGER = "integer", "Whole number"
        BOOLEAN = "boolean", "Yes / no"
        CHOICE = "choice", "One of a list"
        MULTI_CHOICE = "multi_choice", "Several of a list"
        DATE = "date", "Date"
        TEXT = "text", "Text"

    step = models.ForeignKey(StepDefinition, on_delete=models.CASCADE, related_name="fields")
    code = models.SlugField(max_length=60)
    label = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    unit = models.CharField(max_length=40, blank=True)
    min_value = models.FloatField(null=True, blank=True, help_text="Plausible minimum.")
    max_value = models.FloatField(null=True, blank=True, help_text="Plausible maximum.")
    choices = models.JSONField(
        default=list, blank=True, help_text='For choice fields: [["value", "Label"], ...]'
    )
    required = models.BooleanField(default=False)
    help_text = models.TextField(blank=True)
    order = models.PositiveIntegerField(default=0)
    calculation = models.SlugField(
        max_length=60,
        blank=True,
        help_text="Code of the calculation that fills this field; it is never typed in.",
    )
    is_key_result = models.BooleanField(
        default=False, help_text="Shown on the checklist next to the step."
    )
    shown_if_field = models.SlugField(
        max_length=60,
        blank=True,
        help_text="Ask this field only when that field of the step has one of the values below.",
    )
    shown_if_values = models.JSONField(
        default=list, blank=True, help_text='The values of that field, e.g. ["other"].'
    )
    replaces = models.SlugField(
        max_length=60,
        blank=True,
        help_text=(
            "Code of the field this one replaces in the previous version: moving a workup "
            "carries its value over (multiplied by the factor below)."
        ),
    )
    replaces_factor = models.FloatField(
        null=True, blank=True, help_text="e.g. 1000 for ng/mg to pg/mg; empty: 1."
    )
    group = models.CharField(
        max_length=100,
        blank=True,
        help_text="Fields with the same group, one after another, are asked together under "
        "this title (e.g. “REMA items”).",
    )
    history = HistoricalRecords()

    objects = FieldDefinitionManager()

    protocol_lookup = "step__protocol"

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "code"], name="field_code_unique")]
        ordering = ["step", "order", "code"]

    def __str__(self) -> str:
        return f"{self.step.code}.{self.code}"

    def lock_protocol_id(self) -> int | None:
        if self.step_id is None:
            return None
        return StepDefinition.objects.filter(pk=self.step_id).values_list("protocol", flat=True)[0]

    def natural_key(self) -> tuple:
        return (*self.step.natural_key(), self.code)

    natural_key.dependencies = ["workup.stepdefinition"]


class Calculation(_ProtocolPart):
    """A derived value (e.g. the REMA score), computed from the facts, never typed in."""

    label = models.CharField(max_length=200)
    expression = models.JSONField(help_text="JSONLogic over the facts and earlier calculations.")
    unit = models.CharField(max_length=40, blank=True)
    formula = models.TextField(blank=True, help_text="The formula in words, shown with the value.")
    order = models.PositiveIntegerField()
    display = models.BooleanField(default=False, help_text="Show on the checklist and print.")
    source = models.CharField(max_length=300, blank=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="calculation_code_unique")
        ]
        ordering = ["protocol", "order"]

    def __str__(self) -> str:
        return self.label


class Rule(_ProtocolPart):
    class Action(models.TextChoices):
        SUGGEST = "suggest", "Suggest the step"
        NOT_INDICATED = "not_indicated", "Step not indicated"
        NOT_YET = "not_yet", "Step not yet decidable (label names what is missing)"
        NOTE = "note", "Show a note on the step"
        HOUSEKEEPING = "housekeeping", "Describes how the checklist works (not evaluated)"

    title = models.CharField(max_length=200)
    action = models.CharField(max_length=20, choices=Action.choices)
    target_step = models.ForeignKey(
        StepDefinition, on_delete=models.CASCADE, null=True, blank=True, related_name="rules"
    )
    condition = models.JSONField(default=dict, blank=True, help_text="JSONLogic over the facts.")
    label = models.JSONField(
        null=True,
        blank=True,
        help_text="Text shown with the outcome: a string, or JSONLogic that gives one (or null).",
    )
    rationale = models.TextField(help_text="Why, in plain words for the clinician.")
    details = models.TextField(
        blank=True,
        help_text="Notes for reviewers (verification status, caveats); shown under rule details.",
    )
    source = models.CharField(max_length=300)
    priority = models.IntegerField(default=0, help_text="Lower comes first among reasons.")
    enabled = models.BooleanField(default=True)
    repeat_when_done = models.BooleanField(
        default=False, help_text="May suggest its step again although the step is done."
    )
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="rule_code_unique")
        ]
        ordering = ["protocol", "priority", "code"]

    def __str__(self) -> str:
        return f"{self.code}: {self.title}"


class CriterionGroup(_ProtocolPart):
    """A table of WHO / ICC items on the checklist and the print, e.g. "B-findings"."""

    title = models.CharField(max_length=200)
    order = models.PositiveIntegerField()
    counts_label = models.CharField(
        max_length=100,
        blank=True,
        help_text="When set, the documented major and minor items of this group are counted "
        "under this name below the tables, e.g. “SM items”.",
    )
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="criterion_group_code_unique")
        ]
        ordering = ["protocol", "order"]

    def __str__(self) -> str:
        return self.title


class CriterionItem(_ProtocolPart):
    """A WHO 2022 / ICC 2022 item to document side by side. Never a verdict."""

    class Kind(models.TextChoices):
        MAJOR = "major", "Major"
        MINOR = "minor", "Minor"
        EXCLUSION = "exclusion", "Exclusion flag"
        FINDING = "finding", "Finding"
        FACT = "fact", "Fact"

    group = models.SlugField(
        max_length=60, help_text="Code of the version's criterion group the item is listed in."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    label = models.CharField(max_length=300)
    order = models.PositiveIntegerField()
    who_text = models.TextField(blank=True)
    icc_text = models.TextField(blank=True)
    who_logic = models.JSONField(
        null=True,
        blank=True,
        help_text="JSONLogic: true = documented, false = not documented, null = not assessed, "
        '"not_applicable". Null logic: the item is not part of this classification.',
    )
    icc_logic = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=300, blank=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="criterion_code_unique")
        ]
        ordering = ["protocol", "order"]

    def __str__(self) -> str:
        return self.label


def always_true() -> bool:
    """Default condition: always shown (a callable, so no instance is shared)."""
    return True


class Disagreement(_ProtocolPart):
    """Where sources disagree: each position with its source; the app picks none."""

    title = models.CharField(max_length=200)
    positions = models.TextField(help_text="Each position with its source.")
    app_behaviour = models.TextField(help_text="What the checklist does about it.")
    step = models.ForeignKey(
        StepDefinition,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="disagreements",
    )
    condition = models.JSONField(
        default=always_true, blank=True, help_text="JSONLogic: when to show it next to its step."
    )
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="disagreement_code_unique")
        ]
        ordering = ["protocol", "code"]

    def __str__(self) -> str:
        return f"{self.code}: {self.title}"


class TrendSeries(_ProtocolPart):
    """One series of the print's chart of values over time: a numeric field of one step.

    A record belongs to the first series (by order) whose step, and `where` value if
    set, it matches. Series are told apart by marker shape and fill, not colour alone.
    """

    class Marker(models.TextChoices):
        CIRCLE = "circle", "Circle"
        TRIANGLE = "triangle", "Triangle"

    label = models.CharField(max_length=100, help_text="Shown in the legend and the table.")
    order = models.PositiveIntegerField()
    step = models.ForeignKey(StepDefinition, on_delete=models.CASCADE, related_name="trend_series")
    field_code = models.SlugField(max_length=60, help_text="The step's numeric field drawn.")
    where_field = models.SlugField(
        max_length=60,
        blank=True,
        help_text="Only records whose field of this code holds the value below (e.g. is_baseline).",
    )
    where_value = models.JSONField(null=True, blank=True, help_text="e.g. true")
    marker = models.CharField(max_length=10, choices=Marker.choices, default=Marker.CIRCLE)
    filled = models.BooleanField(default=True)
    connect = models.BooleanField(default=False, help_text="Join the points by a line.")
    glyph = models.CharField(
        max_length=4, default="●", help_text="The marker as a character: ● ○ ▲ △."
    )
    detail_fields = models.JSONField(
        default=list,
        blank=True,
        help_text='Other values worth a word in the table: [["hours_after_onset", "after onset"]].',
    )
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="trend_series_code_unique")
        ]
        ordering = ["protocol", "order"]
        verbose_name_plural = "trend series"

    def __str__(self) -> str:
        return self.label


class ProtocolCase(_ProtocolPart):
    """A known case the version must get right (the case library), run before publishing.

    The shape of a vignette (fixtures/cases/): the patient, the findings per
    step, and the steps that must and must not be suggested. It passes when
    every expected_suggested step is suggested, no expected_not_suggested step
    is, and every expected_not_yet step reads "not yet: record X".
    """

    summary = models.TextField(blank=True)
    patient = models.JSONField(
        default=dict, help_text='{"age_years": 54, "sex": "male"}; optionally "adult_pathway".'
    )
    findings = models.JSONField(
        default=dict,
        blank=True,
        help_text='Values per step code, e.g. {"serum_tryptase": {"value_ng_ml": 32}}.',
    )
    expected_suggested = models.JSONField(
        default=list, blank=True, help_text="Step codes that must be suggested."
    )
    expected_not_suggested = models.JSONField(
        default=list, blank=True, help_text="Step codes that must not be suggested."
    )
    expected_not_yet = models.JSONField(
        default=list, blank=True, help_text='Step codes that must read "not yet: record X".'
    )
    rule_refs = models.JSONField(
        default=list, blank=True, help_text="Rules the case is about (for the reader)."
    )
    source = models.TextField(blank=True)
    history = HistoricalRecords()

    # A new case changes nothing a workup sees: the case loader may add one to a
    # published version in use (never change or delete one).
    addable_in_use = True

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="case_code_unique")
        ]
        ordering = ["protocol", "code"]
        verbose_name = "protocol case"

    def __str__(self) -> str:
        return self.code

    def as_case(self) -> dict:
        """The vignette shape that `workup.core.cases` runs and the import reads."""
        return {
            "id": self.code,
            "summary": self.summary,
            "patient": self.patient,
            "findings": self.findings,
            "expected_suggested": self.expected_suggested,
            "expected_not_suggested": self.expected_not_suggested,
            "expected_not_yet": self.expected_not_yet,
            "rule_refs": self.rule_refs,
            "source": self.source,
        }


def _refuse_raw_load_into_used_version(sender, instance, raw: bool = False, **kwargs) -> None:
    """loaddata saves raw, past save(): let a fixture in only while no workup uses the version."""
    if not raw:
        return
    protocol_id = instance.pk if isinstance(instance, Protocol) else instance.lock_protocol_id()
    if protocol_id is None or _loading(protocol_id, adding=False):
        return
    used = Protocol.objects.filter(pk=protocol_id, workups__isnull=False).first()
    if used is not None:
        raise ProtocolLocked(
            f"{used.code} v{used.version} has workups: a fixture cannot be loaded into it. "
            "Use load_protocol, which loads only an identical file, or make a new version."
        )


for _model in (
    Protocol,
    ProtocolSource,
    StepDefinition,
    FieldDefinition,
    Calculation,
    Rule,
    CriterionGroup,
    CriterionItem,
    Disagreement,
    TrendSeries,
    ProtocolCase,
):
    pre_save.connect(
        _refuse_raw_load_into_used_version,
        sender=_model,
        dispatch_uid=f"refuse_raw_load_{_model.__name__}",
    )
