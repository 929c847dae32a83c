"""Django admin: protocol content for protocol admins; sites and memberships for site admins.

Protocol admins hold only the protocol permissions (group "Protocol admins"),
so patient data never appears for them here.
"""

import json

from django.contrib import admin
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from .models import (
    Calculation,
    CriterionItem,
    Disagreement,
    FieldDefinition,
    Membership,
    Protocol,
    ProtocolSource,
    Rule,
    Site,
    StepDefinition,
)


def _pretty(value) -> str:
    return format_html(
        "<pre class='mb-0'>{}</pre>", json.dumps(value, indent=1, ensure_ascii=False)
    )


class StepInline(admin.TabularInline):
    model = StepDefinition
    fields = ["order", "code", "title", "section", "repeatable", "is_safety_item"]
    extra = 0
    show_change_link = True


class FieldInline(admin.TabularInline):
    model = FieldDefinition
    fields = ["order", "code", "label", "kind", "unit", "min_value", "max_value", "required"]
    extra = 0


@admin.register(Protocol)
class ProtocolAdmin(SimpleHistoryAdmin):
    list_display = ["code", "version", "title", "status", "published_at"]
    list_filter = ["status", "code"]
    search_fields = ["code", "title"]
    inlines = [StepInline]


@admin.register(StepDefinition)
class StepDefinitionAdmin(SimpleHistoryAdmin):
    list_display = ["code", "title", "section", "order", "protocol"]
    list_filter = ["protocol", "section", "is_safety_item"]
    search_fields = ["code", "title"]
    inlines = [FieldInline]


@admin.register(Rule)
class RuleAdmin(SimpleHistoryAdmin):
    list_display = ["code", "title", "action", "target_step", "enabled", "protocol"]
    list_filter = ["protocol", "action", "enabled"]
    search_fields = ["code", "title", "rationale", "source"]
    readonly_fields = ["condition_readable"]

    @admin.display(description="Condition (formatted)")
    def condition_readable(self, rule):
        return _pretty(rule.condition)


@admin.register(Calculation)
class CalculationAdmin(SimpleHistoryAdmin):
    list_display = ["code", "label", "order", "display", "protocol"]
    list_filter = ["protocol", "display"]
    search_fields = ["code", "label"]


@admin.register(CriterionItem)
class CriterionItemAdmin(SimpleHistoryAdmin):
    list_display = ["code", "label", "group", "kind", "protocol"]
    list_filter = ["protocol", "group", "kind"]
    search_fields = ["code", "label"]


@admin.register(Disagreement)
class DisagreementAdmin(SimpleHistoryAdmin):
    list_display = ["code", "title", "step", "protocol"]
    list_filter = ["protocol"]
    search_fields = ["code", "title", "positions"]


@admin.register(ProtocolSource)
class ProtocolSourceAdmin(SimpleHistoryAdmin):
    list_display = ["code", "citation", "protocol"]
    list_filter = ["protocol"]
    search_fields = ["code", "citation"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Site)
class SiteAdmin(SimpleHistoryAdmin):
    list_display = ["name", "code"]
    search_fields = ["name", "code"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(SimpleHistoryAdmin):
    list_display = ["user", "site", "role"]
    list_filter = ["site", "role"]
    search_fields = ["user__username", "site__name"]
    autocomplete_fields = ["user", "site"]
