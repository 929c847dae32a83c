"""Forms built from the protocol's field definitions, validating like a careful clinician."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from itertools import groupby
from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Layout, LayoutObject, Submit
from crispy_forms.utils import TEMPLATE_PACK, render_field
from django import forms
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from workup.core.formatting import format_number
from workup.core.spec import FieldSpec, ProtocolSpec, StepSpec
from workup.models import Patient, StepMark

RESERVED_FIELD_NAMES = ("performed_on", "note", "workup_version")
# Offered last, after the answers, so that Tab and Space land on "Yes" first.
NOT_RECORDED = ("", "Not recorded")
BOOLEAN_CHOICES = [("yes", "Yes"), ("no", "No")]
TEXT_MAX_LENGTH = 2000
# A choice field fits half a row of toggle buttons when it has this few, this short options
# (counting "Not recorded"); a longer one takes a whole row, its buttons wrapping.
HALF_ROW_MAX_OPTIONS = 4
HALF_ROW_MAX_LABEL = 14
# The "Used by" note names at most this many calculations; clinicians read it at a glance.
USED_BY_MAX_NAMES = 4


def validate_not_future(value):
    if value and value > timezone.localdate():
        raise forms.ValidationError("This date is in the future. Enter the date it was done.")


class DateInput(forms.DateInput):
    """A browser date picker: its value must be ISO (YYYY-MM-DD) whatever the language, or the
    browser shows it empty (en-gb's first input format is DD/MM/YYYY)."""

    input_type = "date"

    def __init__(self, attrs=None, format=None):
        super().__init__(attrs, format=format or "%Y-%m-%d")


def _range_text(spec: FieldSpec) -> str:
    unit = f" {spec.unit}" if spec.unit else ""
    low = format_number(spec.min_value) if spec.min_value is not None else None
    high = format_number(spec.max_value) if spec.max_value is not None else None
    if low is not None and high is not None:
        return f"between {low} and {high}{unit}"
    if low is not None:
        return f"at least {low}{unit}"
    return f"at most {high}{unit}"


def _number_field(spec: FieldSpec) -> forms.Field:
    messages = {
        "required": f"Enter {spec.label.lower()}.",
        "invalid": "Enter a number, e.g. 12.5."
        if spec.kind == "decimal"
        else "Enter a whole number.",
    }
    if spec.min_value is not None or spec.max_value is not None:
        # Django %-formats a validator's message with its params: a unit of "%" must be "%%".
        plausible = f"Enter a plausible value {_range_text(spec)}.".replace("%", "%%")
        messages["min_value"] = plausible
        messages["max_value"] = plausible
    common = {
        "min_value": Decimal(str(spec.min_value)) if spec.min_value is not None else None,
        "max_value": Decimal(str(spec.max_value)) if spec.max_value is not None else None,
        "error_messages": messages,
    }
    if spec.kind == "integer":
        common["min_value"] = int(spec.min_value) if spec.min_value is not None else None
        common["max_value"] = int(spec.max_value) if spec.max_value is not None else None
        return forms.IntegerField(**common)
    return forms.DecimalField(max_digits=12, decimal_places=4, **common)


def build_form_field(spec: FieldSpec) -> forms.Field:
    """The Django form field for one protocol field (its name is the field code)."""
    help_parts = [spec.help_text] if spec.help_text else []
    if spec.kind in ("decimal", "integer") and (
        spec.min_value is not None or spec.max_value is not None
    ):
        help_parts.append(f"Plausible range: {_range_text(spec)}.")
    kwargs: dict[str, Any] = {
        # A number's unit is shown beside its input (workup/forms/number_field.html).
        "label": spec.label,
        "required": spec.required,
        "help_text": " ".join(help_parts),
    }
    if spec.kind in ("decimal", "integer"):
        field = _number_field(spec)
    elif spec.kind in ("boolean", "choice"):
        field = forms.ChoiceField(choices=offered_choices(spec), widget=forms.RadioSelect)
    elif spec.kind == "multi_choice":
        field = forms.MultipleChoiceField(
            choices=list(spec.choices), widget=forms.CheckboxSelectMultiple
        )
    elif spec.kind == "date":
        field = forms.DateField(widget=DateInput, validators=[validate_not_future])
    else:
        field = forms.CharField(
            max_length=TEXT_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 2})
        )
    field.label = kwargs["label"]
    field.required = kwargs["required"]
    field.help_text = kwargs["help_text"]
    if field.required:
        field.error_messages["required"] = f"This is required: enter {spec.label.lower()}."
    return field


def offered_choices(spec: FieldSpec) -> list[tuple[str, str]]:
    """The answers a yes/no or choice field offers; an optional one may be left "Not recorded"."""
    answers = BOOLEAN_CHOICES if spec.kind == "boolean" else list(spec.choices)
    return answers if spec.required else [*answers, NOT_RECORDED]


def to_stored(spec: FieldSpec, value: Any) -> Any:
    """Form value -> JSON value kept in StepRecord.values (None when not recorded)."""
    if value in (None, "", []):
        return None
    if spec.kind == "decimal":
        return float(value)
    if spec.kind == "integer":
        return int(value)
    if spec.kind == "boolean":
        return value == "yes"
    if spec.kind == "date":
        return value.isoformat()
    return value


def to_initial(spec: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if spec.kind == "boolean":
        return "yes" if value else "no"
    return value


# --- how a step's fields are laid out -------------------------------------------------------


def field_runs(fields: Sequence[FieldSpec]) -> list[tuple[str, list[FieldSpec]]]:
    """The fields in order, cut into runs of one group title ("" for fields of no group).

    Only fields next to each other are asked together: a title used again further down
    starts a new run, so the form never reorders what the protocol lists.
    """
    return [(title, list(run)) for title, run in groupby(fields, key=lambda f: f.group)]


def _short_name(label: str) -> str:
    """ "B3 (WHO): organomegaly without organ dysfunction" -> "B3 (WHO)": the part before a
    colon is the name clinicians know; the rest explains it and would make the note long."""
    return label.split(": ", 1)[0]


def _used_by_text(calculation_labels: list[str], rule_codes: list[str]) -> str:
    names = list(dict.fromkeys(_short_name(label) for label in calculation_labels))
    if len(names) > USED_BY_MAX_NAMES:
        names = [*names[:USED_BY_MAX_NAMES], f"{len(names) - USED_BY_MAX_NAMES} more"]
    parts = [", ".join(names)] if names else []
    if rule_codes:
        parts.append(("rule " if len(rule_codes) == 1 else "rules ") + ", ".join(rule_codes))
    return "Used by: " + "; ".join(parts)


def used_by_notes(protocol: ProtocolSpec, step: StepSpec) -> dict[str, str]:
    """field code -> "Used by: REMA score; rules R12, R14", for the step's fields whose value a
    calculation or an enabled rule reads (directly: the facts are "<step>.<field>")."""
    notes = {}
    for spec in step.entry_fields:
        labels, codes = protocol.fact_readers.get(f"{step.code}.{spec.code}", ([], []))
        if labels or codes:
            notes[spec.code] = _used_by_text(labels, codes)
    return notes


def takes_whole_row(spec: FieldSpec) -> bool:
    """Whether a field needs the form's full width (two fit side by side otherwise)."""
    if spec.kind in ("text", "multi_choice"):
        return True
    if spec.kind == "choice":
        options = offered_choices(spec)
        return len(options) > HALF_ROW_MAX_OPTIONS or any(
            len(label) > HALF_ROW_MAX_LABEL for _, label in options
        )
    return False


def field_template(spec: FieldSpec) -> str:
    if spec.kind in ("boolean", "choice"):
        return "workup/forms/toggle_field.html"
    if spec.kind in ("decimal", "integer"):
        return "workup/forms/number_field.html"
    return "workup/forms/other_field.html"


class StepEntryFields(LayoutObject):
    """A step's entry fields as the protocol groups them, each with its "Used by" note.

    The note needs the whole protocol (its calculations and rules), which the step form is
    not given: it is read from the page's checklist (`checklist.spec`) when there is one.
    """

    template = "workup/forms/step_fields.html"

    def __init__(self, step: StepSpec):
        self.step = step
        self.fields = [spec.code for spec in step.entry_fields]

    def render(self, form, context, template_pack=TEMPLATE_PACK, **kwargs):
        protocol = getattr(context.get("checklist"), "spec", None)
        notes = used_by_notes(protocol, self.step) if protocol else {}
        runs = []
        for title, specs in field_runs(self.step.entry_fields):
            rendered = "".join(
                render_field(
                    spec.code,
                    form,
                    context,
                    template=field_template(spec),
                    template_pack=template_pack,
                    extra_context={
                        "used_by": notes.get(spec.code, ""),
                        "unit": spec.unit,
                        "whole_row": takes_whole_row(spec),
                    },
                )
                for spec in specs
            )
            # Each piece was rendered by a template that escaped what it shows.
            runs.append({"title": title, "fields": mark_safe(rendered)})
        return render_to_string(self.template, {"runs": runs})


class WorkupVersionMixin(forms.Form):
    """The version token of the workup when the form was shown (optimistic locking)."""

    workup_version = forms.IntegerField(widget=forms.HiddenInput)
    # When the form was shown (epoch seconds): a conflict page lists what changed since.
    # Bounded: the conflict page turns it into a datetime (a tampered 1e300 was a 500).
    loaded_at = forms.FloatField(
        widget=forms.HiddenInput, required=False, min_value=0, max_value=10_000_000_000
    )


class StepForm(WorkupVersionMixin):
    """A step's result: its fields, the date it was done and a note."""

    performed_on = forms.DateField(
        label="Date done",
        widget=DateInput,
        validators=[validate_not_future],
        error_messages={
            "required": "Enter the date the step was done.",
            "invalid": "Enter a date.",
        },
    )
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=TEXT_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, step: StepSpec, birth_date=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.step = step
        self.birth_date = birth_date
        for spec in step.entry_fields:
            field = self.fields[spec.code] = build_form_field(spec)
            if spec.shown_if_field:
                # Asked only for some answers of another field: required then, checked in
                # clean(); the attributes let static/js/step_form.js hide it meanwhile.
                field.required = False
                field.widget.attrs.update(
                    {
                        "data-shown-if-field": spec.shown_if_field,
                        "data-shown-if-values": json.dumps(list(spec.shown_if_values)),
                    }
                )
        self.order_fields([f.code for f in step.entry_fields] + ["performed_on", "note"])
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.layout = Layout(
            StepEntryFields(step),
            Div(Field("performed_on"), Field("note"), css_class="step-fields step-form-dating"),
            Field("workup_version"),
            Field("loaded_at"),
        )

    def clean_performed_on(self):
        performed_on = self.cleaned_data["performed_on"]
        if self.birth_date and performed_on < self.birth_date:
            raise forms.ValidationError(
                "This date is before the patient's birth date. Enter the date it was done."
            )
        return performed_on

    def clean(self):
        cleaned = super().clean()
        typed = {
            spec.code: to_stored(spec, cleaned.get(spec.code)) for spec in self.step.entry_fields
        }
        for spec in self.step.entry_fields:
            if not spec.shown_if_field:
                continue
            if not spec.shown_for(typed):
                cleaned[spec.code] = None  # not asked for this answer: never stored
            elif spec.required and typed[spec.code] is None and spec.code not in self.errors:
                self.add_error(spec.code, f"This is required: enter {spec.label.lower()}.")
        return cleaned

    def stored_values(self) -> dict[str, Any]:
        values = {}
        for spec in self.step.entry_fields:
            value = to_stored(spec, self.cleaned_data.get(spec.code))
            if value is not None:
                values[spec.code] = value
        return values

    @classmethod
    def initial_from(cls, step: StepSpec, values: dict[str, Any]) -> dict[str, Any]:
        return {f.code: to_initial(f, values.get(f.code)) for f in step.entry_fields}


class MarkForm(WorkupVersionMixin):
    status = forms.ChoiceField(choices=StepMark.Status.choices, widget=forms.RadioSelect)
    reason = forms.CharField(
        required=False, max_length=TEXT_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 2})
    )

    def clean(self):
        cleaned = super().clean()
        status = cleaned.get("status")
        if (
            status in (StepMark.Status.NOT_INDICATED, StepMark.Status.DECLINED)
            and not (cleaned.get("reason") or "").strip()
        ):
            self.add_error("reason", "Give the reason: it is shown on the checklist and the print.")
        return cleaned


class AdultPathwayForm(WorkupVersionMixin):
    enabled = forms.BooleanField(required=False)
    reason = forms.CharField(required=False, max_length=TEXT_MAX_LENGTH)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("enabled") and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Give the reason (e.g. post-pubertal adolescent).")
        return cleaned


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["site", "mrn", "family_name", "given_name", "birth_date", "sex"]
        widgets = {"birth_date": DateInput}

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["site"].empty_label = None
        self.fields["birth_date"].validators.append(validate_not_future)
        self.fields["birth_date"].error_messages["invalid"] = "Enter a date."
        self.helper = FormHelper()
        self.helper.layout = Layout(
            "site",
            "mrn",
            "family_name",
            "given_name",
            "birth_date",
            "sex",
            Submit("save", "Save patient"),
        )

    def clean_mrn(self):
        return self.cleaned_data["mrn"].strip()

    def clean(self):
        cleaned = super().clean()
        site, mrn = cleaned.get("site"), cleaned.get("mrn")
        if site and mrn:
            duplicates = Patient.objects.filter(site=site, mrn__iexact=mrn)
            if self.instance.pk:
                duplicates = duplicates.exclude(pk=self.instance.pk)
            if duplicates.exists():
                self.add_error("mrn", f"A patient with MRN {mrn} already exists at {site}.")
        return cleaned

    def clean_birth_date(self):
        birth_date = self.cleaned_data["birth_date"]
        if birth_date and (timezone.localdate().year - birth_date.year) > 120:
            raise forms.ValidationError("This birth date is more than 120 years ago.")
        return birth_date


class SearchForm(forms.Form):
    q = forms.CharField(label="MRN or name", required=False, max_length=100)
