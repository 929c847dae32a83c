"""The worklist: one page of the user's patients, searched and filtered by step."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from workup import reads
from workup.protocols.cache import get_spec, newest_published
from workup.queries.keyset import Cursor
from workup.queries.worklist import parse_step_filter, worklist_page
from workup.web.access import site_access
from workup.web.forms import SearchForm

SEARCH_SESSION_KEY = "worklist_search"
# A row names the first suggestions by priority; the rest sit behind "+ N more".
SHOWN_SUGGESTIONS = 3


@require_GET
def worklist(request):
    """Four queries whatever the number of patients: session, user, memberships, one page."""
    # The search term lives in the session, not in the URL: patient identifiers
    # never appear in query strings (and so never in proxy or server logs).
    search = request.session.get(SEARCH_SESSION_KEY, "")
    spec = _newest_spec()
    step_choices = [(step.code, step.title) for step in spec.steps] if spec else []
    step_filter = request.GET.get("step", "")
    # "bone_marrow_biopsy" filters on suggested, "not_yet:bone_marrow_biopsy" on not yet.
    step_code, step_state = parse_step_filter(step_filter, dict(step_choices))
    if not step_code:
        step_filter = ""
    access = site_access(request.user)
    page = worklist_page(
        site_ids=access.site_ids,
        search=search,
        step_code=step_code,
        step_state=step_state,
        cursor=Cursor.from_query(request.GET),
        size=settings.WORKLIST_PAGE_SIZE,
    )
    sites = {site.pk: site for site in access.sites}
    titles = dict(step_choices)
    rows = []
    for patient in page.rows:
        # Stored in the order of the version the workup was last built with; shown by the
        # current groups' priority, so the first three are the ones to do first.
        codes = spec.by_priority(patient.suggested_steps or ()) if spec else ()
        suggested = [titles.get(code, code) for code in codes]
        not_yet = [titles.get(code, code) for code in patient.not_yet_steps or ()]
        first, more = suggested[:SHOWN_SUGGESTIONS], suggested[SHOWN_SUGGESTIONS:]
        rows.append((patient, sites.get(patient.site_id), first, more, not_yet))
    return render(
        request,
        "workup/worklist.html",
        {
            "page": page,
            "rows": rows,
            "search_form": SearchForm(initial={"q": search}),
            "search": search,
            "step_filter": step_filter,
            "step_choices": step_choices,
            "can_create": access.can_write_somewhere,
            "site_access": access,
        },
    )


def _newest_spec():
    protocol = newest_published(reads.default_protocol_code())
    return get_spec(protocol) if protocol is not None else None


@require_POST
def worklist_search(request):
    form = SearchForm(request.POST)
    term = form.cleaned_data["q"].strip() if form.is_valid() else ""
    if "clear" in request.POST or not term:
        request.session.pop(SEARCH_SESSION_KEY, None)
    else:
        request.session[SEARCH_SESSION_KEY] = term
    return redirect("worklist")
