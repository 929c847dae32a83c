"""Move one workup to the newest published protocol version: a preview, then a POST.

Anyone who may read the workup sees the preview; only a clinician may move it.

The preview evaluates both versions on the workup's records and lists which
suggestions would change; the move is version-checked and recorded (history
of the workup, its records and marks, with the reason).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from workup.audit import trail
from workup.models import AuditEvent, Protocol
from workup.protocols import versions
from workup.records import move, writes
from workup.web.access import can_write, get_workup_for_user, require_write


class MoveVersionForm(forms.Form):
    workup_version = forms.IntegerField(widget=forms.HiddenInput)
    # The version the preview showed, so that a version published since is not taken
    # unseen; without it, the newest published version.
    target = forms.IntegerField(widget=forms.HiddenInput, required=False)


@require_http_methods(["GET", "POST"])
def move_version(request, workup_id: int):
    workup = get_workup_for_user(request.user, workup_id)
    if request.method == "POST":
        require_write(request.user, workup.patient.site)
        return _move(request, workup)
    preview = move.preview_move(workup)
    trail.record_access(request, AuditEvent.Action.VIEW, workup)
    form = MoveVersionForm(
        initial={
            "workup_version": workup.version,
            "target": preview.target.pk if preview.target else "",
        }
    )
    return render(
        request,
        "workup/version_move.html",
        {
            "workup": workup,
            "patient": workup.patient,
            "preview": preview,
            "form": form,
            "can_write": can_write(request.user, workup.patient.site),
        },
    )


def _move(request, workup):
    form = MoveVersionForm(request.POST)
    target = None
    if form.is_valid():
        wanted = form.cleaned_data["target"]
        target = (
            Protocol.objects.filter(pk=wanted).first()
            if wanted is not None
            else versions.newer_published_version(workup.protocol)
        )
    if target is None:
        messages.error(request, "There is no newer protocol version to move this workup to.")
        return redirect("workup_move_version", workup_id=workup.pk)
    try:
        preview = move.move_workup(
            workup=workup,
            target=target,
            user=request.user,
            expected_version=form.cleaned_data["workup_version"],
        )
    except (move.MoveRefused, writes.WorkupConflict) as refusal:
        messages.error(request, str(refusal))
        return redirect("workup_move_version", workup_id=workup.pk)
    messages.success(
        request,
        f"The workup now follows {target.title}, version {target.version} "
        f"(was version {preview.source.version}).",
    )
    for change in preview.suggestion_changes:
        messages.info(request, change.describe(moved=True))
    return redirect("checklist", workup_id=workup.pk)
