"""Session expiry (idle and absolute) and no caching of pages with patient data."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login

LOGIN_AT = "_login_at"
LAST_SEEN = "_last_seen"
LOGOUT_REASON = "logout_reason"
# Refresh the "last seen" time at most this often: saving the session on every
# request would cost a write per page view for one second of precision.
LAST_SEEN_RESOLUTION_SECONDS = 30


def start_session_clock(session) -> None:
    now = time.time()
    session[LOGIN_AT] = now
    session[LAST_SEEN] = now


class SessionExpiryMiddleware:
    """Log out after SESSION_IDLE_TIMEOUT_MINUTES idle or SESSION_ABSOLUTE_TIMEOUT_HOURS in all.

    The login page then says why (the reason survives in the fresh session).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            expired = self._expired_reason(request)
            if expired:
                logout(request)
                request.session[LOGOUT_REASON] = expired
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)

    def _expired_reason(self, request) -> str | None:
        now = time.time()
        session = request.session
        login_at = session.setdefault(LOGIN_AT, now)
        last_seen = session.get(LAST_SEEN, now)
        if now - login_at > settings.SESSION_ABSOLUTE_TIMEOUT_HOURS * 3600:
            return "absolute"
        if now - last_seen > settings.SESSION_IDLE_TIMEOUT_MINUTES * 60:
            return "idle"
        if LAST_SEEN not in session or now - last_seen >= LAST_SEEN_RESOLUTION_SECONDS:
            session[LAST_SEEN] = now
        return None


class NoStoreMiddleware:
    """Pages for signed-in users hold patient data: no browser or proxy may keep a copy."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.user.is_authenticated:
            response["Cache-Control"] = "no-store, private"
        return response
