"""Login page that says why a session ended."""

from django.contrib.auth import views as auth_views

from workup.web.middleware import LOGOUT_REASON, start_session_clock

LOGOUT_MESSAGES = {
    "idle": "You were logged out after a period of inactivity. Please log in again.",
    "absolute": "Your session reached its maximum length. Please log in again.",
}


class LoginView(auth_views.LoginView):
    def form_valid(self, form):
        response = super().form_valid(form)
        # The absolute session limit counts from the moment of login.
        start_session_clock(self.request.session)
        return response

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        reason = self.request.session.pop(LOGOUT_REASON, None)
        context["logout_message"] = LOGOUT_MESSAGES.get(reason)
        return context
