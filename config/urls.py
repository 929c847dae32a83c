from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from workup.views.login import LoginView

urlpatterns = [
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("workup.urls")),
]

# 503 (not 500) while the database is unreachable: see workup/views/errors.py.
handler500 = "workup.views.errors.server_error"
