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
    CriterionGroup,
    CriterionItem,
    Disagreement,
    FieldDefinition,
    Protocol,
    ProtocolCase,
    ProtocolLocked,
    ProtocolSource,
    Rule,
    StepDefinition,
    StepGroup,
    TrendSeries,
    loading_version,
)

__all__ = [
    "AuditEvent",
    "Calculation",
    "CriterionGroup",
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
    "StepGroup",
    "StepMark",
    "TrendSeries",
    "StepRecord",
    "Workup",
    "WorkupSuggestion",
    "loading_version",
]
