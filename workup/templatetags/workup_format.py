"""Template filters over `workup.core.formatting`: dates and numbers look the same everywhere."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django import template
from django.utils import timezone

from workup.core import formatting

register = template.Library()


@register.filter
def as_date(value: date | datetime | None) -> str:
    """A day as "15 Jan 2026"; a moment is first taken to the clinic's time zone."""
    if isinstance(value, datetime):
        value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return formatting.format_date(value)


@register.filter
def as_datetime(value: datetime | None) -> str:
    if value is not None and timezone.is_aware(value):
        value = timezone.localtime(value)  # the clinic's zone; the core formats what it is given
    return formatting.format_datetime(value)


@register.filter
def as_number(value) -> str:
    return "" if value is None else formatting.format_number(value)


@register.filter
def as_duration(value: timedelta | None) -> str:
    """A period in words: "30 minutes", "1 hour", "1 hour 30 minutes"."""
    if value is None:
        return ""
    minutes = round(value.total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours} hour{'s' if hours != 1 else ''}"] if hours else []
    if minutes or not hours:
        parts.append(f"{minutes} minute{'s' if minutes != 1 else ''}")
    return " ".join(parts)
