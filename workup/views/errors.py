"""The server-error page: 503 while the database is unreachable, 500 for anything else.

Django calls this (config/urls.py: handler500) for any exception a view or a
middleware did not handle, inside the `except` block, so the exception is at hand.
A database that is restarting or unreachable is not a bug in the request: the
answer is 503 with Retry-After. The page says the request may not have been saved
(a commit can land just before the connection drops) and to send it again: a
second send of a form that was saved after all meets the workup's version check
and gets the conflict page, so it is never saved twice. Neither page touches the database.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template import loader
from django.views.decorators.csrf import requires_csrf_token
from django.views.defaults import server_error as django_server_error

# Seconds a client should wait: about as long as a database restart takes.
RETRY_AFTER_SECONDS = 10


def database_unavailable(exception: BaseException | None) -> bool:
    """A lost or refused database connection, raised as such or while handling one.

    Django wraps the driver's errors in OperationalError / InterfaceError; an error
    raised while cleaning up after one (a rollback on the dead connection) carries
    it as its context.
    """
    seen = 0
    while exception is not None and seen < 10:
        if isinstance(exception, OperationalError | InterfaceError):
            return True
        exception = exception.__cause__ or exception.__context__
        seen += 1
    return False


@requires_csrf_token
def server_error(request, template_name: str = "500.html"):
    if not database_unavailable(sys.exc_info()[1]):
        return django_server_error(request, template_name)
    # Rendered without the request: a context processor could query the database.
    body = loader.get_template("503.html").render({"retry_after": RETRY_AFTER_SECONDS})
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
