"""Ending a user's sessions on the server (when an account is disabled)."""

from __future__ import annotations

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.utils import timezone


def end_sessions_of(user) -> int:
    """Delete every unexpired session signed in as `user`; returns how many.

    Sessions store the user id inside their signed data, so each live session is
    decoded: fine for an administrator's occasional action.
    """
    ended = 0
    live = Session.objects.filter(expire_date__gt=timezone.now())
    for session in live.iterator(chunk_size=500):
        if str(session.get_decoded().get(SESSION_KEY)) == str(user.pk):
            session.delete()
            ended += 1
    return ended
