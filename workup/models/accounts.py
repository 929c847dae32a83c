"""Audit for user accounts: Django's User is tracked like our own models.

Creating and changing (including disabling) a user are written to the audit
trail through django-simple-history, as for patients and workups. The password
hash and the last-login time are not kept in the history. Accounts are disabled,
never deleted: the append-only audit rows keep naming their user.
"""

from django.contrib.auth import get_user_model
from simple_history import register

register(get_user_model(), app="workup", excluded_fields=["password", "last_login"])
