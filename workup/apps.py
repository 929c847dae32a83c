from django.apps import AppConfig


class WorkupConfig(AppConfig):
    name = "workup"
    verbose_name = "Mastocytosis workup"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from workup import signals  # noqa: F401 - connects the audit receivers
