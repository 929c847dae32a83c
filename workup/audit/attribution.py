"""Saving and deleting as a named user: how every write names who made it.

django-simple-history takes the user from the request (HistoryRequestMiddleware);
commands, tasks and services run outside one, so each write of a tracked row
goes through `save_as` / `delete_as`, which name the user (and, for protocol
work, the reason) on the instance for the historical row and so for the audit
trail (audit/trail.py turns each historical row into an audit event).
"""

from __future__ import annotations

from collections.abc import Iterable

CHANGE_REASON_LENGTH = 100  # simple-history's history_change_reason column


def _attribute(instance, user, reason: str) -> None:
    instance._history_user = user
    if reason:
        instance._change_reason = reason[:CHANGE_REASON_LENGTH]


def save_as(instance, user, *, reason: str = "", update_fields: Iterable[str] | None = None):
    """Save, naming the user (and why) in the history, inside a request or not."""
    _attribute(instance, user, reason)
    instance.save(update_fields=update_fields)


def delete_as(instance, user, *, reason: str = "") -> None:
    _attribute(instance, user, reason)
    instance.delete()
