"""The worklist's export form: shown with the options this user may use."""

from __future__ import annotations

from django import template

from workup.exports import policy
from workup.protocols.cache import released_protocols
from workup.web.access import site_access

register = template.Library()


@register.inclusion_tag("workup/_export_actions.html", takes_context=True)
def export_actions(context, access=None) -> dict:
    """Export CSV / data dictionary, keeping the worklist's step filter (the search is in the
    session). "Include identifiers" is offered only to users who may export them.

    `access`: the user's SiteAccess when the page has it already (saves a query)."""
    user = context["request"].user
    access = access or site_access(user)
    sites = list(access.sites)
    # Every released version, not only those with workups here: the distinct versions
    # of a million workups would cost more than the worklist itself.
    versions = [(p.code, p.version) for p in released_protocols()]
    return {
        "show": bool(sites),
        "step_filter": context.get("step_filter", ""),
        "search": context.get("search", ""),
        "may_identify": bool(sites)
        and policy.may_export_identifiers(user, sites, roles=access.roles),
        "versions": versions,
    }
