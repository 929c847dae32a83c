"""The audit tables refuse UPDATE and DELETE in the database (workup.audit.append_only).

A user who has done anything can no longer be deleted (PROTECT): their audit rows
cannot be rewritten to drop the link, and the user id is part of each row's hash.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from workup.audit import append_only

# The tables as they are at this migration; a later history table installs its own guard.
GUARDED_TABLES = [
    "workup_auditevent",
    "workup_historicalcalculation",
    "workup_historicalcriteriongroup",
    "workup_historicalcriterionitem",
    "workup_historicaldisagreement",
    "workup_historicalfielddefinition",
    "workup_historicalmembership",
    "workup_historicalpatient",
    "workup_historicalprotocol",
    "workup_historicalprotocolcase",
    "workup_historicalprotocolsource",
    "workup_historicalrule",
    "workup_historicalsite",
    "workup_historicalstepdefinition",
    "workup_historicalsteprecord",
    "workup_historicalstepmark",
    "workup_historicaltrendseries",
    "workup_historicaluser",
    "workup_historicalworkup",
]


def install(apps, schema_editor):
    append_only.install(schema_editor.connection, GUARDED_TABLES)


def uninstall(apps, schema_editor):
    append_only.uninstall(schema_editor.connection, GUARDED_TABLES)


class Migration(migrations.Migration):
    dependencies = [
        ("workup", "0011_protocol_criterion_groups_and_trend_series"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="user",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(install, uninstall),
    ]
