"""Admin pages for the parts of a protocol version: steps, fields, calculations, rules, ...

A part of a published or retired version is read-only here (and refused by the
model too). Edits of a draft are checked against the whole draft (forms.py).
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from workup.admin.forms import (
    CalculationForm,
    CaseForm,
    CriterionForm,
    CriterionGroupForm,
    DisagreementForm,
    DraftCheckedFormSet,
    FieldForm,
    JSONTextField,
    RuleForm,
    StepForm,
    StepGroupForm,
    TrendSeriesForm,
)
from workup.core.cases import run_case
from workup.core.logic_text import logic_text
from workup.core.validation import validate_protocol
from workup.models import (
    Calculation,
    CriterionGroup,
    CriterionItem,
    Disagreement,
    FieldDefinition,
    Protocol,
    ProtocolCase,
    ProtocolSource,
    Rule,
    StepDefinition,
    StepGroup,
    TrendSeries,
)
from workup.protocols.cache import build_spec, get_spec

JSON_FIELDS = {models.JSONField: {"form_class": JSONTextField}}
LOCKED_NOTE = (
    "{protocol} is {status}: it is read-only. To change it, use “New draft from this "
    "version” on the protocol."
)


def readable(expression) -> str:
    """JSONLogic in words above the formatted JSON."""
    return format_html(
        "<div><strong>{}</strong></div><pre style='white-space: pre-wrap'>{}</pre>",
        logic_text(expression),
        json.dumps(expression, indent=2, ensure_ascii=False),
    )


def short(expression, length: int = 90) -> str:
    text = logic_text(expression)
    return text if len(text) <= length else text[: length - 1] + "…"


class LockedInlineMixin:
    """An inline of a published or retired version: nothing to add, change or delete."""

    def _locked(self, obj) -> bool:
        protocol = getattr(obj, "protocol", obj)
        return isinstance(protocol, Protocol) and protocol.is_locked

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and not self._locked(obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not self._locked(obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not self._locked(obj)


class LockedPartAdmin(SimpleHistoryAdmin):
    """Read-only once the version is published; step choices limited to the version's steps."""

    formfield_overrides = JSON_FIELDS
    step_fields: tuple[str, ...] = ()

    def protocol_of(self, obj) -> Protocol:
        return obj.protocol

    def _locked(self, obj) -> bool:
        return obj is not None and self.protocol_of(obj).is_locked

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not self._locked(obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not self._locked(obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, each checked against the draft
        return actions

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Protocol:
            kwargs["queryset"] = Protocol.objects.filter(status=Protocol.Status.DRAFT)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        protocol = self.protocol_of(obj) if obj else None
        if protocol is None and request.GET.get("protocol", "").isdigit():
            protocol = Protocol.objects.filter(pk=request.GET["protocol"]).first()
        for name in self.step_fields:
            if name in form.base_fields:
                steps = StepDefinition.objects.filter(protocol__status=Protocol.Status.DRAFT)
                if protocol is not None:
                    steps = protocol.stepdefinition_set.all()
                form.base_fields[name].queryset = steps.select_related("protocol")
        return form

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and self._locked(obj) and request.method == "GET":
            protocol = self.protocol_of(obj)
            messages.info(
                request,
                LOCKED_NOTE.format(
                    protocol=f"{protocol.code} v{protocol.version}", status=protocol.status
                ),
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def response_add(self, request, obj, post_url_continue=None):
        warn_about_draft(request, self.protocol_of(obj))
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        warn_about_draft(request, self.protocol_of(obj))
        return super().response_change(request, obj)


def warn_about_draft(request, protocol: Protocol) -> None:
    """After a save: problems the draft still has (publishing refuses while there are any)."""
    if protocol.is_locked:
        return
    problems = validate_protocol(build_spec(protocol))
    if problems:
        listing = "; ".join(problems[:5]) + (" …" if len(problems) > 5 else "")
        messages.warning(
            request,
            f"{protocol.code} v{protocol.version} has {len(problems)} problem(s) to fix before "
            f"it can be published: {listing}",
        )


class FieldInline(LockedInlineMixin, admin.TabularInline):
    model = FieldDefinition
    form = FieldForm
    formset = DraftCheckedFormSet
    formfield_overrides = JSON_FIELDS
    fields = [
        "order",
        "code",
        "label",
        "group",
        "kind",
        "unit",
        "min_value",
        "max_value",
        "choices",
        "required",
        "calculation",
        "is_key_result",
    ]
    extra = 0

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "choices":
            field.widget.attrs.update(rows=3, cols=30)
        return field


@admin.register(StepDefinition)
class StepDefinitionAdmin(LockedPartAdmin):
    form = StepForm
    list_display = ["code", "title", "section", "group", "order", "repeatable", "protocol"]
    list_filter = ["protocol", "section", "group", "is_safety_item"]
    search_fields = ["code", "title"]
    inlines = [FieldInline]


@admin.register(FieldDefinition)
class FieldDefinitionAdmin(LockedPartAdmin):
    form = FieldForm
    list_display = ["code", "label", "kind", "unit", "min_value", "max_value", "step"]
    list_filter = ["step__protocol", "kind"]
    search_fields = ["code", "label", "step__code"]
    readonly_fields = ["step"]

    def protocol_of(self, obj) -> Protocol:
        return obj.step.protocol

    def has_add_permission(self, request):
        return False  # fields are added on their step's page


@admin.register(Rule)
class RuleAdmin(LockedPartAdmin):
    form = RuleForm
    step_fields = ("target_step",)
    list_display = ["code", "title", "action", "target_step", "condition_text", "enabled"]
    list_filter = ["protocol", "action", "enabled"]
    search_fields = ["code", "title", "rationale", "source"]
    list_select_related = ["target_step", "protocol"]
    readonly_fields = ["condition_readable", "label_readable"]
    fieldsets = [
        (None, {"fields": ["protocol", "code", "title", "action", "target_step"]}),
        ("When it fires", {"fields": ["condition", "condition_readable"]}),
        ("What it shows", {"fields": ["label", "label_readable", "rationale", "source"]}),
        (None, {"fields": ["priority", "enabled", "repeat_when_done"]}),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "label" in form.base_fields:
            form.base_fields["label"].plain_text = True
        return form

    @admin.display(description="Condition")
    def condition_text(self, rule):
        return short(rule.condition)

    @admin.display(description="Condition, in words")
    def condition_readable(self, rule):
        return readable(rule.condition)

    @admin.display(description="Label, in words")
    def label_readable(self, rule):
        return rule.label if isinstance(rule.label, str) else readable(rule.label)


@admin.register(Calculation)
class CalculationAdmin(LockedPartAdmin):
    form = CalculationForm
    list_display = ["code", "label", "order", "expression_text", "display"]
    list_filter = ["protocol", "display"]
    search_fields = ["code", "label", "formula"]
    readonly_fields = ["expression_readable"]
    fields = [
        "protocol",
        "code",
        "label",
        "order",
        "expression",
        "expression_readable",
        "unit",
        "formula",
        "display",
        "source",
    ]

    @admin.display(description="Expression")
    def expression_text(self, calc):
        return short(calc.expression)

    @admin.display(description="Expression, in words")
    def expression_readable(self, calc):
        return readable(calc.expression)


@admin.register(StepGroup)
class StepGroupAdmin(LockedPartAdmin):
    form = StepGroupForm
    list_display = ["code", "title", "order", "protocol"]
    list_filter = ["protocol"]
    search_fields = ["code", "title"]


@admin.register(CriterionGroup)
class CriterionGroupAdmin(LockedPartAdmin):
    form = CriterionGroupForm
    list_display = ["code", "title", "counts_label", "order", "protocol"]
    list_filter = ["protocol"]
    search_fields = ["code", "title"]


@admin.register(TrendSeries)
class TrendSeriesAdmin(LockedPartAdmin):
    form = TrendSeriesForm
    step_fields = ("step",)
    list_display = ["code", "label", "step", "field_code", "marker", "connect", "order", "protocol"]
    list_filter = ["protocol"]
    search_fields = ["code", "label"]


@admin.register(CriterionItem)
class CriterionItemAdmin(LockedPartAdmin):
    form = CriterionForm
    list_display = ["code", "label", "group", "kind", "order", "protocol"]
    list_filter = ["protocol", "group", "kind"]
    search_fields = ["code", "label"]


@admin.register(Disagreement)
class DisagreementAdmin(LockedPartAdmin):
    form = DisagreementForm
    step_fields = ("step",)
    list_display = ["code", "title", "step", "protocol"]
    list_filter = ["protocol"]
    search_fields = ["code", "title", "positions"]


@admin.register(ProtocolSource)
class ProtocolSourceAdmin(LockedPartAdmin):
    list_display = ["code", "citation", "protocol"]
    list_filter = ["protocol"]
    search_fields = ["code", "citation"]


@admin.register(ProtocolCase)
class ProtocolCaseAdmin(LockedPartAdmin):
    form = CaseForm
    list_display = ["code", "summary", "expected", "protocol"]
    list_filter = ["protocol"]
    search_fields = ["code", "summary", "source"]
    readonly_fields = ["result"]
    fields = [
        "protocol",
        "code",
        "summary",
        "patient",
        "findings",
        "expected_suggested",
        "expected_not_suggested",
        "expected_not_yet",
        "result",
        "rule_refs",
        "source",
    ]

    @admin.display(description="Expected")
    def expected(self, case):
        wanted = ", ".join(case.expected_suggested) or "–"
        unwanted = ", ".join(case.expected_not_suggested) or "–"
        text = f"suggested: {wanted}; not suggested: {unwanted}"
        if case.expected_not_yet:
            text += f"; not yet: {', '.join(case.expected_not_yet)}"
        return text

    @admin.display(description="Result on this version")
    def result(self, case):
        if not case.pk:
            return "–"
        outcome = run_case(get_spec(case.protocol), case.as_case())
        if outcome.passed:
            return format_html(
                "<strong>✓ passes</strong> (suggested: {})", ", ".join(outcome.suggested)
            )
        return format_html(
            "<strong>✕ fails</strong><ul>{}</ul>",
            format_html_join("", "<li>{}</li>", ((f,) for f in outcome.failures)),
        )
