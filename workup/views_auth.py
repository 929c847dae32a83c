"""Login page that says why a session ended."""

from django.contrib.auth import views as auth_views

from .middleware import LOGOUT_REASON

LOGOUT_MESSAGES = {
    "idle": "You were logged out after a period of inactivity. Please log in again.",
    "absolute": "Your session reached its maximum length. Please log in again.",
}


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        reason = self.request.session.pop(LOGOUT_REASON, None)
        context["logout_message"] = LOGOUT_MESSAGES.get(reason)
        return context
