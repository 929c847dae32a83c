"""The protocol page: a version with its steps, calculations, rules and cases, and its actions.

Actions (list and object tools): "New draft from this version", "Publish" (runs
the case library and refuses while a case fails), "Run cases"; pages to compare
two versions, export the fixture and import cases.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from simple_history.admin import SimpleHistoryAdmin

from workup.admin.forms import (
    CalculationForm,
    CaseImportForm,
    DraftCheckedFormSet,
    RuleForm,
    StepForm,
)
from workup.admin.parts import JSON_FIELDS, LockedInlineMixin, short, warn_about_draft
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
    TrendSeries,
)
from workup.protocols import versions
from workup.protocols.cache import get_spec
from workup.protocols.case_library import CaseFileError, import_cases, parse_cases
from workup.protocols.diff import diff_protocols
from workup.protocols.export import export_text

HISTORY_MODELS = (
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
)


class StepInline(LockedInlineMixin, admin.TabularInline):
    model = StepDefinition
    form = StepForm
    formset = DraftCheckedFormSet
    fields = ["order", "code", "title", "section", "group", "repeatable", "is_safety_item"]
    extra = 0
    show_change_link = True


class CalculationInline(LockedInlineMixin, admin.TabularInline):
    model = Calculation
    form = CalculationForm
    formset = DraftCheckedFormSet
    fields = ["order", "code", "label", "expression_text", "display"]
    readonly_fields = ["expression_text"]
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # on the calculation's own page, where the expression is typed

    @admin.display(description="Expression")
    def expression_text(self, calc):
        return short(calc.expression)


class RuleInline(LockedInlineMixin, admin.TabularInline):
    model = Rule
    form = RuleForm
    formset = DraftCheckedFormSet
    fields = ["priority", "code", "title", "action", "target_step", "condition_text", "enabled"]
    readonly_fields = ["condition_text"]
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # on the rule's own page, where the condition is typed

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        if obj is not None and "target_step" in formset.form.base_fields:
            formset.form.base_fields["target_step"].queryset = obj.stepdefinition_set.all()
        return formset

    @admin.display(description="Condition")
    def condition_text(self, rule):
        return short(rule.condition, 70)


class CaseInline(LockedInlineMixin, admin.TabularInline):
    model = ProtocolCase
    fields = ["code", "summary", "expected_suggested", "expected_not_suggested"]
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # on the case's own page, or imported from a file


@admin.register(Protocol)
class ProtocolAdmin(SimpleHistoryAdmin):
    list_display = ["code", "version", "title", "status", "published_at", "workups", "cases"]
    list_display_links = ["code", "version", "title"]
    list_filter = ["status", "code"]
    search_fields = ["code", "title", "description"]
    fields = [
        "code",
        "version",
        "title",
        "status",
        "published_at",
        "description",
        "disclaimer",
        "trend_title",
        "trend_value_label",
        "other_parts",
        "other_versions",
        "recent_changes",
    ]
    readonly_fields = ["status", "published_at", "other_parts", "other_versions", "recent_changes"]
    inlines = [StepInline, CalculationInline, RuleInline, CaseInline]
    actions = ["new_draft_action", "publish_action", "run_cases_action"]
    change_form_template = "admin/workup/protocol/change_form.html"
    formfield_overrides = JSON_FIELDS

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                workup_count=Count("workups", distinct=True),
                case_count=Count("protocolcase", distinct=True),
            )
        )

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["code", "version"] if obj else fields

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (obj and obj.is_locked)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and (obj.is_locked or obj.workups.exists()):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def response_change(self, request, obj):
        warn_about_draft(request, obj)
        return super().response_change(request, obj)

    @admin.display(description="Workups", ordering="workup_count")
    def workups(self, protocol):
        return protocol.workup_count

    @admin.display(description="Cases", ordering="case_count")
    def cases(self, protocol):
        return protocol.case_count

    @admin.display(description="Other parts")
    def other_parts(self, protocol):
        if not protocol.pk:
            return "–"
        links = [
            ("fielddefinition", "Fields", f"step__protocol__id__exact={protocol.pk}"),
            ("stepgroup", "Step groups", f"protocol__id__exact={protocol.pk}"),
            ("criteriongroup", "WHO / ICC groups", f"protocol__id__exact={protocol.pk}"),
            ("criterionitem", "WHO / ICC items", f"protocol__id__exact={protocol.pk}"),
            ("trendseries", "Trend series", f"protocol__id__exact={protocol.pk}"),
            ("disagreement", "Disagreements", f"protocol__id__exact={protocol.pk}"),
            ("protocolsource", "Sources", f"protocol__id__exact={protocol.pk}"),
            ("protocolcase", "Cases", f"protocol__id__exact={protocol.pk}"),
        ]
        items = [
            (reverse(f"admin:workup_{m}_changelist") + f"?{q}", label) for m, label, q in links
        ]
        if not protocol.is_locked:
            items += [
                (reverse(f"admin:workup_{m}_add") + f"?protocol={protocol.pk}", f"Add a {label}")
                for m, label in (
                    ("rule", "rule"),
                    ("stepgroup", "step group"),
                    ("calculation", "calculation"),
                    ("criteriongroup", "WHO / ICC group"),
                    ("criterionitem", "WHO / ICC item"),
                    ("trendseries", "trend series"),
                    ("disagreement", "disagreement"),
                    ("protocolsource", "source"),
                    ("protocolcase", "case"),
                )
            ]
        return format_html_join(" · ", "<a href='{}'>{}</a>", items)

    @admin.display(description="Versions")
    def other_versions(self, protocol):
        if not protocol.pk:
            return "–"
        others = Protocol.objects.filter(code=protocol.code).exclude(pk=protocol.pk)
        if not others:
            return "No other version."
        diff = reverse("admin:workup_protocol_diff", args=[protocol.pk])
        return format_html_join(
            mark_safe("<br>"),
            "<a href='{}'>v{} ({})</a> · <a href='{}?against={}'>compare</a>",
            (
                (
                    reverse("admin:workup_protocol_change", args=[o.pk]),
                    o.version,
                    o.status,
                    diff,
                    o.pk,
                )
                for o in others.order_by("-version")
            ),
        )

    @admin.display(description="Recent changes to this version")
    def recent_changes(self, protocol):
        rows = recent_changes(protocol) if protocol.pk else []
        if not rows:
            return "–"
        return format_html(
            "<table><tr><th>When</th><th>Who</th><th>What</th><th>Item</th><th>Note</th></tr>"
            "{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><a href='{}'>{}</a></td><td>{}</td></tr>",
                rows,
            ),
        )

    # Actions --------------------------------------------------------------------------

    @admin.action(description="New draft from this version", permissions=["add"])
    def new_draft_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one version to copy.", messages.ERROR)
            return None
        return self._new_draft(request, queryset.get())

    @admin.action(description="Publish (runs the case library first)", permissions=["change"])
    def publish_action(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one draft to publish.", messages.ERROR)
            return None
        return self._publish(request, queryset.get())

    @admin.action(description="Run cases", permissions=["view"])
    def run_cases_action(self, request, queryset):
        reports = [(p, versions.check_version(p)) for p in queryset.order_by("code", "version")]
        return self._render_results(request, reports, title="Case library results")

    def _new_draft(self, request, protocol):
        draft = versions.new_draft(protocol=protocol, user=request.user)
        self.message_user(
            request,
            f"{draft.code} v{draft.version} is a new draft copied from v{protocol.version}, "
            "case library included. Change it, run its cases, then publish it.",
            messages.SUCCESS,
        )
        return redirect("admin:workup_protocol_change", draft.pk)

    def _publish(self, request, protocol):
        try:
            published = versions.publish(protocol=protocol, user=request.user)
        except versions.PublishRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            if refusal.report is None:
                return redirect("admin:workup_protocol_change", protocol.pk)
            return self._render_results(
                request, [(protocol, refusal.report)], title=f"Not published: {protocol}"
            )
        self.message_user(
            request,
            f"{published.code} v{published.version} is published: new workups use it; "
            "workups in progress stay on their version until a clinician moves them.",
            messages.SUCCESS,
        )
        return redirect("admin:workup_protocol_change", published.pk)

    def _render_results(self, request, reports, *, title):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "reports": reports,
        }
        return TemplateResponse(request, "admin/workup/protocol/case_results.html", context)

    # Pages ----------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/diff/", wrap(self.diff_view), name="workup_protocol_diff"),
            path(
                "<path:object_id>/run-cases/",
                wrap(self.run_cases_view),
                name="workup_protocol_run_cases",
            ),
            path(
                "<path:object_id>/publish/",
                wrap(require_POST(self.publish_view)),
                name="workup_protocol_publish",
            ),
            path(
                "<path:object_id>/new-draft/",
                wrap(require_POST(self.new_draft_view)),
                name="workup_protocol_new_draft",
            ),
            path(
                "<path:object_id>/import-cases/",
                wrap(self.import_cases_view),
                name="workup_protocol_import_cases",
            ),
            path("<path:object_id>/export/", wrap(self.export_view), name="workup_protocol_export"),
            *super().get_urls(),
        ]

    def _get(self, request, object_id) -> Protocol:
        protocol = self.get_object(request, unquote(object_id))
        if protocol is None:
            raise Http404("No such protocol version.")
        if not self.has_view_or_change_permission(request, protocol):
            raise PermissionDenied
        return protocol

    def diff_view(self, request, object_id):
        protocol = self._get(request, object_id)
        others = Protocol.objects.filter(code=protocol.code).exclude(pk=protocol.pk)
        against = None
        if request.GET.get("against", "").isdigit():
            against = others.filter(pk=request.GET["against"]).first()
        if against is None:
            against = (
                others.filter(version__lt=protocol.version).order_by("-version").first()
                or others.order_by("version").first()
            )
        old, new = sorted([protocol, against], key=lambda p: p.version) if against else (None, None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"What changed: {protocol.code}",
            "original": protocol,
            "against": against,
            "others": others.order_by("-version"),
            "old": old,
            "new": new,
            "changes": diff_protocols(get_spec(old), get_spec(new)) if against else [],
        }
        return TemplateResponse(request, "admin/workup/protocol/diff.html", context)

    def run_cases_view(self, request, object_id):
        protocol = self._get(request, object_id)
        report = versions.check_version(protocol)
        return self._render_results(request, [(protocol, report)], title=f"Cases of {protocol}")

    def publish_view(self, request, object_id):
        protocol = self._get(request, object_id)
        if not self.has_change_permission(request):
            raise PermissionDenied
        return self._publish(request, protocol)

    def new_draft_view(self, request, object_id):
        protocol = self._get(request, object_id)
        if not self.has_add_permission(request):
            raise PermissionDenied
        return self._new_draft(request, protocol)

    def export_view(self, request, object_id):
        protocol = self._get(request, object_id)
        response = HttpResponse(export_text(protocol), content_type="application/json")
        name = f"{protocol.code}-v{protocol.version}.json"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def import_cases_view(self, request, object_id):
        protocol = self._get(request, object_id)
        if not self.has_change_permission(request, protocol):
            raise PermissionDenied("A published or retired version's cases are read-only.")
        form = CaseImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                cases = parse_cases(form.cleaned_data["file"].read())
                report = import_cases(protocol=protocol, cases=cases, user=request.user)
            except CaseFileError as error:
                for problem in error.problems:
                    form.add_error("file", problem)
            else:
                self.message_user(request, f"Cases imported: {report}.", messages.SUCCESS)
                return redirect("admin:workup_protocol_change", protocol.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Import cases into {protocol}",
            "original": protocol,
            "form": form,
        }
        return TemplateResponse(request, "admin/workup/protocol/import_cases.html", context)


def recent_changes(protocol: Protocol, limit: int = 15) -> list[tuple]:
    """(when, who, what, link, item, note) for the latest changes to a version and its parts."""
    step_ids = list(protocol.stepdefinition_set.values_list("pk", flat=True))
    rows = []
    for model in HISTORY_MODELS:
        history = model.history.select_related("history_user")
        if model is Protocol:
            history = history.filter(id=protocol.pk)
        elif model is FieldDefinition:
            history = history.filter(step_id__in=step_ids)
        else:
            history = history.filter(protocol_id=protocol.pk)
        for row in history.order_by("-history_date")[:limit]:
            rows.append((model, row))
    rows.sort(key=lambda pair: pair[1].history_date, reverse=True)
    return [
        (
            f"{row.history_date:%Y-%m-%d %H:%M}",
            row.history_user.get_username() if row.history_user else "(a command)",
            row.get_history_type_display(),
            reverse(f"admin:workup_{model._meta.model_name}_history", args=[row.id]),
            f"{model._meta.verbose_name} {getattr(row, 'code', '')}".strip(),
            row.history_change_reason or "",
        )
        for model, row in rows[:limit]
    ]
