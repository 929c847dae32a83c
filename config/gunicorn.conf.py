"""gunicorn settings for production: `gunicorn config.wsgi -c config/gunicorn.conf.py`.

Every value can be overridden from the environment (GUNICORN_BIND, GUNICORN_WORKERS,
GUNICORN_THREADS, GUNICORN_TIMEOUT, ...) without editing this file. The defaults
were chosen from measurements on the 2-core machine: see bench/results.md
("Worker configurations") and `bench/run.py --configs`.
"""

import gc
import os


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Behind a TLS-terminating proxy on the same host. In a container: GUNICORN_BIND=0.0.0.0:8000.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")

# 2 gthread workers of 4 threads, chosen on the 2-core machine (bench/results.md,
# "Worker configurations"): against 3 or 5 sync workers and gthread 3x1, 3x2, 2x2,
# no configuration won by more than the noise of a shared machine (the ranking of
# sync:3 and gthread:2x4 swapped between runs; 5 sync workers and 3x2 were no better).
# gthread decides on what throughput does not: `timeout` never cuts a long request
# short (below), and threads overlap database waits.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
workers = _env_int("GUNICORN_WORKERS", 2)
threads = _env_int("GUNICORN_THREADS", 4)
# A gthread worker accepts connections while it has fewer than this open. At its
# thread count, a busy worker leaves new connections in the listen queue for an idle
# one, as sync workers do, instead of queueing them behind a PDF or an export.
worker_connections = _env_int("GUNICORN_WORKER_CONNECTIONS", threads)

# A gthread worker's main loop reports to the master at least once a second whatever
# its threads are doing, so `timeout` only restarts a worker that has hung; requests
# may run longer. They do: the summary PDF takes 0.5-2 s (up to 10 s at four at once
# under load), and a CSV export streams about 15 ms per workup, i.e. minutes for a
# large site. With sync workers this same timeout would kill such an export.
timeout = _env_int("GUNICORN_TIMEOUT", 60)
# How long a restart (deploy, max_requests) waits for requests in flight.
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
# Short: an idle kept-alive connection holds one of a worker's connection slots.
keepalive = _env_int("GUNICORN_KEEPALIVE", 2)

# Recycle each worker after about ten thousand requests (jitter: not all at once), so
# that memory held by WeasyPrint and large exports goes back to the system.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 1000)

# Access log without query strings, referrers or user agents: method, path, status,
# size and time in ms. Paths carry only database ids; search terms live in the session
# (workup/views.py), and a referrer could carry another page's query string.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# gunicorn 25+ opens a control socket at one fixed path per user by default; two
# instances on one host (blue/green, or the benchmark beside the app) would share it.
control_socket_disable = True
# Worker heartbeats in memory, not on a disk that may be slow or full.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def post_worker_init(worker):
    """Load WeasyPrint (Pango, fonts) when a worker starts, not on its first PDF; then
    freeze what is loaded so far out of the cycle collector's way.

    The import takes a second or two: without it, the first PDF after every worker start
    (and every max_requests recycle) waits for it. Imported after the fork, so no
    library state is shared between workers.

    `gc.freeze()`: Django, the app, WeasyPrint and their modules live as long as the
    worker, yet every full collection walked them all again. A summary PDF makes enough
    objects to set one off every second PDF or so, 0.1 s each time (bench/pdf_bench.py:
    runs alternating 0.37 and 0.49 s; frozen, 0.35-0.37 s). Frozen objects are never
    collected, which costs nothing for objects that are never garbage.
    """
    try:
        import weasyprint  # noqa: F401
    except Exception:  # noqa: BLE001 - never keep a worker from starting over a warm-up
        worker.log.exception("Could not load WeasyPrint at worker start")
    gc.collect()  # what start-up left as garbage is freed, not frozen for good
    gc.freeze()
