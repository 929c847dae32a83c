"""The app as it runs in production: gunicorn with several workers, spoken to over HTTP.

For the proofs that must go through the real doors (concurrent edits, a database
restart): each worker is its own process with its own database connection, the
settings are production's (DEBUG off, so the error pages are the real ones), and
the clients are plain HTTP clients holding a session cookie and a CSRF token.

The server reads the test database, so the tests that use it are transactional
(their rows are committed where the workers can see them).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    """The test database (pytest-django's), as a DATABASE_URL for the server."""
    db = connection.settings_dict
    user = urllib.parse.quote(db["USER"] or "")
    password = f":{urllib.parse.quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    return (
        f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


def production_environment(static_root: Path, **extra: str) -> dict[str, str]:
    """Production settings, except plain HTTP on loopback (no TLS proxy in front)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DJANGO_"))}
    env.update(
        DEBUG="false",
        SECRET_KEY=settings.SECRET_KEY,  # the session cookies are made by the test process
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database_url(),
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
        STATIC_ROOT=str(static_root),
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def collect_static(static_root: Path) -> None:
    """The hashed static files production serves (DEBUG off needs their manifest)."""
    env = production_environment(static_root)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


@dataclass
class Gunicorn:
    """`gunicorn config.wsgi -c config/gunicorn.conf.py` on a free port, until stopped."""

    static_root: Path
    log_path: Path
    workers: int = 4
    threads: int = 1

    def __post_init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        env = production_environment(
            self.static_root,
            GUNICORN_BIND=f"127.0.0.1:{self.port}",
            GUNICORN_WORKERS=str(self.workers),
            GUNICORN_THREADS=str(self.threads),
            GUNICORN_WORKER_CLASS="gthread" if self.threads > 1 else "sync",
        )
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [str(GUNICORN), "config.wsgi", "-c", "config/gunicorn.conf.py"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn exited:\n{self.log()}"
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"gunicorn did not answer /healthz within 60 s:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # graceful: the master stops its workers
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def worker_pids(self) -> set[str]:
        return set(re.findall(r"Booting worker with pid: (\d+)", self.log()))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Page:
    status: int
    body: str
    location: str = ""


class Browser:
    """One signed-in user over HTTP: the session cookie, and the CSRF token of the last form."""

    def __init__(self, base: str, user) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(_NoRedirect)
        signed_in = Client()
        signed_in.force_login(user)  # the session row is committed (transactional tests)
        session = signed_in.cookies[settings.SESSION_COOKIE_NAME].value
        self.cookies = {settings.SESSION_COOKIE_NAME: session}  # and the CSRF cookie, once set
        self.csrf_token = ""

    def get(self, path: str) -> Page:
        return self._open(path)

    def post(self, path: str, data: dict[str, str]) -> Page:
        return self._open(path, {**data, "csrfmiddlewaretoken": self.csrf_token})

    def _open(self, path: str, form: dict[str, str] | None = None) -> Page:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        request = urllib.request.Request(self.base + path, body, headers={"Cookie": cookie})
        try:
            with self.opener.open(request, timeout=60) as response:
                headers = response.headers
                page = Page(response.status, response.read().decode())
        except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx, 5xx
            with error:
                headers = error.headers
                page = Page(error.code, error.read().decode(), headers.get("Location", ""))
        for set_cookie in headers.get_all("Set-Cookie") or []:
            name, _, rest = set_cookie.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        if match := _CSRF.search(page.body):  # a form on the page (a conflict page has one)
            self.csrf_token = match.group(1)
        return page
