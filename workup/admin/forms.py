"""Admin forms: JSONLogic as formatted JSON, and every edit checked against the whole draft.

An edit is swapped into the draft's spec and validated (`spec_edit`); the
problems it would add are refused on the field they concern, in the words of
`validate_protocol`, e.g. "rule R12: unknown variable 'serum_tryptase.basal'
(known under 'serum_tryptase': ...)".
"""

from __future__ import annotations

import copy
import json

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString

from workup.core.cases import case_problems
from workup.models import Protocol, ProtocolCase
from workup.protocols import spec_rows
from workup.protocols.cache import build_spec
from workup.protocols.edit import new_problems, with_field, with_item, with_step

CODE_STYLE = "font-family: ui-monospace, monospace; font-size: 0.9rem;"


class JSONTextField(forms.JSONField):
    """JSON typed in a textarea, shown indented; a syntax error says where it is."""

    def __init__(self, *, plain_text: bool = False, **kwargs):
        kwargs.setdefault(
            "widget",
            forms.Textarea(
                attrs={"rows": 6, "cols": 90, "spellcheck": "false", "style": CODE_STYLE}
            ),
        )
        super().__init__(**kwargs)
        self.plain_text = plain_text  # a bare text is taken as a string (rule labels)
        self.empty = None

    def prepare_value(self, value):
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)

    def to_python(self, value):
        if self.disabled or isinstance(value, list | dict | int | float | JSONString):
            return value
        if value in self.empty_values or not str(value).strip():
            return copy.deepcopy(self.empty)
        try:
            converted = json.loads(value)
        except json.JSONDecodeError as error:
            if self.plain_text and not value.lstrip().startswith(("{", "[", '"')):
                return JSONString(value.strip())
            raise ValidationError(
                f"This is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).",
                code="invalid",
            ) from None
        return JSONString(converted) if isinstance(converted, str) else converted


def _empty_value(model_field):
    if model_field.null:
        return None
    return model_field.get_default()


class DraftCheckedForm(forms.ModelForm):
    """Base: validates the edited item against its protocol version."""

    # (message prefix, form field): where a problem is shown. {code} is the item's code.
    routes: tuple[tuple[str, str], ...] = ()
    # The ProtocolSpec list this form's item lives in (for the forms that edit one
    # item of a list: rules, criteria, groups, trend series, disagreements).
    spec_items: str = ""
    # A foreign key to a step, which must be a step of the item's own version.
    step_field: str = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if isinstance(field, JSONTextField):
                field.empty = _empty_value(self._meta.model._meta.get_field(name))

    def value(self, name: str, default=None):
        """A column's value as it would be saved (the getter `spec_rows` reads)."""
        if name in self.cleaned_data:
            return self.cleaned_data[name]
        return getattr(self.instance, name, default)

    def protocol(self) -> Protocol | None:
        protocol = self.cleaned_data.get("protocol")
        if protocol is None and getattr(self.instance, "protocol_id", None):
            protocol = Protocol.objects.get(pk=self.instance.protocol_id)
        return protocol

    def original_code(self) -> str | None:
        return self.instance.code if self.instance.pk else None

    def spec_item(self):
        """The edited item as the spec holds it (forms with `spec_items`)."""
        raise NotImplementedError

    def step_code(self) -> str | None:
        step = self.value(self.step_field)
        return step.code if step else None

    def spec_after(self, before):
        return with_item(before, self.spec_items, self.original_code(), self.spec_item())

    def spec_without(self, before):
        """The draft without this item (an inline's delete box)."""
        return with_item(before, self.spec_items, self.original_code(), None)

    def clean(self):
        cleaned = super().clean()
        protocol = self.protocol() if not self._errors and not self._unchanged() else None
        if protocol is not None:
            before = build_spec(protocol)
            for problem in new_problems(before, self.spec_after(before)):
                self._route(problem)
        if self.step_field and self.step_field in self.cleaned_data:
            protocol = self.protocol()
            if protocol is not None:
                self._same_protocol(self.step_field, protocol)
        return cleaned

    def route_names(self) -> dict[str, str]:
        return {"code": self.value("code")}

    def _unchanged(self) -> bool:
        """A stored row posted back as it is (an inline's untouched row) adds no problem.

        Compared with the stored values, not with has_changed(), which trusts the
        hidden initial values the browser sends back.
        """
        if self.instance.pk is None:
            return False
        names = {f.name for f in self.instance._meta.concrete_fields if not f.primary_key}
        return all(
            value == getattr(self.instance, name)
            for name, value in self.cleaned_data.items()
            if name in names
        )

    def _route(self, problem: str) -> None:
        names = self.route_names()
        for prefix, name in self.routes:
            field = self.fields.get(name)
            if problem.startswith(prefix.format(**names)) and field and not field.disabled:
                self.add_error(name, problem)
                return
        self.add_error(None, f"This change would break the draft: {problem}")

    def _same_protocol(self, name: str, protocol: Protocol) -> None:
        step = self.cleaned_data.get(name)
        if step is not None and step.protocol_id != protocol.pk:
            self.add_error(name, f"Choose a step of {protocol.code} v{protocol.version}.")


class RuleForm(DraftCheckedForm):
    routes = (
        ("duplicate rule '{code}'", "code"),
        ("rule {code} label:", "label"),
        ("rule {code}: unknown action", "action"),
        ("rule {code}: unknown target step", "target_step"),
        ("rule {code}:", "condition"),
    )
    spec_items = "rules"
    step_field = "target_step"

    def spec_item(self):
        return spec_rows.rule_spec(self.value, self.step_code())


class CalculationForm(DraftCheckedForm):
    routes = (("duplicate calculation '{code}'", "code"), ("calculation {code}:", "expression"))
    spec_items = "calculations"

    def clean(self):
        cleaned = super().clean()
        protocol = self.protocol()
        if protocol is not None and "order" in self.cleaned_data:
            clash = (
                protocol.calculation_set.exclude(pk=self.instance.pk)
                .filter(order=self.cleaned_data["order"])
                .first()
            )
            if clash is not None:
                self.add_error(
                    "order",
                    f"calculation {clash.code} already has order {clash.order}: calculations "
                    "run in order, so each needs its own.",
                )
        return cleaned

    def spec_after(self, before):
        calc = spec_rows.calculation_spec(self.value)
        protocol = self.protocol()
        others = list(
            protocol.calculation_set.exclude(pk=self.instance.pk).values_list("order", "code")
        )
        position = sorted([*others, (self.value("order"), calc.code)]).index(
            (self.value("order"), calc.code)
        )
        return with_item(before, self.spec_items, self.original_code(), calc, position)


class CriterionForm(DraftCheckedForm):
    routes = (
        ("duplicate criterion '{code}'", "code"),
        ("criterion {code}: unknown group", "group"),
        ("criterion {code} (WHO):", "who_logic"),
        ("criterion {code} (ICC):", "icc_logic"),
    )
    spec_items = "criteria"

    def spec_item(self):
        return spec_rows.criterion_spec(self.value)


class StepGroupForm(DraftCheckedForm):
    routes = (("duplicate step group '{code}'", "code"),)

    spec_items = "step_groups"

    def spec_item(self):
        return spec_rows.step_group_spec(self.value)


class CriterionGroupForm(DraftCheckedForm):
    routes = (("duplicate criterion group '{code}'", "code"),)

    spec_items = "criterion_groups"

    def spec_item(self):
        return spec_rows.criterion_group_spec(self.value)


class TrendSeriesForm(DraftCheckedForm):
    routes = (
        ("duplicate trend series '{code}'", "code"),
        ("trend series {code}: unknown step", "step"),
        ("trend series {code}: field_code", "field_code"),
        ("trend series {code}: unknown marker", "marker"),
        ("trend series {code}: where_field", "where_field"),
        ("trend series {code}: detail_fields", "detail_fields"),
        ("protocol: trend series need a trend title", "code"),
    )
    spec_items = "trend_series"
    step_field = "step"

    def spec_item(self):
        return spec_rows.trend_series_spec(self.value, self.step_code())


class DisagreementForm(DraftCheckedForm):
    routes = (
        ("duplicate disagreement '{code}'", "code"),
        ("disagreement {code}: unknown step", "step"),
        ("disagreement {code}:", "condition"),
    )
    spec_items = "disagreements"
    step_field = "step"

    def spec_item(self):
        return spec_rows.disagreement_spec(self.value, self.step_code())


class StepForm(DraftCheckedForm):
    routes = (
        ("duplicate step '{code}'", "code"),
        ("step {code}: counts_latest_where", "counts_latest_where"),
        ("step {code}: needs a step group", "group"),
        ("step {code}: unknown step group", "group"),
        ("step {code}:", "code"),
        ("steps ", "order"),
    )

    def spec_after(self, before):
        step = spec_rows.step_spec(self.value)
        return with_step(before, self.original_code(), step)

    def spec_without(self, before):
        return with_step(before, self.original_code(), None)


class FieldForm(DraftCheckedForm):
    routes = (
        ("duplicate field of step {step} '{code}'", "code"),
        ("field {step}.{code}: unknown kind", "kind"),
        ("field {step}.{code}: a choice field", "choices"),
        ("field {step}.{code}: min_value", "min_value"),
        ("field {step}.{code}: unknown calculation", "calculation"),
    )

    def protocol(self) -> Protocol | None:
        if not self.instance.step_id:
            return None
        return Protocol.objects.filter(stepdefinition=self.instance.step_id).first()

    def route_names(self) -> dict[str, str]:
        return {**super().route_names(), "step": self.instance.step.code}

    def spec_after(self, before):
        field = spec_rows.field_spec(self.value)
        return with_field(before, self.instance.step.code, self.original_code(), field)

    def spec_without(self, before):
        return with_field(before, self.instance.step.code, self.original_code(), None)


class DraftCheckedFormSet(forms.BaseInlineFormSet):
    """Refuses deletions (the inline's delete boxes) that would break the draft."""

    def clean(self):
        super().clean()
        deleted = [form for form in self.deleted_forms if form.instance.pk]
        protocol = deleted[0].protocol() if deleted else None
        if protocol is None:
            return
        before = build_spec(protocol)
        after = before
        for form in deleted:
            after = form.spec_without(after)
        problems = new_problems(before, after)
        if problems:
            raise ValidationError([f"Deleting would break the draft: {p}" for p in problems])


class CaseForm(forms.ModelForm):
    """A case is checked against its version: known steps and fields, plausible values."""

    class Meta:
        model = ProtocolCase
        fields = [
            "protocol",
            "code",
            "summary",
            "patient",
            "findings",
            "expected_suggested",
            "expected_not_suggested",
            "expected_not_yet",
            "rule_refs",
            "source",
        ]

    def clean(self):
        cleaned = super().clean()
        protocol = cleaned.get("protocol") or (
            self.instance.protocol if self.instance.protocol_id else None
        )
        if self._errors or protocol is None:
            return cleaned
        case = {
            "id": cleaned.get("code"),
            **{
                name: cleaned.get(name, getattr(self.instance, name))
                for name in (
                    "patient",
                    "findings",
                    "expected_suggested",
                    "expected_not_suggested",
                    "expected_not_yet",
                )
            },
        }
        for name, message in case_problems(build_spec(protocol), case):
            self.add_error(name if name in self.fields else None, message)
        return cleaned


class CaseImportForm(forms.Form):
    file = forms.FileField(
        label="Case file (JSON)",
        help_text="A list of cases in the shape of fixtures/cases/mastocytosis-vignettes.json. "
        "Cases are matched by id: new ids are added, known ones updated.",
    )
