"""A date picker's value is ISO whatever the language: en-gb's DD/MM/YYYY left it empty."""

from datetime import date

from django.utils import translation

from workup.web.forms import DateInput


def test_a_date_field_renders_its_value_as_an_iso_date_in_en_gb():
    with translation.override("en-gb"):
        html = DateInput().render("performed_on", date(2026, 1, 15))

    assert 'type="date"' in html
    assert 'value="2026-01-15"' in html
