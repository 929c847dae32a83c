"""Models: the protocol (versioned checklist content) and the clinical records."""

from workup.models import accounts  # noqa: F401 - user accounts are audited like our models
from workup.models.audit import AuditEvent
from workup.models.clinical import (
    Membership,
    Patient,
    Site,
    StepMark,
    StepRecord,
    Workup,
    WorkupSuggestion,
)
from workup.models.protocol import (
    Calculation,
    CriterionItem,
    Disagreement,
    FieldDefinition,
    Protocol,
    ProtocolCase,
    ProtocolLocked,
    ProtocolSource,
    Rule,
    StepDefinition,
    loading_version,
)

__all__ = [
    "AuditEvent",
    "Calculation",
    "CriterionItem",
    "Disagreement",
    "FieldDefinition",
    "Membership",
    "Patient",
    "Protocol",
    "ProtocolCase",
    "ProtocolLocked",
    "ProtocolSource",
    "Rule",
    "Site",
    "StepDefinition",
    "StepMark",
    "StepRecord",
    "Workup",
    "WorkupSuggestion",
    "loading_version",
]
