"""Create the demo sites, users and patients. Safe to run again: nothing is duplicated."""

import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from workup import reads
from workup.core.values import validate_step_values
from workup.models import Membership, Patient, Site
from workup.protocols.cache import get_spec
from workup.records import writes

DEMO_PASSWORD = "demo-password"  # documented in the README; demo only


class Command(BaseCommand):
    help = "Load demo sites, users (password 'demo-password') and patients from a JSON file."

    def add_arguments(self, parser):
        parser.add_argument("demo_file")

    @transaction.atomic
    def handle(self, *args, demo_file: str, **options):
        try:
            with open(demo_file, encoding="utf-8") as handle:
                demo = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise CommandError(f"Cannot read {demo_file}: {error}") from None

        sites = {}
        for site in demo["sites"]:
            sites[site["code"]], _ = Site.objects.get_or_create(
                code=site["code"], defaults={"name": site["name"]}
            )
        users = {}
        for entry in demo["users"]:
            users[entry["username"]] = self._user(entry, sites)

        try:
            protocol = reads.current_protocol()
        except reads.NoPublishedProtocol as error:
            raise CommandError(f"{error} Load the protocol first.") from None
        spec = get_spec(protocol)
        created = 0
        for entry in demo["patients"]:
            created += self._patient(entry, sites, users, spec)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: {len(sites)} sites, {len(users)} users, "
                f"{created} new patient(s) ({len(demo['patients'])} in the file)."
            )
        )

    def _user(self, entry, sites):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=entry["username"],
            defaults={
                "first_name": entry.get("first_name", ""),
                "last_name": entry.get("last_name", ""),
                "is_staff": entry.get("is_staff", False),
                "is_superuser": entry.get("is_superuser", False),
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        for group_name in entry.get("groups", []):
            user.groups.add(Group.objects.get(name=group_name))
        for membership in entry.get("memberships", []):
            Membership.objects.get_or_create(
                user=user, site=sites[membership["site"]], defaults={"role": membership["role"]}
            )
        return user

    def _patient(self, entry, sites, users, spec) -> int:
        site = sites[entry["site"]]
        if Patient.objects.filter(site=site, mrn=entry["mrn"]).exists():
            return 0
        today = timezone.localdate()
        age_days = round(entry["age_years"] * 365.25)
        clinician = users[entry.get("recorded_by", "clinician")]
        patient = Patient.objects.create(
            site=site,
            mrn=entry["mrn"],
            family_name=entry["family_name"],
            given_name=entry["given_name"],
            birth_date=today - timedelta(days=age_days),
            sex=entry["sex"],
            created_by=clinician,
        )
        findings = entry.get("findings")
        if findings is None:
            return 1
        workup = writes.open_workup(patient=patient, user=clinician)
        for offset, (step_code, values) in enumerate(findings.items()):
            step = spec.step(step_code)
            problems = validate_step_values(step, values)
            if problems:
                raise CommandError(f"Demo patient {entry['mrn']}: {problems[0]}")
            writes.record_step(
                workup=workup,
                step_code=step_code,
                values={k: v for k, v in values.items() if not step.field(k).is_calculated},
                performed_on=today - timedelta(days=2 * (len(findings) - offset)),
                note="",
                user=clinician,
                expected_version=None,
            )
        for step_code, mark in entry.get("marks", {}).items():
            writes.set_mark(
                workup=workup,
                step_code=step_code,
                status=mark["status"],
                reason=mark.get("reason", ""),
                user=clinician,
                expected_version=None,
            )
        return 1
