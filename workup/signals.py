"""Signal receivers: the audit trail's link to history and to authentication.

Kept to recording only (no business logic): simple-history writes a historical
row for every tracked change, and we append the matching audit event.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save
from django.dispatch import receiver
from simple_history.models import HistoricalRecords
from simple_history.signals import post_create_historical_record

from workup.audit.trail import record_event
from workup.models import AuditEvent
from workup.web.sessions import end_sessions_of

User = get_user_model()

_ACTIONS = {
    "+": AuditEvent.Action.CREATE,
    "~": AuditEvent.Action.UPDATE,
    "-": AuditEvent.Action.DELETE,
}
_NOT_AUDITED = {"password", "last_login"}


def _patient_and_workup(instance) -> tuple[int | None, int | None]:
    label = instance._meta.label_lower
    if label == "workup.patient":
        return instance.pk, None
    if label == "workup.workup":
        return instance.patient_id, instance.pk
    workup_id = getattr(instance, "workup_id", None)
    if workup_id is not None:
        return instance.workup.patient_id, workup_id
    return None, None


def _values(history_instance, instance) -> dict:
    return {
        field.attname: getattr(history_instance, field.attname, None)
        for field in instance._meta.concrete_fields
        if field.attname not in _NOT_AUDITED
    }


def _summary(kind: str, instance) -> str:
    verb = _ACTIONS[kind].label
    step = getattr(instance, "step", None)
    label = instance._meta.label_lower
    if label == "workup.steprecord" and step is not None:
        return f"{verb} result: {step.title}"
    if label == "workup.stepmark" and step is not None:
        return f"{verb} mark ({instance.get_status_display().lower()}): {step.title}"
    return f"{verb} {instance._meta.verbose_name} {instance.pk}"


@receiver(post_create_historical_record)
def audit_history(sender, instance, history_instance, history_user=None, **kwargs):
    kind = history_instance.history_type
    if kind == "~":
        previous = history_instance.prev_record
        if previous is None:
            changes = {k: [None, v] for k, v in _values(history_instance, instance).items()}
        else:
            delta = history_instance.diff_against(previous)
            changes = {
                c.field: [c.old, c.new] for c in delta.changes if c.field not in _NOT_AUDITED
            }
            if not changes:
                return  # saved without a change: nothing to audit
    elif kind == "+":
        changes = {k: [None, v] for k, v in _values(history_instance, instance).items()}
    else:
        changes = {k: [v, None] for k, v in _values(history_instance, instance).items()}
    patient_id, workup_id = _patient_and_workup(instance)
    record_event(
        user=history_user,
        action=_ACTIONS[kind],
        object_type=instance._meta.label_lower,
        object_id=instance.pk,
        patient_id=patient_id,
        workup_id=workup_id,
        summary=_summary(kind, instance),
        changes=changes,
    )


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    record_event(user=user, action=AuditEvent.Action.LOGIN, summary="Logged in")


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    record_event(user=user, action=AuditEvent.Action.LOGOUT, summary="Logged out")


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs):
    # Only the username tried: never the password.
    username = str(credentials.get("username", ""))[:150]
    record_event(
        action=AuditEvent.Action.LOGIN_FAILED, username=username, summary="Failed login attempt"
    )


@receiver(pre_save, sender=User)
def remember_whether_active(sender, instance, update_fields=None, **kwargs):
    if instance.pk is None or (update_fields is not None and "is_active" not in update_fields):
        return
    instance._was_active = (
        User.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first()
    )


@receiver(post_save, sender=User)
def sign_out_a_disabled_user(sender, instance, **kwargs):
    """Disabling an account ends its sessions now, not at their next request: a session
    kept on the server would come back if the account were enabled again."""
    if getattr(instance, "_was_active", False) and not instance.is_active:
        end_sessions_of(instance)
    instance._was_active = instance.is_active


@receiver(m2m_changed, sender=User.groups.through)
def audit_group_change(sender, instance, action, pk_set, model, **kwargs):
    """Groups grant roles (e.g. Protocol admins): adding or removing one is audited."""
    if action not in ("post_add", "post_remove", "post_clear") or not isinstance(instance, User):
        return
    names = sorted(model.objects.filter(pk__in=pk_set or ()).values_list("name", flat=True))
    verb = {"post_add": "added to", "post_remove": "removed from", "post_clear": "removed from"}
    request = getattr(HistoricalRecords.context, "request", None)
    record_event(
        user=getattr(request, "user", None),
        action=AuditEvent.Action.UPDATE,
        object_type="auth.user",
        object_id=instance.pk,
        summary=f"User {instance.get_username()} {verb[action]} "
        f"{', '.join(names) if names else 'every group'}",
        changes={"groups": {"added" if action == "post_add" else "removed": names or ["*"]}},
    )
