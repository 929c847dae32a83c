"""The protocol: what a workup contains, as versioned data.

Every row here belongs to one protocol version (code + version). Fixtures use
natural keys (protocol code, version, then the row's own code) so that they load
into an empty or a populated database and diff cleanly in review.
"""

from django.db import models
from simple_history.models import HistoricalRecords


class ProtocolManager(models.Manager):
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

    def natural_key(self) -> tuple[str, int]:
        return (self.code, self.version)


class _ProtocolPartManager(models.Manager):
    """Natural key lookups for rows identified by (protocol code, version, code)."""

    def get_by_natural_key(self, protocol_code: str, version: int, code: str):
        return self.get(protocol__code=protocol_code, protocol__version=version, code=code)


class _ProtocolPart(models.Model):
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

    citation = models.TextField()
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="source_code_unique")
        ]
        ordering = ["protocol", "code"]

    def __str__(self) -> str:
        return f"[{self.code}]"


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
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["protocol", "code"], name="step_code_unique"),
        ]
        ordering = ["protocol", "order", "code"]

    def __str__(self) -> str:
        return self.title


class FieldDefinitionManager(models.Manager):
    def get_by_natural_key(self, protocol_code: str, version: int, step_code: str, code: str):
        return self.get(
            step__protocol__code=protocol_code,
            step__protocol__version=version,
            step__code=step_code,
            code=code,
        )


class FieldDefinition(models.Model):
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
    history = HistoricalRecords()

    objects = FieldDefinitionManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "code"], name="field_code_unique")]
        ordering = ["step", "order", "code"]

    def __str__(self) -> str:
        return f"{self.step.code}.{self.code}"

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
    rationale = models.TextField()
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


class CriterionItem(_ProtocolPart):
    """A WHO 2022 / ICC 2022 item to document side by side. Never a verdict."""

    class Group(models.TextChoices):
        SM = "sm", "SM items"
        B_FINDING = "b_finding", "B-findings"
        C_FINDING = "c_finding", "C-findings"
        SKIN = "skin", "Skin items"
        FACT = "fact", "Subtype-relevant facts"

    class Kind(models.TextChoices):
        MAJOR = "major", "Major"
        MINOR = "minor", "Minor"
        EXCLUSION = "exclusion", "Exclusion flag"
        FINDING = "finding", "Finding"
        FACT = "fact", "Fact"

    group = models.CharField(max_length=20, choices=Group.choices)
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
