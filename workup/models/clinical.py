"""Sites, memberships, patients and their workups."""

from datetime import date

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from workup.core.search_keys import search_key
from workup.models.protocol import Protocol, StepDefinition


class Site(models.Model):
    """A clinic. Every query for patient data is scoped to the user's sites."""

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200, unique=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def natural_key(self) -> tuple[str]:
        return (self.code,)


class Membership(models.Model):
    class Role(models.TextChoices):
        CLINICIAN = "clinician", "Clinician (read and write)"
        VIEWER = "viewer", "Viewer (read only)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "site"], name="membership_user_site_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} at {self.site} ({self.role})"


class PatientQuerySet(models.QuerySet):
    def for_user(self, user) -> "PatientQuerySet":
        if not user.is_authenticated:
            return self.none()
        return self.filter(site__memberships__user=user)


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "female", "Female"
        MALE = "male", "Male"
        OTHER = "other", "Other"
        UNKNOWN = "unknown", "Unknown"

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField("MRN", max_length=40, help_text="Medical record number at this site.")
    family_name = models.CharField(max_length=100)
    given_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=10, choices=Sex.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    # Search keys (workup.core.search_keys), kept in step with the fields above by save().
    mrn_key = models.CharField(max_length=40, editable=False, default="")
    family_key = models.CharField(max_length=100, editable=False, default="")
    given_key = models.CharField(max_length=100, editable=False, default="")
    history = HistoricalRecords(excluded_fields=["mrn_key", "family_key", "given_key"])

    objects = PatientQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["site", "mrn"], name="patient_site_mrn_unique")
        ]
        # The worklist sorts by (family_name, given_name, id) and pages by keyset on that
        # triple: one index for a user of one site, one for users of many sites. Search
        # is a prefix range on a key.
        indexes = [
            models.Index(
                fields=["site", "family_name", "given_name", "id"], name="patient_site_sort_idx"
            ),
            models.Index(fields=["family_name", "given_name", "id"], name="patient_sort_idx"),
            models.Index(fields=["mrn_key"], name="patient_mrn_key_idx"),
            models.Index(fields=["family_key"], name="patient_family_key_idx"),
            models.Index(fields=["given_key"], name="patient_given_key_idx"),
        ]
        ordering = ["family_name", "given_name"]

    def __str__(self) -> str:
        return f"{self.family_name}, {self.given_name} ({self.mrn})"

    def save(self, *args, **kwargs):
        self.fill_search_keys()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "mrn_key", "family_key", "given_key"}
        super().save(*args, **kwargs)

    def fill_search_keys(self) -> None:
        self.mrn_key = search_key(self.mrn)
        self.family_key = search_key(self.family_name)
        self.given_key = search_key(self.given_name)

    @property
    def age_text(self) -> str:
        """Age today as a clinician writes it: months for infants, else whole years."""
        from django.utils import timezone

        age = self.age_years_on(timezone.localdate())
        if age < 2:
            return f"{int(age * 12)} months"
        return f"{int(age)} years"

    def age_years_on(self, on: date) -> float:
        """Age in years as a decimal number (infants are fractional), on a given day."""
        whole_years = on.year - self.birth_date.year
        if (on.month, on.day) < (self.birth_date.month, self.birth_date.day):
            whole_years -= 1
        last_birthday = _add_years(self.birth_date, whole_years)
        next_birthday = _add_years(self.birth_date, whole_years + 1)
        fraction = (on - last_birthday).days / (next_birthday - last_birthday).days
        return round(whole_years + fraction, 2)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year
        return day.replace(year=day.year + years, day=28)


class WorkupQuerySet(models.QuerySet):
    def for_user(self, user) -> "WorkupQuerySet":
        if not user.is_authenticated:
            return self.none()
        return self.filter(patient__site__memberships__user=user)


class Workup(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="workups")
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="workups")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(auto_now_add=True)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    adult_pathway = models.BooleanField(
        default=False,
        help_text="Clinician moved a post-pubertal adolescent to the adult pathway (D14).",
    )
    adult_pathway_reason = models.TextField(blank=True)
    # Optimistic locking: every write checks and bumps it, so two clinicians
    # editing one workup cannot silently overwrite each other.
    version = models.PositiveIntegerField(default=1)
    # Snapshot refreshed by the service layer on every write, so that lists never
    # evaluate rules per row.
    progress_done = models.PositiveIntegerField(default=0)
    progress_applicable = models.PositiveIntegerField(default=0)
    suggested_steps = models.JSONField(default=list, blank=True)
    # Steps that cannot be decided yet for lack of data ("not yet: record X").
    not_yet_steps = models.JSONField(default=list, blank=True)
    # The rules behind each suggested step: a save says what it changed ("now suggested:
    # R12") against this, without evaluating the rules before the write.
    suggestion_rules = models.JSONField(default=dict, blank=True)
    last_change_at = models.DateTimeField(null=True, blank=True)
    last_change_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    history = HistoricalRecords()

    objects = WorkupQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["-last_change_at"], name="workup_last_change_idx")]
        # One open workup per patient: the worklist joins it in as one row per patient,
        # and two clinicians opening a workup at once must not make two.
        constraints = [
            models.UniqueConstraint(
                fields=["patient"],
                condition=models.Q(status="open"),
                name="workup_one_open_per_patient",
            )
        ]
        ordering = ["-last_change_at"]

    def __str__(self) -> str:
        return f"Workup {self.pk} for {self.patient}"


class WorkupSuggestion(models.Model):
    """One row per suggested or not-yet step of a workup: the indexed side of the snapshot."""

    class State(models.TextChoices):
        SUGGESTED = "suggested", "Suggested next step"
        NOT_YET = "not_yet", "Not yet: data missing"

    workup = models.ForeignKey(Workup, on_delete=models.CASCADE, related_name="suggestions")
    step_code = models.SlugField(max_length=60)
    state = models.CharField(max_length=10, choices=State.choices, default=State.SUGGESTED)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workup", "step_code"], name="workup_suggestion_unique")
        ]
        indexes = [
            models.Index(fields=["step_code", "state", "workup"], name="suggestion_step_state_idx")
        ]

    def __str__(self) -> str:
        return f"{self.step_code} {self.state} for workup {self.workup_id}"


class StepRecord(models.Model):
    """A result of one step, its values validated against the field definitions."""

    workup = models.ForeignKey(Workup, on_delete=models.CASCADE, related_name="records")
    step = models.ForeignKey(StepDefinition, on_delete=models.PROTECT, related_name="+")
    values = models.JSONField(default=dict)
    performed_on = models.DateField()
    note = models.TextField(blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        indexes = [models.Index(fields=["workup", "step", "performed_on"], name="record_step_idx")]
        ordering = ["performed_on", "recorded_at", "id"]

    def __str__(self) -> str:
        return f"{self.step.code} on {self.performed_on}"


class StepMark(models.Model):
    """A clinician's decision about a step that has no result (yet)."""

    class Status(models.TextChoices):
        ORDERED = "ordered", "Ordered"
        NOT_INDICATED = "not_indicated", "Not indicated"
        DECLINED = "declined", "Declined by the patient"

    workup = models.ForeignKey(Workup, on_delete=models.CASCADE, related_name="marks")
    step = models.ForeignKey(StepDefinition, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices)
    reason = models.TextField(blank=True)
    set_at = models.DateTimeField(auto_now=True)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workup", "step"], name="step_mark_unique")]

    def __str__(self) -> str:
        return f"{self.step.code}: {self.status}"
