"""Load a protocol version from the database as a ProtocolSpec, cached per process.

A published protocol is immutable, so its spec is built once per process (a
handful of queries) and then served from memory, with its step rows (a save
needs a step's id, not a query for it); drafts are read afresh.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from workup.core.spec import ProtocolSpec, natural_code_key
from workup.models import Protocol, StepDefinition
from workup.protocols import spec_rows


@dataclass(frozen=True)
class _Loaded:
    spec: ProtocolSpec
    # Read-only, shared between requests: writes only point a record or a mark at one.
    steps: dict[str, StepDefinition]


_cache: dict[tuple[int, str, int], _Loaded] = {}
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
    return _load(protocol).spec


def get_step(protocol: Protocol, code: str) -> StepDefinition:
    """The step's row (a published version's from memory); StepDefinition.DoesNotExist if none."""
    try:
        return _load(protocol).steps[code]
    except KeyError:
        raise StepDefinition.DoesNotExist(f"No step {code!r} in {protocol}.") from None


def _load(protocol: Protocol) -> _Loaded:
    if protocol.status == Protocol.Status.DRAFT:
        return _read(protocol)
    key = (protocol.pk, protocol.code, protocol.version)
    loaded = _cache.get(key)
    if loaded is None:
        loaded = _read(protocol)
        with _lock:
            _cache[key] = loaded
    return loaded


def build_spec(protocol: Protocol) -> ProtocolSpec:
    """The version's spec read from the database now (drafts, checks before a publish)."""
    return _read(protocol).spec


def _read(protocol: Protocol) -> _Loaded:
    steps = list(protocol.stepdefinition_set.order_by("order", "code").prefetch_related("fields"))
    rules = protocol.rule_set.select_related("target_step").order_by("priority", "code")
    sources = list(protocol.protocolsource_set.all())
    series = protocol.trendseries_set.select_related("step").order_by("order", "code")
    disagreements = sorted(
        protocol.disagreement_set.select_related("step"), key=lambda d: natural_code_key(d.code)
    )
    spec = ProtocolSpec(
        id=protocol.pk,
        code=protocol.code,
        version=protocol.version,
        title=protocol.title,
        status=protocol.status,
        disclaimer=protocol.disclaimer,
        trend_title=protocol.trend_title,
        trend_value_label=protocol.trend_value_label,
        steps=tuple(
            spec_rows.step_spec(
                spec_rows.from_instance(s),
                [
                    spec_rows.field_spec(spec_rows.from_instance(f))
                    for f in sorted(s.fields.all(), key=lambda f: (f.order, f.code))
                ],
            )
            for s in steps
        ),
        calculations=tuple(
            spec_rows.calculation_spec(spec_rows.from_instance(c))
            for c in protocol.calculation_set.order_by("order", "code")
        ),
        rules=tuple(
            spec_rows.rule_spec(
                spec_rows.from_instance(r), r.target_step.code if r.target_step else None
            )
            for r in rules
        ),
        criteria=tuple(
            spec_rows.criterion_spec(spec_rows.from_instance(c))
            for c in protocol.criterionitem_set.order_by("order", "code")
        ),
        criterion_groups=tuple(
            spec_rows.criterion_group_spec(spec_rows.from_instance(g))
            for g in protocol.criteriongroup_set.order_by("order", "code")
        ),
        step_groups=tuple(
            spec_rows.step_group_spec(spec_rows.from_instance(g))
            for g in protocol.stepgroup_set.order_by("order", "code")
        ),
        disagreements=tuple(
            spec_rows.disagreement_spec(spec_rows.from_instance(d), d.step.code if d.step else None)
            for d in disagreements
        ),
        trend_series=tuple(
            spec_rows.trend_series_spec(spec_rows.from_instance(s), s.step.code) for s in series
        ),
        sources={s.code: s.citation for s in sources},
        source_urls={s.code: s.url for s in sources if s.url},
    )
    return _Loaded(spec, {s.code: s for s in steps})
