"""Every admin page answers a user without the permission alike, whether the object exists.

Django's history page (and django-simple-history's) looks the object up before it
checks the permission: a staff user who may not see users or sites gets 403 for
one that exists and a redirect (or 404) for one that does not, which tells them
which ids exist. The same rule as the app's pages (another site's patient is a 404,
not a 403): the answer must not confirm that an object exists. Here the history
page checks the model permission first.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied


class PermissionBeforeLookup:
    """ModelAdmin mixin: refuse the history page before looking the object up."""

    def history_view(self, request, object_id, extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return super().history_view(request, object_id, extra_context)


def apply_to_every_registered_admin(site: admin.AdminSite) -> None:
    """Re-register every ModelAdmin (the app's, django.contrib.auth's, django-axes') with
    the mixin. Runs after every app's admin module is imported (INSTALLED_APPS order:
    this app is last)."""
    for model, model_admin in list(site._registry.items()):
        if isinstance(model_admin, PermissionBeforeLookup):
            continue
        base = type(model_admin)
        site.unregister(model)
        site.register(model, type(base.__name__, (PermissionBeforeLookup, base), {}))
