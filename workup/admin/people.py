"""Sites, memberships and users. Roles: clinician or viewer at a site (a membership);
protocol admin is the "Protocol admins" group (protocol permissions only, no patient).

Changes to sites and memberships are kept in their history, shown in the admin.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from simple_history.admin import SimpleHistoryAdmin

from workup.models import Membership, Site


class SiteMembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Site)
class SiteAdmin(SimpleHistoryAdmin):
    list_display = ["name", "code"]
    search_fields = ["name", "code"]
    inlines = [SiteMembershipInline]


@admin.register(Membership)
class MembershipAdmin(SimpleHistoryAdmin):
    list_display = ["user", "site", "role"]
    list_filter = ["site", "role"]
    search_fields = ["user__username", "user__last_name", "site__name"]
    autocomplete_fields = ["user", "site"]
    list_select_related = ["user", "site"]


class UserMembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["site"]
    verbose_name = "site membership"
    verbose_name_plural = "Site memberships (clinician: read and write; viewer: read only)"


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class WorkupUserAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, UserMembershipInline]
    list_display = ["username", "first_name", "last_name", "is_staff", "roles"]
    list_filter = [*UserAdmin.list_filter, "memberships__site"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("memberships__site", "groups")

    def has_delete_permission(self, request, obj=None):
        # The audit trail names every user who did anything, and it is append-only:
        # an account is disabled (untick "Active"), never deleted.
        return False

    @admin.display(description="Roles")
    def roles(self, user):
        roles = [
            f"{m.get_role_display().split(' (')[0]} at {m.site}" for m in user.memberships.all()
        ]
        roles += [group.name for group in user.groups.all()]
        if user.is_superuser:
            roles.append("superuser")
        return "; ".join(roles) or "–"
