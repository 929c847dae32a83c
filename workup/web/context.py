"""Template context every page gets: the product's name, a setting rather than code,
so a deployment running another protocol is not branded with this one's disease."""

from django.conf import settings


def product(request) -> dict[str, str]:
    return {"app_title": settings.WORKUP_APP_TITLE}
