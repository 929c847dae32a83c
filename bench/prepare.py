"""The Django side of bench/run.py: the bench user, the workups to load, query counts.

    DATABASE_URL=... SECRET_KEY=... python bench/prepare.py user --username bench ...
    DATABASE_URL=... SECRET_KEY=... python bench/prepare.py targets --site synthetic-1
    DATABASE_URL=... SECRET_KEY=... python bench/prepare.py queries --username bench ...

Each command prints one JSON object on its last line. Run by bench/run.py in a child
process with the benchmark's environment; not part of the application.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import date
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parent.parent
STEP_CODE = "serum_tryptase"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def make_user(args) -> dict:
    """A clinician at one site (or a superuser): the person the benchmark signs in as."""
    from django.contrib.auth import get_user_model

    from workup.models import Membership, Site

    user, _ = get_user_model().objects.get_or_create(
        username=args.username, defaults={"first_name": "Bench", "last_name": "User"}
    )
    user.set_password(args.password)
    user.is_superuser = user.is_staff = args.superuser
    user.save()
    if not args.superuser:
        site = Site.objects.get(code=args.site)
        Membership.objects.update_or_create(
            user=user, site=site, defaults={"role": Membership.Role.CLINICIAN}
        )
    return {"user_id": user.pk}


def targets(args) -> dict:
    """The checklist to load (the workup with most records at the site) and workups to POST to."""
    from django.db.models import Count, Q

    from workup.models import Patient, Site, StepMark, StepRecord, Workup, WorkupSuggestion

    site = Site.objects.get(code=args.site)
    at_site = Workup.objects.filter(patient__site=site, status=Workup.Status.OPEN)
    # The workup with most seeded records (not counting the benchmark's own POSTs, which
    # have an author), so that every run loads the same checklist and PDF.
    busiest = (
        at_site.annotate(
            records_count=Count("records", filter=Q(records__recorded_by__isnull=True))
        )
        .order_by("-records_count", "pk")
        .values("pk", "records_count")
        .first()
    )
    posts = list(
        at_site.exclude(pk=busiest["pk"]).order_by("pk").values_list("pk", "version")[: args.posts]
    )
    return {
        "checklist": busiest["pk"],
        "checklist_records": busiest["records_count"],
        "posts": posts,
        "site_patients": Patient.objects.filter(site=site).count(),
        "rows": {
            model.__name__: model.objects.count()
            for model in (Site, Patient, Workup, StepRecord, StepMark, WorkupSuggestion)
        },
    }


def last_link(html: str) -> str:
    """The href of the pager's "Last" link, whatever form the pager gives it."""
    for href, text in re.findall(r'<a[^>]*href="([^"]*)"[^>]*>\s*([^<]*?)\s*</a>', html):
        if text == "Last":
            return unescape(href)
    raise SystemExit("No 'Last' link on the first worklist page: too few patients at the site?")


def step_post_body(html: str, version: int) -> dict[str, str]:
    """The step form's fields as the page gives them, with a baseline tryptase filled in."""
    form = re.search(r'<form method="post"(?![^>]*action=)[^>]*>(.*?)</form>', html, re.S)
    if not form:
        raise SystemExit("No step form on the step page: is the bench user a clinician?")
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", form.group(1)):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:  # of radio buttons the first (for is_baseline: "yes")
            fields.setdefault(name.group(1), unescape(value.group(1)) if value else "")
    for name in re.findall(r'<textarea[^>]*name="([^"]*)"', form.group(1)):
        fields[name] = ""
    fields["value_ng_ml"] = "14.5"
    fields["performed_on"] = fields.get("performed_on") or date.today().isoformat()
    fields["workup_version"] = str(version)
    return fields


def queries(args) -> dict:
    """Queries per page for the bench user, each page's second request (caches warm)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = get_user_model().objects.get(username=args.username)
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    checklist = f"/workups/{args.checklist}/"
    first = client.get("/").content.decode()
    pages = {
        "healthz": "/healthz",
        "about": "/about/",
        "worklist_first": "/",
        "worklist_last": urljoin("/", last_link(first)),
        "checklist": checklist,
        "step_form": f"{checklist}steps/{STEP_CODE}/",
        "summary": f"{checklist}summary/",
        "pdf": f"{checklist}summary.pdf",
    }
    counts: dict[str, int] = {}
    for name, url in pages.items():
        assert client.get(url).status_code == 200, url
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        counts[name] = len(captured)
    # Two step POSTs (a warm-up, then the one counted) to a workup opened just now for
    # this purpose, so that it is in the same state at any size: a POST that deletes a
    # mark or changes the list of suggestions makes a few more queries, whatever the size.
    workup = fresh_workup(user, args.site)
    url = f"/workups/{workup.pk}/steps/{STEP_CODE}/"
    for _ in ("warm-up", "counted"):
        workup.refresh_from_db()
        body = step_post_body(client.get(url).content.decode(), workup.version)
        with CaptureQueriesContext(connection) as captured:
            response = client.post(url, body)
        assert response.status_code == 302, (url, response.status_code)
    counts["step_post"] = len(captured)
    return counts


def fresh_workup(user, site_code: str):
    """An adult's workup opened through the service layer, nothing recorded yet."""
    import uuid

    from workup.models import Patient, Site
    from workup.records import writes

    patient = Patient.objects.create(
        site=Site.objects.get(code=site_code),
        mrn=f"BQ-{uuid.uuid4().hex[:12]}",
        family_name="Querycount-Synthetic",
        given_name="Bench",
        birth_date=date(1970, 1, 1),
        sex="female",
    )
    return writes.open_workup(patient=patient, user=user)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    user = commands.add_parser("user")
    user.add_argument("--username", required=True)
    user.add_argument("--password", required=True)
    user.add_argument("--site", default="synthetic-1")
    user.add_argument("--superuser", action="store_true")
    found = commands.add_parser("targets")
    found.add_argument("--site", default="synthetic-1")
    found.add_argument("--posts", type=int, default=5000)
    counted = commands.add_parser("queries")
    counted.add_argument("--username", required=True)
    counted.add_argument("--checklist", type=int, required=True)
    counted.add_argument("--site", default="synthetic-1")
    args = parser.parse_args()
    setup_django()
    result = {"user": make_user, "targets": targets, "queries": queries}[args.command](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
