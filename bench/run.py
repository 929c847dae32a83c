"""Seed a database, serve it with gunicorn as in production, load it with wrk, report.

    .venv/bin/python bench/run.py                                   # SQLite, 100,000 patients
    .venv/bin/python bench/run.py --patients 2000 --duration 5      # a quick look
    .venv/bin/python bench/run.py --db postgres --patients 1000000 --sites 20 --keep
    .venv/bin/python bench/run.py --configs sync:2,sync:3,sync:5,gthread:2x4   # workers

One command does it all:

1. a database: a SQLite file in a scratch directory, or a PostgreSQL database of
   its own (`bench_workup`, dropped first); `migrate`, `load_protocol`, then
   `seed_demo --patients N --sites K` (timed). With --keep and the same
   --data-dir (SQLite) or database (PostgreSQL) a later run reuses the data;
2. a bench user, clinician at the first synthetic site (--superuser: a superuser);
3. the query count of every page at a small size and at N (Django's test client);
4. gunicorn with the production settings (DEBUG off, secure defaults but plain
   HTTP on loopback) and config/gunicorn.conf.py, on a free port of 127.0.0.1;
5. a login through the login page (CSRF token, django-axes in the way as in
   production), then wrk on each endpoint: a warm-up, then a fixed time at a fixed
   number of connections. Only the expected status counts as success (200; 302 for
   the step POST, where a 409 conflict or a 400 is a failure);
6. a table with the ratios to the trivial signed-in page (/about/), and the same
   with the machine's description in bench/results.md (one section per database
   kind, replaced by the next run of that kind).

Why wrk: it is a C program that costs little CPU. On a 2-core machine the load
generator shares the cores with gunicorn; a Python generator (locust) would take
a large share of them and lower what it measures. Its Lua hooks are enough for the
session cookie, the per-request POST bodies and counting statuses.
Debian: `apt-get install wrk`.

Not run by CI or `make test`: it takes minutes and needs the machine to itself.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
LUA = ROOT / "bench" / "wrk_session.lua"
RESULTS = ROOT / "bench" / "results.md"
sys.path.insert(0, str(ROOT / "bench"))
from prepare import STEP_CODE, last_link, step_post_body  # noqa: E402

USERNAME = "bench"
PASSWORD = "bench-only-password-0451"
SITE = "synthetic-1"
SMALL_PATIENTS = 60  # enough for three worklist pages of 25, so there is a "Last" link
ENDPOINTS = (
    "healthz",
    "about",
    "worklist_first",
    "worklist_last",
    "checklist",
    "step_post",
    "pdf",
)
# Issue #6: ratios to the trivial view, and pages whose query count must not grow.
TARGETS = (
    ("checklist throughput >= 0.25 x the trivial view's", "checklist", "rps_ratio", ">=", 0.25),
    ("worklist throughput >= 0.15 x the trivial view's", "worklist_first", "rps_ratio", ">=", 0.15),
    ("checklist p95 <= 4 x the trivial view's p95", "checklist", "p95_ratio", "<=", 4.0),
    ("last worklist page p50 <= 1.5 x the first's", "worklist_last", "p50_vs_first", "<=", 1.5),
)


@dataclass
class Result:
    name: str
    path: str
    method: str
    requests: int
    ok: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    statuses: dict[str, int]
    socket_errors: int
    timeouts: int
    wraps: int
    load: list[float]  # 1-minute load average at the start of each turn
    rps_ratio: float | None = None
    p95_ratio: float | None = None
    p50_vs_first: float | None = None

    @property
    def rps(self) -> float:
        return self.ok / self.seconds

    @property
    def failed(self) -> int:
        return self.requests - self.ok + self.socket_errors


@dataclass
class Database:
    """The benchmark's database (and a small one for query counts) of one kind."""

    kind: str
    url: str
    small_url: str
    pg_admin_url: str = ""
    names: tuple[str, ...] = ()

    @classmethod
    def make(cls, args, data_dir: Path) -> Database:
        if args.db == "sqlite":
            return cls(
                "sqlite",
                f"sqlite:///{data_dir / 'bench.sqlite3'}",
                f"sqlite:///{data_dir / 'small.sqlite3'}",
            )
        base = args.pg_url.rstrip("/")
        return cls(
            "postgres",
            f"{base}/{args.pg_name}",
            f"{base}/{args.pg_name}_small",
            pg_admin_url=f"{base}/postgres",
            names=(args.pg_name, f"{args.pg_name}_small"),
        )

    def seeded_patients(self, url: str) -> int | None:
        """Synthetic patients already there (None: no database or no tables)."""
        sql = "SELECT count(*) FROM workup_patient WHERE mrn LIKE 'SYN%'"
        try:
            if self.kind == "sqlite":
                path = url.removeprefix("sqlite:///")
                if not Path(path).exists():
                    return None
                with sqlite3.connect(path) as conn:
                    return conn.execute(sql).fetchone()[0]
            import psycopg

            with psycopg.connect(url, connect_timeout=5) as conn:
                return conn.execute(sql).fetchone()[0]
        except Exception:  # noqa: BLE001 - missing database or tables: seed afresh
            return None

    def drop(self, url: str) -> None:
        if self.kind == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            for extra in ("", "-wal", "-shm"):
                Path(f"{path}{extra}").unlink(missing_ok=True)
            return
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create(self, url: str) -> None:
        self.drop(url)
        if self.kind == "postgres":
            import psycopg

            name = url.rsplit("/", 1)[1]
            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')

    def version(self) -> str:
        if self.kind == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        import psycopg

        with psycopg.connect(self.url) as conn:
            return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0]

    def size(self) -> str:
        if self.kind == "sqlite":
            path = Path(self.url.removeprefix("sqlite:///"))
            return f"{path.stat().st_size / 1e6:.0f} MB"
        import psycopg

        with psycopg.connect(self.url) as conn:
            return conn.execute(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()[0]


def environment(database_url: str, **extra: str) -> dict[str, str]:
    """Production settings, except plain HTTP on loopback (no TLS proxy in front)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DJANGO_"))}
    env.update(
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-never-use-in-production-4f1c9a",
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        DATABASE_URL=database_url,
        SECURE_SSL_REDIRECT="false",
        SECURE_COOKIES="false",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(PYTHON), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare(env: dict[str, str], *args: str) -> dict:
    done = subprocess.run(
        [str(PYTHON), "bench/prepare.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"bench/prepare.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def build(db: Database, url: str, patients: int, sites: int, keep: bool) -> float | None:
    """Migrate and seed (seconds spent seeding), or reuse a kept database (None)."""
    env = environment(url)
    if keep and db.seeded_patients(url) == patients:
        log(f"reusing {url} ({patients} patients)")
        manage(env, "migrate", "--noinput", "-v0")  # the code may have new migrations
        return None
    db.create(url)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "load_protocol", "fixtures/mastocytosis.json")
    log(f"seeding {patients} patients over {sites} site(s) into {url}")
    started = time.perf_counter()
    manage(env, "seed_demo", "--patients", str(patients), "--sites", str(sites))
    return time.perf_counter() - started


def log(text: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with config/gunicorn.conf.py; a worker configuration from the environment."""

    def __init__(self, env: dict[str, str], config: str | None, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.access_log = workdir / f"access-{self.port}.log"
        self.env = dict(env, GUNICORN_BIND=f"127.0.0.1:{self.port}")
        self.env["GUNICORN_ACCESS_LOG"] = str(self.access_log)
        self.env.update(worker_environment(config))
        self.error_log = open(workdir / f"gunicorn-{self.port}.log", "w")  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.process = subprocess.Popen(
            [str(GUNICORN), "config.wsgi", "-c", "config/gunicorn.conf.py"],
            cwd=ROOT,
            env=self.env,
            stdout=self.error_log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited: see {self.error_log.name}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        sys.exit("gunicorn did not answer /healthz within 60 s")

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # graceful: the master stops its workers
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.error_log.close()

    def settings(self) -> str:
        text = Path(self.error_log.name).read_text()
        workers = len(set(re.findall(r"Booting worker with pid: (\d+)", text)))
        kind = re.search(r"Using worker: (\S+)", text)
        return f"{kind.group(1) if kind else '?'} worker class, {workers} worker(s) booted"


def worker_environment(config: str | None) -> dict[str, str]:
    """ "sync:3" -> 3 sync workers; "gthread:2x4" -> 2 workers of 4 threads; None: the file's."""
    if not config:
        return {}
    kind, _, size = config.partition(":")
    workers, _, threads = size.partition("x")
    return {
        "GUNICORN_WORKER_CLASS": kind,
        "GUNICORN_WORKERS": workers,
        "GUNICORN_THREADS": threads or "1",
    }


class Session:
    """A signed-in browser: cookies from the login page, as a user would get them."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=60) as response:
            return response.read().decode()

    def login(self) -> None:
        page = self.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode(
            {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token, "next": "/"}
        ).encode()
        with self.opener.open(self.base + "/accounts/login/", data, timeout=60) as response:
            if urllib.parse.urlparse(response.url).path.startswith("/accounts/login"):
                sys.exit("bench login failed (wrong password, or locked out by django-axes)")
        if "sessionid" not in self.cookies():
            sys.exit("bench login set no session cookie")

    def cookies(self) -> dict[str, str]:
        return {c.name: c.value for c in self.jar}

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies().items())

    def post_status(self, path: str, body: dict[str, str]) -> int:
        """POST without following the redirect: 302 is success."""
        request = urllib.request.Request(
            self.base + path,
            urllib.parse.urlencode(body).encode(),
            headers={"Cookie": self.cookie_header()},
        )
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def wrk(args, url: str, cookie: str, seconds: float, bodies: Path | None = None) -> dict:
    env = dict(os.environ, BENCH_COOKIE=cookie, BENCH_THREADS=str(args.wrk_threads))
    env["BENCH_CLOSE"] = "0" if args.keepalive else "1"
    env["BENCH_BODIES"] = str(bodies) if bodies else ""
    command = [
        "wrk",
        f"-t{args.wrk_threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "60s",
        "-s",
        str(LUA),
        url,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        sys.exit(f"wrk gave no summary:\n{done.stdout}\n{done.stderr}")
    return json.loads(line.removeprefix("BENCH_JSON "))


def measure(args, server: Server, targets: dict, workdir: Path) -> list[Result]:
    session = Session(server.base)
    session.login()
    cookie = session.cookie_header()
    checklist = f"/workups/{targets['checklist']}/"
    paths = {
        "healthz": "/healthz",
        "about": "/about/",
        "worklist_first": "/",
        "worklist_last": urllib.parse.urljoin("/", last_link(session.get("/"))),
        "checklist": checklist,
        "step_post": f"/workups/<id>/steps/{STEP_CODE}/",
        "pdf": f"{checklist}summary.pdf",
    }
    post_files: list[Path] = []
    warm_posts: Path | None = None
    if "step_post" in args.endpoints:
        warm_posts, post_files = post_bodies(args, session, targets["posts"], workdir)
    # Each endpoint is measured in --turns turns, the endpoints taking turns, so that a
    # change in the machine's load (other people's work) weighs on all of them alike.
    turns: dict[str, list[tuple[dict, float]]] = {name: [] for name in args.endpoints}
    for turn in range(args.turns):
        for name in args.endpoints:
            path = paths[name]
            # The PDF: a longer warm-up (each worker's first PDF loads WeasyPrint and
            # the fonts) and a longer run (a few PDFs a second at most on two cores).
            warmup, duration = (
                (args.pdf_warmup, args.pdf_duration)
                if name == "pdf"
                else (args.warmup, args.duration)
            )
            bodies = post_files[turn] if name == "step_post" else None
            if turn == 0 and warmup:
                log(f"{name}: {path} (warm-up {warmup:g} s)")
                warm = warm_posts if name == "step_post" else None
                wrk(args, server.base + first_path(path, warm), cookie, warmup, warm)
            load = os.getloadavg()[0]
            seconds = duration / args.turns
            summary = wrk(args, server.base + first_path(path, bodies), cookie, seconds, bodies)
            turns[name].append((summary, load))
            latest = merge(name, path, turns[name][-1:])
            log(f"{name} turn {turn + 1}/{args.turns}: {row_text(latest)}")
    results = [merge(name, paths[name], turns[name]) for name in args.endpoints]
    add_ratios(results)
    return results


def merge(name: str, path: str, turns: list[tuple[dict, float]]) -> Result:
    """One endpoint's turns: counts added up, percentiles the median of the turns'."""
    expected = "302" if name == "step_post" else "200"
    statuses: dict[str, int] = {}
    for summary, _ in turns:
        for status, count in summary["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count

    answered = [summary for summary, _ in turns if summary["requests"]] or [turns[0][0]]

    def median(key: str) -> float:  # of the turns that finished a request
        return statistics.median(summary[key] for summary in answered) / 1e3

    return Result(
        name=name,
        path=path,
        method="POST" if name == "step_post" else "GET",
        requests=sum(summary["requests"] for summary, _ in turns),
        ok=statuses.get(expected, 0),
        seconds=sum(summary["duration_us"] for summary, _ in turns) / 1e6,
        p50_ms=median("p50_us"),
        p95_ms=median("p95_us"),
        p99_ms=median("p99_us"),
        statuses=statuses,
        socket_errors=sum(summary["socket_errors"] for summary, _ in turns),
        timeouts=sum(summary["timeouts"] for summary, _ in turns),
        wraps=sum(summary["wraps"] for summary, _ in turns),
        load=[load for _, load in turns],
    )


def first_path(path: str, bodies: Path | None) -> str:
    """wrk needs a URL; for the POSTs the Lua script sets each request's own path."""
    if bodies is None:
        return path
    return bodies.read_text().split("\t", 1)[0]


def post_bodies(args, session: Session, posts: list, workdir: Path) -> tuple[Path, list[Path]]:
    """One POST per workup (its current version): warm-up lines, then each turn's lines.

    The form is read from the page itself (csrf token, hidden fields); one POST is
    sent first and must be answered 302, or the benchmark stops.
    """
    (probe_id, probe_version), *rest = posts
    path = f"/workups/{probe_id}/steps/{STEP_CODE}/"
    fields = step_post_body(session.get(path), probe_version)
    status = session.post_status(path, fields)
    if status != 302:
        sys.exit(f"a step POST was answered {status}, not 302: the form has changed?")
    lines = [
        f"/workups/{wid}/steps/{STEP_CODE}/\t"
        + urllib.parse.urlencode(dict(fields, workup_version=str(version)))
        for wid, version in rest
    ]
    # Lines for the warm-up, then a share for each turn: every line is used once.
    split = max(1, int(len(lines) * args.warmup / (args.warmup + args.duration)))
    warm = workdir / "posts-warm.txt"
    warm.write_text("\n".join(lines[:split]) + "\n")
    measured = lines[split:]
    share = max(1, len(measured) // args.turns)
    files = []
    for turn in range(args.turns):
        path = workdir / f"posts-{turn + 1}.txt"
        path.write_text("\n".join(measured[turn * share : (turn + 1) * share]) + "\n")
        files.append(path)
    return warm, files


def add_ratios(results: list[Result]) -> None:
    by_name = {r.name: r for r in results}
    trivial, first = by_name.get("about"), by_name.get("worklist_first")
    for r in results:
        if trivial and trivial.rps and trivial.p95_ms:
            r.rps_ratio = r.rps / trivial.rps
            r.p95_ratio = r.p95_ms / trivial.p95_ms
    if first and "worklist_last" in by_name:
        by_name["worklist_last"].p50_vs_first = by_name["worklist_last"].p50_ms / first.p50_ms


def row_text(r: Result) -> str:
    failed = f", {r.failed} failed {dict(sorted(r.statuses.items()))}" if r.failed else ""
    return (
        f"{r.rps:8.1f} req/s  p50 {r.p50_ms:7.1f} ms  p95 {r.p95_ms:7.1f} ms  ({r.ok} ok{failed})"
    )


def table(results: list[Result]) -> list[str]:
    lines = [
        "| endpoint | request | req/s | p50 ms | p95 ms | p99 ms | ok | failed "
        "| req/s ÷ trivial | p95 ÷ trivial p95 |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        failed = str(r.failed)
        if r.failed:
            others = {k: v for k, v in r.statuses.items() if k not in ("200", "302")}
            failed += f" {others}" if others else ""
            failed += f" ({r.socket_errors} socket errors)" if r.socket_errors else ""
        lines.append(
            f"| {r.name} | `{r.method} {r.path}` | {r.rps:.1f} | {r.p50_ms:.1f} | "
            f"{r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.ok} | {failed} | {fmt(r.rps_ratio)} | "
            f"{fmt(r.p95_ratio)} |"
        )
    return lines


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def verdicts(results: list[Result], counts: dict) -> list[tuple[str, str, bool | None]]:
    by_name = {r.name: r for r in results}
    out = []
    for text, name, attribute, op, bound in TARGETS:
        r = by_name.get(name)
        value = getattr(r, attribute) if r else None
        if value is None:
            out.append((text, "not measured", None))
            continue
        met = value >= bound if op == ">=" else value <= bound
        out.append((text, f"{value:.2f}", met))
    small, large = counts.get("small", {}), counts.get("large", {})
    if small and large:
        differ = {k: (small[k], large[k]) for k in small if small[k] != large.get(k)}
        out.append(
            (
                "query count of every page the same at both sizes",
                "same" if not differ else f"differ: {differ}",
                not differ,
            )
        )
    return out


def machine(db: Database, server_settings: str, args) -> list[str]:
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    cpu = model.group(1).strip() if model else platform.machine()
    versions = subprocess.run(
        [
            str(PYTHON),
            "-c",
            "from importlib.metadata import version as v; print(v('django'), v('gunicorn'))",
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return [
        f"- CPU: {os.cpu_count()} cores ({cpu}), "
        f"RAM {mem_kb / 1024 / 1024:.0f} GiB; {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, Django {versions[0]}, gunicorn {versions[1]}, "
        f"{db.version()}; load generator {wrk_version.split(' [')[0].strip()}",
        f"- gunicorn: config/gunicorn.conf.py{f' with {args.config}' if args.config else ''} "
        f"({server_settings}), on 127.0.0.1; DEBUG off, production settings",
        f"- Load: wrk, {args.connections} connections "
        f"({'kept alive' if args.keepalive else 'one per request, as from a proxy'}), "
        f"{args.wrk_threads} thread(s), "
        f"each endpoint in {args.turns} turns (the endpoints taking turns; percentiles are "
        "the median of the turns'), "
        f"{args.warmup:g} s warm-up then {args.duration:g} s per endpoint ({args.pdf_warmup:g} s "
        f"and {args.pdf_duration:g} s for the PDF), one endpoint at a time",
    ]


def ratio_table(slow: str, fast: str, rounds: list[tuple[float, float]]) -> list[str]:
    """A table of (slow, fast) milliseconds per round, then their medians, with the ratios."""
    slow_ms = statistics.median(r[0] for r in rounds)
    fast_ms = statistics.median(r[1] for r in rounds)
    return [
        f"| round | {slow} | {fast} | ratio |",
        "|---|--:|--:|--:|",
        *(f"| {n} | {s:.2f} | {f:.2f} | {s / f:.1f}x |" for n, (s, f) in enumerate(rounds, 1)),
        f"| **median** | **{slow_ms:.2f}** | **{fast_ms:.2f}** | **{slow_ms / fast_ms:.1f}x** |",
    ]


def write_section(key: str, lines: list[str]) -> None:
    """Replace this run's section of bench/results.md, keeping the others."""
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    text = RESULTS.read_text() if RESULTS.exists() else results_header()
    block = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def results_header() -> str:
    return (
        "# Benchmark results\n\n"
        "Written by `bench/run.py` (see the README, *Benchmark*): one section per database\n"
        "kind, replaced by the next run of that kind, and the worker configurations\n"
        "compared to choose config/gunicorn.conf.py. Requests per second count only the\n"
        "expected status (200; 302 for the step POST). Ratios are to the trivial signed-in\n"
        "page `/about/`, measured in the same run.\n"
    )


def report(args, db: Database, targets, counts, seed_seconds, results, server_settings):
    now = datetime.now(UTC)
    title = f"{'SQLite' if db.kind == 'sqlite' else 'PostgreSQL'}, {args.patients:,} patients"
    lines = [
        f"## {title}",
        "",
        f"Run {now:%Y-%m-%d %H:%M} UTC{' (preliminary)' if args.note else ''}. "
        + (args.note or ""),
        "",
        "### Machine",
        "",
        *machine(db, server_settings, args),
        "- Load average (1 min) at the start of each turn: "
        + ", ".join(f"{r.name} {'/'.join(f'{x:.1f}' for x in r.load)}" for r in results),
        "",
        "### Data",
        "",
        f"- `seed_demo --patients {args.patients} --sites {args.sites}`: "
        + (f"{seed_seconds:.1f} s" if seed_seconds is not None else "reused from an earlier run")
        + f"; database size {db.size()}",
        f"- Rows: {', '.join(f'{k} {v:,}' for k, v in targets['rows'].items())}",
        f"- The bench user is a clinician at {SITE}: {targets['site_patients']:,} patients. "
        f"Checklist and PDF: workup {targets['checklist']} "
        f"({targets['checklist_records']} step records, the most at the site). Step POST: "
        f"a baseline tryptase to a different workup each time (its current version).",
        "",
        "### Throughput and latency",
        "",
        *table(results),
        "",
        "### Targets (issue #6)",
        "",
        "| target | measured | |",
        "|---|--:|---|",
        *[
            f"| {text} | {value} | {'met' if met else 'not met' if met is False else '–'} |"
            for text, value, met in verdicts(results, counts)
        ],
        "",
        "### Queries per page",
        "",
        "Django's test client as the bench user, each page's second request (per-process",
        f"caches warm): at {SMALL_PATIENTS} patients (one site) and at {args.patients:,}.",
        "",
        "| page | " + " | ".join(counts["large"]) + " |",
        "|---|" + "--:|" * len(counts["large"]),
        f"| {SMALL_PATIENTS} patients | "
        + " | ".join(str(counts["small"].get(k, "–")) for k in counts["large"])
        + " |",
        f"| {args.patients:,} patients | "
        + " | ".join(str(v) for v in counts["large"].values())
        + " |",
    ]
    return lines


def report_configs(args, db: Database, by_config: dict[str, list[list[Result]]]) -> list[str]:
    names = [r.name for r in next(iter(by_config.values()))[0]]
    loads = [x for rounds in by_config.values() for run in rounds for r in run for x in r.load]
    lines = [
        "## Worker configurations",
        "",
        f"{'SQLite' if db.kind == 'sqlite' else 'PostgreSQL'}, {args.patients:,} patients, "
        f"wrk {args.connections} connections "
        f"({'kept alive' if args.keepalive else 'one per request'}), {args.warmup:g} s warm-up and "
        f"{args.duration:g} s per endpoint ({args.pdf_warmup:g} s and {args.pdf_duration:g} s "
        f"for the PDF), {args.rounds} round(s), the configurations taking turns; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Load average (1 min) during the "
        f"measurements {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores "
        "(other work on the machine): compare rows, not single figures.",
        "",
        "Requests per second, median of the rounds (p95 latency in ms, median):",
        "",
        "| configuration | " + " | ".join(names) + " |",
        "|---|" + "--:|" * len(names),
    ]
    for config, rounds in by_config.items():
        cells = []
        for i in range(len(names)):
            rps = statistics.median(run[i].rps for run in rounds)
            p95 = statistics.median(run[i].p95_ms for run in rounds)
            cells.append(f"{rps:.1f} ({p95:.0f})")
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    return lines


def query_counts(db: Database, args, targets, keep: bool) -> dict:
    """At a small size and at N: the two must be equal for every page."""
    large = prepare(
        environment(db.url),
        "queries",
        "--username",
        USERNAME,
        "--checklist",
        str(targets["checklist"]),
    )
    build(db, db.small_url, SMALL_PATIENTS, 1, keep)
    small_env = environment(db.small_url)
    prepare(small_env, "user", "--username", USERNAME, "--password", PASSWORD, "--site", SITE)
    small_targets = prepare(small_env, "targets", "--site", SITE, "--posts", "10")
    small = prepare(
        small_env,
        "queries",
        "--username",
        USERNAME,
        "--checklist",
        str(small_targets["checklist"]),
    )
    if not keep:
        db.drop(db.small_url)
    return {"small": small, "large": large}


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--pg-name", default="bench_workup")
    parser.add_argument(
        "--data-dir", type=Path, help="SQLite files and logs here (default: a scratch directory)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, and reuse one with N patients"
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up first")
    parser.add_argument("--pdf-duration", type=float, default=30, help="seconds, for the PDF")
    parser.add_argument("--pdf-warmup", type=float, default=10, help="seconds, for the PDF")
    parser.add_argument(
        "--turns", type=int, default=2, help="measure each endpoint in turns, taking turns"
    )
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--keepalive",
        action="store_true",
        help="keep wrk's connections open (default: one per request, as behind a proxy)",
    )
    parser.add_argument(
        "--configs",
        help="worker configurations to compare, e.g. sync:2,sync:3,gthread:2x4 "
        "(default: config/gunicorn.conf.py as it is)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --configs: rounds of turns")
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument(
        "--max-posts",
        type=int,
        default=20_000,
        help="workups prepared for the step POST (each is posted to once)",
    )
    parser.add_argument("--superuser", action="store_true", help="bench user is a superuser")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results.md")
    parser.add_argument("--note", default="", help="a sentence for results.md (e.g. preliminary)")
    args = parser.parse_args()
    args.endpoints = [e for e in args.endpoints.split(",") if e]
    unknown = set(args.endpoints) - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoints {sorted(unknown)}; choose from {', '.join(ENDPOINTS)}")
    if args.wrk_threads > args.connections:
        parser.error("--wrk-threads must not exceed --connections")
    return args


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed. Debian/Ubuntu: sudo apt-get install wrk")
    scratch = None
    if args.data_dir:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        workdir = args.data_dir
    else:
        scratch = tempfile.TemporaryDirectory(prefix="workup-bench-")
        workdir = Path(scratch.name)
    db = Database.make(args, workdir)
    if args.keep and db.kind == "sqlite" and not args.data_dir:
        sys.exit("--keep with SQLite needs --data-dir (the scratch directory is removed)")
    try:
        seed_seconds = build(db, db.url, args.patients, args.sites, args.keep)
        env = environment(db.url)
        manage(env, "collectstatic", "--noinput", "-v0")
        user = ["user", "--username", USERNAME, "--password", PASSWORD, "--site", SITE]
        prepare(env, *user, *(["--superuser"] if args.superuser else []))
        log("counting queries per page")
        targets = prepare(env, "targets", "--site", SITE, "--posts", "1")
        counts = query_counts(db, args, targets, args.keep)
        log(f"queries at {SMALL_PATIENTS}: {counts['small']}")
        log(f"queries at {args.patients}: {counts['large']}")

        configs = args.configs.split(",") if args.configs else [None]
        by_config: dict[str, list[list[Result]]] = {}
        # Configurations take turns, round after round: a machine whose load changes
        # (other people's work) then weighs on all of them alike.
        for round_ in range(1, args.rounds + 1):
            for config in configs:
                args.config = config
                # Fresh versions for the POSTs (earlier POSTs moved them on).
                targets = prepare(env, "targets", "--site", SITE, "--posts", str(args.max_posts))
                with Server(env, config, workdir) as server:
                    log(f"round {round_}: gunicorn {config or '(config file)'} on {server.base}")
                    results = measure(args, server, targets, workdir)
                    server_settings = server.settings()
                by_config.setdefault(config or "config file", []).append(results)
                check_access_log(server)
                print()
                print(f"gunicorn {config or 'as in config/gunicorn.conf.py'} ({server_settings})")
                print("\n".join(table(results)))
                print()
        if len(configs) > 1:
            section, lines = "workers", report_configs(args, db, by_config)
        else:
            section = db.kind
            lines = report(args, db, targets, counts, seed_seconds, results, server_settings)
        print("\n".join(lines))
        if not args.no_write:
            write_section(section, lines)
            log(f"wrote the {section} section of {RESULTS.relative_to(ROOT)}")
        return 0
    finally:
        if not args.keep:
            db.drop(db.url)
        if scratch:
            scratch.cleanup()


def check_access_log(server: Server) -> None:
    """The access log must carry no query string (the pager's ids, any filter)."""
    if not server.access_log.exists():
        return
    lines = server.access_log.read_text().splitlines()
    leaking = [line for line in lines if "?" in line]
    if leaking:
        log(f"WARNING: {len(leaking)} access log lines with a query string, e.g. {leaking[0]}")
    else:
        log(f"access log: {len(lines)} lines, none with a query string")


if __name__ == "__main__":
    sys.exit(main())
