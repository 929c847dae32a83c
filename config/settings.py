"""Settings for the mastocytosis workup checklist.

One module, read from the environment (12-factor). Safe defaults: DEBUG is off
unless asked for, and a SECRET_KEY must be given whenever DEBUG is off.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from pythonjsonlogger.core import RESERVED_ATTRS

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file is optional; real environment variables win over it.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

_DEV_ONLY_SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_ONLY_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=true for local development).")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "simple_history",
    "axes",
    "csp",
    "crispy_forms",
    "crispy_bootstrap5",
    # Bootstrap 5 CSS/JS shipped as a Python package: no CDN on a hospital network.
    "bootstrap",
    "workup",
]

MIDDLEWARE = [
    # Outermost, so that its time covers every other layer and every answer is logged.
    "workup.web.middleware.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "workup.web.middleware.SessionExpiryMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "workup.web.middleware.NoStoreMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a lockout into its 429 page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out username is refused before its password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "workup.web.context.product",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers and one writer work together; IMMEDIATE transactions take
    # the write lock up front, so concurrent demo users wait instead of failing
    # with "database is locked" half-way through a transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# Rendered checklist bodies, keyed by the workup's version (workup/web/page_cache.py).
# CACHE_URL=redis://host:6379/0 shares them between all workers and servers (Django's own
# RedisCache, failing open: workup/ops/cache.py); unset, each process keeps its own.
# The bodies hold patient data: a Redis on the hospital's private network, as the database.
CACHE_URL = env.str("CACHE_URL", default="")
if CACHE_URL:
    _cache = env.cache_url_config(CACHE_URL)
    if not _cache["BACKEND"].endswith("RedisCache"):
        raise ImproperlyConfigured("CACHE_URL: only redis:// (or rediss://) is supported.")
    _cache["BACKEND"] = "workup.ops.cache.FailOpenRedisCache"
    # A Redis that hangs is given up on quickly: the page is built without it.
    _cache["OPTIONS"] = {
        "socket_connect_timeout": env.float("CACHE_CONNECT_TIMEOUT_SECONDS", default=0.25),
        "socket_timeout": env.float("CACHE_TIMEOUT_SECONDS", default=0.5),
        **_cache.get("OPTIONS", {}),
    }
    _cache.setdefault("KEY_PREFIX", env.str("CACHE_KEY_PREFIX", default="workup"))
    CACHES = {"default": _cache}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": 300},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Authentication and sessions (HIPAA 164.312(a)(2)(iii): automatic logoff) ---
SESSION_IDLE_TIMEOUT_MINUTES = env.int("SESSION_IDLE_TIMEOUT_MINUTES", default=15)
SESSION_ABSOLUTE_TIMEOUT_HOURS = env.int("SESSION_ABSOLUTE_TIMEOUT_HOURS", default=12)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_TIMEOUT_HOURS * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# The audit chain's head is also written here at each seal_audit (an append-only file
# outside the database), and signed with this key when set: verify_audit then detects
# deleted newest rows. Keep both out of the database's reach (docs/security.md).
AUDIT_CHECKPOINT_DIR = env.str("AUDIT_CHECKPOINT_DIR", default="")
AUDIT_CHECKPOINT_KEY = env.str("AUDIT_CHECKPOINT_KEY", default="")

# django-axes: 10 consecutive failures lock the username for 30 minutes.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# The requirement is to lock the username (an attacker rotating addresses must
# not get more tries); the IP-based variant is a different policy.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
# Never write usernames or addresses of failed attempts to the application log.
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "worklist"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# collectstatic writes here (the test suite collects into a scratch directory).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Django's default: a save's messages ("saved", "now suggested: ...") ride in a signed,
# HttpOnly cookie to the next page, so a save writes no session row; the session takes
# only what does not fit. Messages name steps, never a patient.
MESSAGE_STORAGE = "django.contrib.messages.storage.fallback.FallbackStorage"

# JSON lines for a log collector in production (one object per line: time, level, logger,
# message and the record's fields, e.g. workup.request's user_id, path, status, duration_ms);
# plain text for a developer's terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            # Django's request loggers attach the request, whose text is the full URL: a
            # worklist search (a name, an MRN) must not reach the log.
            "reserved_attrs": [*RESERVED_ATTRS, "request"],
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django's own loggers write through the same handler, in the same format (its default
    # adds a plain-text console handler under DEBUG, and mail to ADMINS, unused here).
    "loggers": {
        "django": {
            "handlers": ["console"],
            "level": env.str("LOG_LEVEL", default="INFO"),
            "propagate": False,
        }
    },
}

# --- Transport and headers: secure by default whenever DEBUG is off ---
# Behind a TLS-terminating proxy that already redirects, set SECURE_SSL_REDIRECT=false
# (and SECURE_PROXY_SSL_HEADER=true if the proxy sets X-Forwarded-Proto).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # Bootstrap's form controls draw their icons from data: SVGs.
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# Worklist page size.
WORKLIST_PAGE_SIZE = env.int("WORKLIST_PAGE_SIZE", default=25)

# Exports (workup/exports/policy.py, docs/exports.md). The pseudonym secret falls back to
# SECRET_KEY; set it of its own in production so that rotating one leaves the other alone.
EXPORT_VIEWER_IDENTIFIERS = env.bool("EXPORT_VIEWER_IDENTIFIERS", default=False)
EXPORT_PSEUDONYM_SECRET = env.str("EXPORT_PSEUDONYM_SECRET", default="")
EXPORT_FHIR_SYSTEM_BASE = env.str("EXPORT_FHIR_SYSTEM_BASE", default="")
# A JSON object: {"site code": "the hospital's MRN identifier system"}.
EXPORT_MRN_SYSTEMS = env.json("EXPORT_MRN_SYSTEMS", default={})
# The protocol (by code) used where none is named: new workups, the worklist's step
# filter, exports and commands. The protocol itself is data (fixtures/, the admin).
WORKUP_DEFAULT_PROTOCOL = env.str("WORKUP_DEFAULT_PROTOCOL", default="mastocytosis")
# The product's name in the navigation bar and the browser tab.
WORKUP_APP_TITLE = env.str("WORKUP_APP_TITLE", default="Mastocytosis workup")
