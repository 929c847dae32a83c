"""Load a protocol version from the database as a ProtocolSpec, cached per process.

A published protocol is immutable, so its spec is built once per process (a
handful of queries) and then served from memory; drafts are read afresh.
"""

from __future__ import annotations

import threading
import time

from .models import Protocol
from .spec import (
    CalculationSpec,
    CriterionSpec,
    DisagreementSpec,
    FieldSpec,
    ProtocolSpec,
    RuleSpec,
    StepSpec,
    natural_code_key,
)

_cache: dict[tuple[int, str, int], ProtocolSpec] = {}
_lock = threading.Lock()
# Which versions are released changes only when an admin publishes one; lists (the
# worklist's step filter, the export's version choice) may learn of it this late.
PUBLISHED_LIST_TTL_SECONDS = 30
_published: tuple[float, tuple[Protocol, ...]] | None = None


def clear_cache() -> None:
    global _published
    with _lock:
        _cache.clear()
        _published = None


def released_protocols() -> tuple[Protocol, ...]:
    """Every published or retired version, newest first per code; read at most every TTL."""
    global _published
    now = time.monotonic()
    cached = _published
    if cached is not None and now - cached[0] < PUBLISHED_LIST_TTL_SECONDS:
        return cached[1]
    protocols = tuple(
        Protocol.objects.exclude(status=Protocol.Status.DRAFT).order_by("code", "-version")
    )
    with _lock:
        _published = (now, protocols)
    return protocols


def newest_published(code: str) -> Protocol | None:
    """For lists only; a new workup is pinned to the database's answer (services)."""
    return next(
        (p for p in released_protocols() if p.code == code and p.status == p.Status.PUBLISHED),
        None,
    )


def get_spec(protocol: Protocol) -> ProtocolSpec:
    key = (protocol.pk, protocol.code, protocol.version)
    if protocol.status == Protocol.Status.DRAFT:
        return build_spec(protocol)
    spec = _cache.get(key)
    if spec is None:
        spec = build_spec(protocol)
        with _lock:
            _cache[key] = spec
    return spec


def build_spec(protocol: Protocol) -> ProtocolSpec:
    steps = list(protocol.stepdefinition_set.order_by("order", "code").prefetch_related("fields"))
    rules = protocol.rule_set.select_related("target_step").order_by("priority", "code")
    disagreements = sorted(
        protocol.disagreement_set.select_related("step"), key=lambda d: natural_code_key(d.code)
    )
    return ProtocolSpec(
        id=protocol.pk,
        code=protocol.code,
        version=protocol.version,
        title=protocol.title,
        status=protocol.status,
        disclaimer=protocol.disclaimer,
        steps=tuple(
            StepSpec(
                code=s.code,
                title=s.title,
                section=s.section,
                order=s.order,
                help_text=s.help_text,
                applies_to=s.applies_to,
                repeatable=s.repeatable,
                counts_latest_where=s.counts_latest_where,
                is_safety_item=s.is_safety_item,
                source=s.source,
                fields=tuple(
                    FieldSpec(
                        code=f.code,
                        label=f.label,
                        kind=f.kind,
                        unit=f.unit,
                        min_value=f.min_value,
                        max_value=f.max_value,
                        choices=tuple(tuple(c) for c in f.choices or ()),
                        required=f.required,
                        help_text=f.help_text,
                        calculation=f.calculation,
                        is_key_result=f.is_key_result,
                    )
                    for f in sorted(s.fields.all(), key=lambda f: (f.order, f.code))
                ),
            )
            for s in steps
        ),
        calculations=tuple(
            CalculationSpec(
                code=c.code,
                label=c.label,
                expression=c.expression,
                unit=c.unit,
                formula=c.formula,
                display=c.display,
                source=c.source,
            )
            for c in protocol.calculation_set.order_by("order", "code")
        ),
        rules=tuple(
            RuleSpec(
                code=r.code,
                title=r.title,
                action=r.action,
                target_step=r.target_step.code if r.target_step else None,
                condition=r.condition,
                rationale=r.rationale,
                source=r.source,
                label=r.label,
                priority=r.priority,
                enabled=r.enabled,
                repeat_when_done=r.repeat_when_done,
            )
            for r in rules
        ),
        criteria=tuple(
            CriterionSpec(
                code=c.code,
                group=c.group,
                kind=c.kind,
                label=c.label,
                who_text=c.who_text,
                icc_text=c.icc_text,
                who_logic=c.who_logic,
                icc_logic=c.icc_logic,
                source=c.source,
            )
            for c in protocol.criterionitem_set.order_by("order", "code")
        ),
        disagreements=tuple(
            DisagreementSpec(
                code=d.code,
                title=d.title,
                positions=d.positions,
                app_behaviour=d.app_behaviour,
                step=d.step.code if d.step else None,
                condition=d.condition,
            )
            for d in disagreements
        ),
        sources={s.code: s.citation for s in protocol.protocolsource_set.all()},
    )
