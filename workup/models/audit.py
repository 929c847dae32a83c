"""The audit trail: append-only, hash-chained rows of who did what, when.

Changes (create, update, delete, with the values before and after) come from
django-simple-history's historical records, so every tracked model is covered
in the same transaction as the write. Access events (views, prints, exports,
logins, denials) are written by `workup.audit.trail`.
"""

import hashlib
import json

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Changed"
        DELETE = "delete", "Deleted"
        VIEW = "view", "Viewed"
        PRINT = "print", "Printed"
        PDF = "pdf", "Downloaded PDF"
        EXPORT = "export", "Exported"
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Failed login"
        LOGOUT = "logout", "Logged out"
        DENIED = "denied", "Access denied"

    at = models.DateTimeField(db_index=True)
    # PROTECT: the rows are append-only (and user_id is in the hash), so a user who has
    # done anything is disabled, never deleted.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    patient_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    workup_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    summary = models.CharField(max_length=300, blank=True)
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # The chain (workup.audit.trail): `position` orders it, `previous_hash` links each row to
    # the one before, `hash` seals the row. An access event is written first without
    # them (one INSERT on the read path) and sealed into the chain soon after.
    position = models.BigIntegerField(null=True, unique=True)
    previous_hash = models.CharField(max_length=64, blank=True)
    # NULL, not "", while pending: several pending rows must not collide on the unique index.
    hash = models.CharField(max_length=64, unique=True, null=True)  # noqa: DJ001

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["user", "at"], name="audit_user_at_idx"),
            # The rows still to seal: a handful, found without reading the rest.
            models.Index(
                fields=["id"], condition=models.Q(position__isnull=True), name="audit_pending_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action} {self.summary}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")

    @property
    def sealed(self) -> bool:
        return self.position is not None

    def compute_hash(self) -> str:
        """SHA-256 over the previous hash and every recorded field, in a fixed order."""
        payload = json.dumps(
            {
                "previous_hash": self.previous_hash,
                "at": self.at.isoformat(),
                "user_id": self.user_id,
                "username": self.username,
                "action": self.action,
                "object_type": self.object_type,
                "object_id": self.object_id,
                "patient_id": self.patient_id,
                "workup_id": self.workup_id,
                "summary": self.summary,
                "changes": self.changes,
            },
            sort_keys=True,
            cls=DjangoJSONEncoder,
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
