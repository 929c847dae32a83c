"""The protocol admin role: a group that may manage protocol content, and nothing else."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PROTOCOL_ADMINS = "Protocol admins"
PROTOCOL_MODELS = (
    "protocol",
    "protocolsource",
    "stepdefinition",
    "fielddefinition",
    "calculation",
    "rule",
    "criterionitem",
    "disagreement",
)


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=PROTOCOL_ADMINS)
    codenames = [
        f"{action}_{model}"
        for model in PROTOCOL_MODELS
        for action in ("add", "change", "delete", "view")
    ]
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="workup", codename__in=codenames)
    )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=PROTOCOL_ADMINS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workup", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
