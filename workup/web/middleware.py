"""Session expiry (idle and absolute), no caching of pages with patient data, and one log
line per request."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.utils.functional import empty

request_log = logging.getLogger("workup.request")

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


class RequestLogMiddleware:
    """One line per request for the operators: who (user id), what (method, path, view),
    the status and how long it took. Nothing about a patient: the path holds database ids
    only, and the query string is left out (a filter, a page cursor, or whatever a pasted
    link carries); the worklist search itself travels in a POST and the session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        if request_log.isEnabledFor(logging.INFO):
            match = getattr(request, "resolver_match", None)
            fields = {
                "user_id": _user_id(request),
                "method": request.method,
                "path": request.path,
                "view": match.view_name if match else None,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            request_log.info(
                "%(method)s %(path)s %(status)s %(duration_ms)s ms user %(user_id)s",
                fields,
                extra=fields,
            )
        return response


def _user_id(request) -> int | None:
    user = getattr(request, "user", None)
    # A page that never asked who the user is (the health check) is not made to ask now:
    # that would cost a session query per probe.
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    return user.pk if user.is_authenticated else None
