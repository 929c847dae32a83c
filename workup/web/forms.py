"""Forms built from the protocol's field definitions, validating like a careful clinician."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Div, Field, Layout, Submit
from django import forms
from django.utils import timezone

from workup.core.formatting import format_number
from workup.core.spec import FieldSpec, StepSpec
from workup.models import Patient, StepMark

RESERVED_FIELD_NAMES = ("performed_on", "note", "workup_version")
BOOLEAN_CHOICES = [("", "Not recorded"), ("yes", "Yes"), ("no", "No")]
TEXT_MAX_LENGTH = 2000


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
    label = f"{spec.label} ({spec.unit})" if spec.unit else spec.label
    kwargs: dict[str, Any] = {
        "label": label,
        "required": spec.required,
        "help_text": " ".join(help_parts),
    }
    if spec.kind in ("decimal", "integer"):
        field = _number_field(spec)
    elif spec.kind == "boolean":
        choices = BOOLEAN_CHOICES[1:] if spec.required else BOOLEAN_CHOICES
        field = forms.ChoiceField(choices=choices, widget=forms.RadioSelect)
    elif spec.kind == "choice":
        choices = list(spec.choices) if spec.required else [("", "Not recorded"), *spec.choices]
        field = forms.ChoiceField(choices=choices, widget=forms.RadioSelect)
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
            *[Field(f.code) for f in step.entry_fields],
            Div(Field("performed_on"), Field("note")),
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
