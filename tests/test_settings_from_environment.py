"""Settings an operator sets in the environment (docs/operations.md), read at start."""

from __future__ import annotations

from .fresh_process import setting_in_a_fresh_process


def test_the_export_settings_come_from_the_environment():
    systems = '{"north": "https://hospital.example/fhir/mrn-north"}'
    assert setting_in_a_fresh_process(
        "settings.EXPORT_MRN_SYSTEMS['north']", EXPORT_MRN_SYSTEMS=systems
    ) == ("https://hospital.example/fhir/mrn-north")
    assert setting_in_a_fresh_process(
        "settings.EXPORT_PSEUDONYM_SECRET", EXPORT_PSEUDONYM_SECRET="s3cret"
    ) == ("s3cret")
    assert setting_in_a_fresh_process("settings.EXPORT_VIEWER_IDENTIFIERS") == "False"
