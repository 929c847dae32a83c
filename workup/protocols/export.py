"""Write a protocol version as a natural-key fixture, byte for byte reproducible.

Rows come in a reader's order: the protocol, its sources (in the order they
were entered), steps and their fields by order, calculations by order, rules
by priority, criterion groups and criteria by order, disagreements by code,
trend series by order. Exporting, loading the
file into a fresh database and exporting again gives the identical file.
"""

from __future__ import annotations

import json

from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder

from workup.core.spec import natural_code_key
from workup.models import FieldDefinition, Protocol


def export_rows(protocol: Protocol) -> list[dict]:
    objects = [
        protocol,
        *protocol.protocolsource_set.order_by("pk"),
        *protocol.stepgroup_set.order_by("order", "code"),
        *protocol.stepdefinition_set.order_by("order", "code"),
        *FieldDefinition.objects.filter(step__protocol=protocol)
        .select_related("step__protocol")
        .order_by("step__order", "step__code", "order", "code"),
        *protocol.calculation_set.order_by("order", "code"),
        *protocol.rule_set.select_related("target_step__protocol").order_by("priority", "code"),
        *protocol.criteriongroup_set.order_by("order", "code"),
        *protocol.criterionitem_set.order_by("order", "code"),
        *sorted(
            protocol.disagreement_set.select_related("step__protocol"),
            key=lambda d: natural_code_key(d.code),
        ),
        *protocol.trendseries_set.select_related("step__protocol").order_by("order", "code"),
    ]
    rows = serializers.serialize(
        "python", objects, use_natural_foreign_keys=True, use_natural_primary_keys=True
    )
    return [{"model": row["model"], "fields": row["fields"]} for row in rows]


def export_text(protocol: Protocol) -> str:
    """The fixture as written to a file (the format of fixtures/mastocytosis.json)."""
    return _dumps(export_rows(protocol))


def export_cases_text(protocol: Protocol) -> str:
    """The version's case library in the vignette shape that import_protocol_cases reads."""
    cases = sorted(protocol.protocolcase_set.all(), key=lambda c: natural_code_key(c.code))
    return _dumps([case.as_case() for case in cases])


def _dumps(value) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, cls=DjangoJSONEncoder) + "\n"
