"""Django admin: protocol versions for protocol admins; sites, memberships and users.

Protocol admins hold only the protocol permissions (group "Protocol admins"),
and patients, workups and records are not in the admin at all: a protocol
admin never sees patient data here.
"""

from django.contrib import admin

from workup.admin import people, protocols  # noqa: F401 - registers the admin pages
from workup.admin.no_disclosure import apply_to_every_registered_admin

apply_to_every_registered_admin(admin.site)
