"""The worklist's export form: shown with the options this user may use."""

from __future__ import annotations

from django import template

from ..access import sites_for_user, workups_for_user
from ..exports import policy

register = template.Library()


@register.inclusion_tag("workup/_export_actions.html", takes_context=True)
def export_actions(context) -> dict:
    """Export CSV / data dictionary, keeping the worklist's step filter (the search is in the
    session). "Include identifiers" is offered only to users who may export them."""
    user = context["request"].user
    sites = list(sites_for_user(user))
    versions = list(
        workups_for_user(user)
        .order_by("protocol__code", "-protocol__version")
        .values_list("protocol__code", "protocol__version")
        .distinct()
    )
    return {
        "show": bool(sites),
        "step_filter": context.get("step_filter", ""),
        "search": context.get("search", ""),
        "may_identify": bool(sites) and policy.may_export_identifiers(user, sites),
        "versions": versions,
    }
