"""Template filters over `workup.core.formatting`: dates and numbers look the same everywhere."""

from __future__ import annotations

from datetime import date, datetime

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
