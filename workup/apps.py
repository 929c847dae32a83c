from django.apps import AppConfig


class WorkupConfig(AppConfig):
    name = "workup"
    verbose_name = "Mastocytosis workup"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from workup import signals  # noqa: F401 - connects the audit receivers
        from workup.audit import append_only

        # SQLite's append-only triggers call a function each connection must define.
        connection_created.connect(append_only.register_sqlite_function)
