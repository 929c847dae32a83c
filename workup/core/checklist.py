"""The checklist view-model: protocol + records + evaluation -> what a page shows.

Pure: no ORM, no request. The same view-model feeds the checklist page, the
print summary and the exports, so they can never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from workup.core import engine
from workup.core.engine import Evaluation, RuleOutcome
from workup.core.formatting import format_derived, format_value
from workup.core.spec import (
    CriterionSpec,
    DisagreementSpec,
    ProtocolSpec,
    StepGroupSpec,
    StepSpec,
)

DEFAULT_DISCLAIMER = (
    "This is a workup checklist to support the clinician. It does not make or state "
    "a diagnosis; suggestions are advisory and every one shows its reason and source."
)

STATE_DISPLAY: dict[str, tuple[str, str, str]] = {
    # state: (label, icon, bootstrap colour)
    engine.DONE: ("Documented", "✓", "success"),
    engine.SUGGESTED: ("Suggested next step", "➜", "primary"),
    engine.ORDERED: ("Ordered", "◷", "info"),  # a glyph DejaVu has: prints without a gap
    engine.DECLINED: ("Declined by the patient", "✕", "secondary"),
    engine.NOT_INDICATED: ("Not indicated", "–", "secondary"),
    # Missing data is never "not indicated": the state names what to record.
    engine.NOT_YET: ("Not yet", "◌", "warning"),
    engine.NOT_SUGGESTED: ("Not documented", "○", "light"),
}

CRITERION_DISPLAY: dict[str | None, tuple[str, str]] = {
    engine.DOCUMENTED: ("documented", "✓"),
    engine.NOT_DOCUMENTED: ("not documented", "✕"),
    engine.NOT_ASSESSED: ("not assessed", "?"),
    engine.NOT_APPLICABLE: ("not applicable", "–"),
    None: ("–", ""),
}

# "[NCCN18]" or "[NCCN18, not re-read]": the key, then an authoring note never shown.
SOURCE_REFERENCE = re.compile(r"\[([A-Za-z0-9-]+)[^\]]*\]")


@dataclass(frozen=True)
class RecordView:
    """A recorded result as the checklist shows it."""

    id: int | None
    step_code: str
    values: dict[str, Any]
    performed_on: date | None
    note: str = ""
    recorded_by: str = ""
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class MarkView:
    status: str
    reason: str = ""
    set_by: str = ""
    set_at: datetime | None = None


@dataclass(frozen=True)
class Reason:
    code: str
    title: str
    rationale: str
    source: str
    label: str | None
    # For the "rule details" disclosure: the condition in words and reviewers' notes.
    logic: str = ""
    details: str = ""

    @classmethod
    def of(cls, outcome: RuleOutcome) -> Reason:
        rule = outcome.rule
        return cls(
            rule.code,
            rule.title,
            rule.rationale,
            rule.source,
            outcome.label,
            logic=rule.condition_text,
            details=rule.details,
        )


@dataclass(frozen=True)
class Reference:
    """A numbered entry of the page's reference list."""

    number: int
    key: str
    citation: str
    url: str = ""


@dataclass(frozen=True)
class ValueView:
    label: str
    text: str


@dataclass
class ChecklistItem:
    step: StepSpec
    state: str
    reasons: list[Reason]
    suppressed: list[Reason]
    not_indicated: list[Reason]
    notes: list[Reason]
    records: list[RecordView]
    mark: MarkView | None
    disagreements: list[DisagreementSpec]
    key_results: list[ValueView]
    # With state "not yet": what the step waits for ("record history and skin examination").
    awaiting: list[str] = field(default_factory=list)
    not_yet: list[Reason] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.step.code

    @property
    def state_text(self) -> str:
        """The state in words, naming what is missing: "Not yet: record baseline tryptase"."""
        if self.state == engine.NOT_YET and self.awaiting:
            return f"{self.state_label}: {'; '.join(self.awaiting)}"
        return self.state_label

    @property
    def state_label(self) -> str:
        return STATE_DISPLAY[self.state][0]

    @property
    def icon(self) -> str:
        return STATE_DISPLAY[self.state][1]

    @property
    def colour(self) -> str:
        return STATE_DISPLAY[self.state][2]

    @property
    def latest(self) -> RecordView | None:
        return self.records[-1] if self.records else None

    @property
    def is_done(self) -> bool:
        return bool(self.records)


@dataclass
class Section:
    title: str
    items: list[ChecklistItem]


@dataclass
class SuggestionGroup:
    """Suggestions under one heading of the protocol's step groups (None: a step of no group)."""

    group: StepGroupSpec | None
    items: list[ChecklistItem]


@dataclass(frozen=True)
class DerivedValue:
    code: str
    label: str
    text: str
    formula: str
    source: str


@dataclass(frozen=True)
class CriterionRow:
    item: CriterionSpec
    who: str | None
    icc: str | None

    @property
    def who_text(self) -> str:
        return CRITERION_DISPLAY[self.who][0]

    @property
    def icc_text(self) -> str:
        return CRITERION_DISPLAY[self.icc][0]

    @property
    def who_icon(self) -> str:
        return CRITERION_DISPLAY[self.who][1]

    @property
    def icc_icon(self) -> str:
        return CRITERION_DISPLAY[self.icc][1]


@dataclass(frozen=True)
class CriterionCounts:
    """Documented major and minor items of one group per classification; no label assigned."""

    label: str
    who_major: int
    who_minor: int
    icc_major: int
    icc_minor: int
    minor_total: int


@dataclass
class Checklist:
    spec: ProtocolSpec
    sections: list[Section]
    derived: list[DerivedValue]
    criteria: list[tuple[str, list[CriterionRow]]]
    counts: list[CriterionCounts]
    general_disagreements: list[DisagreementSpec]
    errors: list[str]
    disclaimer: str
    sources: dict[str, str] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)

    @property
    def reference_numbers(self) -> dict[str, int]:
        return {ref.key: ref.number for ref in self.references}

    def references_for(self, item: ChecklistItem) -> list[Reference]:
        """The references one step's own page cites (its sources and its reasons), numbered
        as on the checklist, so that [3] means the same paper on both pages."""
        reasons = item.reasons + item.not_indicated + item.not_yet + item.notes
        texts = [item.step.source] + [
            text for r in reasons for text in (r.source, r.label or "", r.rationale)
        ]
        keys = {key for text in texts for key in SOURCE_REFERENCE.findall(text or "")}
        # A citation may point at another ("workup items from this and [1]"): list that too,
        # so that no number on the page leads nowhere.
        citations = {ref.key: ref.citation for ref in self.references}
        pending = list(keys)
        while pending:
            for key in SOURCE_REFERENCE.findall(citations.get(pending.pop(), "")):
                if key not in keys:
                    keys.add(key)
                    pending.append(key)
        return [ref for ref in self.references if ref.key in keys]

    @property
    def items(self) -> list[ChecklistItem]:
        return [item for section in self.sections for item in section.items]

    @property
    def suggested(self) -> list[ChecklistItem]:
        """Suggested steps by priority: the protocol's step groups in order (safety first)."""
        rank = self.spec.suggestion_rank
        items = [item for item in self.items if item.state == engine.SUGGESTED]
        return sorted(items, key=lambda item: rank[item.code])

    @property
    def suggested_groups(self) -> list[SuggestionGroup]:
        """The suggestions under their group headings, in order; groups with none left out."""
        groups = {group.code: group for group in self.spec.step_groups}
        grouped: list[SuggestionGroup] = []
        for item in self.suggested:
            group = groups.get(item.step.group)
            if not grouped or grouped[-1].group != group:
                grouped.append(SuggestionGroup(group, []))
            grouped[-1].items.append(item)
        return grouped

    @property
    def not_yet(self) -> list[ChecklistItem]:
        return [item for item in self.items if item.state == engine.NOT_YET]

    @property
    def progress_done(self) -> int:
        return sum(1 for item in self.items if item.state == engine.DONE)

    @property
    def progress_applicable(self) -> int:
        applicable = (engine.DONE, engine.SUGGESTED, engine.ORDERED, engine.DECLINED)
        return sum(1 for item in self.items if item.state in applicable)


def build_checklist(
    spec: ProtocolSpec,
    evaluation: Evaluation,
    records: list[RecordView],
    marks: dict[str, MarkView] | None = None,
) -> Checklist:
    marks = marks or {}
    records_by_step: dict[str, list[RecordView]] = {}
    for record in sorted(records, key=lambda r: (r.performed_on or date.min, r.id or 0)):
        records_by_step.setdefault(record.step_code, []).append(record)
    shown_disagreements = set(evaluation.disagreements)
    disagreements_by_step: dict[str, list[DisagreementSpec]] = {}
    general: list[DisagreementSpec] = []
    for d in spec.disagreements:
        if d.code not in shown_disagreements:
            continue
        if d.step:
            disagreements_by_step.setdefault(d.step, []).append(d)
        else:
            general.append(d)

    sections: list[Section] = []
    for step in spec.steps:
        outcome = evaluation.steps[step.code]
        step_records = records_by_step.get(step.code, [])
        item = ChecklistItem(
            step=step,
            state=outcome.state,
            reasons=[Reason.of(o) for o in outcome.suggest_reasons],
            suppressed=[Reason.of(o) for o in outcome.suppressed_reasons],
            not_indicated=[Reason.of(o) for o in outcome.not_indicated_reasons],
            notes=[Reason.of(o) for o in outcome.notes],
            records=step_records,
            mark=marks.get(step.code),
            disagreements=disagreements_by_step.get(step.code, []),
            key_results=key_results(step, evaluation.facts.get(step.code, {}))
            if step_records
            else [],
            awaiting=outcome.awaiting,
            not_yet=[Reason.of(o) for o in outcome.not_yet_reasons],
        )
        if not sections or sections[-1].title != step.section:
            sections.append(Section(title=step.section, items=[]))
        sections[-1].items.append(item)

    derived = [
        DerivedValue(
            code=calc.code,
            label=calc.label,
            text=format_derived(evaluation.derived.get(calc.code), calc.unit),
            formula=calc.formula,
            source=calc.source,
        )
        for calc in spec.calculations
        if calc.display
    ]
    rows = [
        CriterionRow(item, evaluation.criteria[item.code].who, evaluation.criteria[item.code].icc)
        for item in spec.criteria
    ]
    rows_of: dict[str, list[CriterionRow]] = {group.code: [] for group in spec.criterion_groups}
    for row in rows:
        rows_of.setdefault(row.item.group, []).append(row)
    criteria = [
        (group.title, rows_of[group.code]) for group in spec.criterion_groups if rows_of[group.code]
    ]
    checklist = Checklist(
        spec=spec,
        sections=sections,
        derived=derived,
        criteria=criteria,
        counts=[
            _count_items(group.counts_label, rows_of[group.code])
            for group in spec.criterion_groups
            if group.counts_label
        ],
        general_disagreements=general,
        errors=list(evaluation.errors),
        disclaimer=spec.disclaimer or DEFAULT_DISCLAIMER,
    )
    checklist.sources = _cited_sources(spec, checklist)
    checklist.references = [
        Reference(number, key, citation, spec.source_urls.get(key, ""))
        for number, (key, citation) in enumerate(checklist.sources.items(), start=1)
    ]
    return checklist


def key_results(step: StepSpec, values: dict[str, Any]) -> list[ValueView]:
    """The values worth a glance on the checklist line: key fields, else all recorded."""
    chosen = [f for f in step.fields if f.is_key_result] or list(step.fields)
    return [
        ValueView(f.label, format_value(f, values.get(f.code)))
        for f in chosen
        if values.get(f.code) not in (None, "", [])
    ]


def record_values(step: StepSpec, values: dict[str, Any]) -> list[ValueView]:
    """Every recorded value of one result, in field order."""
    return [
        ValueView(f.label, format_value(f, values.get(f.code)))
        for f in step.fields
        if values.get(f.code) not in (None, "", [])
    ]


def _count_items(label: str, group: list[CriterionRow]) -> CriterionCounts:
    def count(kind: str, column: str) -> int:
        return sum(
            1
            for row in group
            if row.item.kind == kind and getattr(row, column) == engine.DOCUMENTED
        )

    return CriterionCounts(
        label=label,
        who_major=count("major", "who"),
        who_minor=count("minor", "who"),
        icc_major=count("major", "icc"),
        icc_minor=count("minor", "icc"),
        minor_total=sum(1 for row in group if row.item.kind == "minor"),
    )


def _cited_sources(spec: ProtocolSpec, checklist: Checklist) -> dict[str, str]:
    """The citations for every source key that the checklist shows, in order of first use."""
    texts: list[str] = []
    # Labels are worked out from the patient's values: searched each time, never cached.
    labels: set[str] = set()
    for item in checklist.items:
        for r in item.reasons + item.not_indicated + item.not_yet + item.notes + item.suppressed:
            texts += [r.source, r.label or ""]
            if r.label:
                labels.add(r.label)
    texts += [text for d in checklist.derived for text in (d.source, d.formula)]
    texts += [item.step.source for item in checklist.items]
    shown = [d for item in checklist.items for d in item.disagreements]
    texts += [d.positions for d in shown + checklist.general_disagreements]
    texts += [
        text
        for _, rows in checklist.criteria
        for row in rows
        for text in (row.item.source, row.item.who_text, row.item.icc_text)
    ]
    cited: dict[str, str] = {}
    for text in texts:
        keys = SOURCE_REFERENCE.findall(text) if text in labels else _source_keys(text or "")
        for key in keys:
            if key in spec.sources and key not in cited:
                cited[key] = spec.sources[key]
    return cited


@lru_cache(maxsize=4096)
def _source_keys(text: str) -> tuple[str, ...]:
    # The same few hundred protocol texts come back on every checklist (and every row of
    # an export): each is searched once. Only protocol texts: nothing about a patient.
    return tuple(SOURCE_REFERENCE.findall(text))


@dataclass(frozen=True)
class ShownBefore:
    """What the checklist showed before a save, as the workup's snapshot keeps it: the
    suggested steps with their rules, and the steps that were "not yet". Enough to say
    what a save changed without evaluating the rules a second time."""

    suggested: dict[str, list[str] | None]  # rules unknown (None) in a snapshot made before
    not_yet: frozenset[str] = frozenset()

    @classmethod
    def of(cls, evaluation: Evaluation) -> ShownBefore:
        return cls(
            suggested={
                code: [o.code for o in step.suggest_reasons]
                for code, step in evaluation.steps.items()
                if step.state == engine.SUGGESTED
            },
            not_yet=frozenset(evaluation.not_yet),
        )


def describe_changes(spec: ProtocolSpec, before: ShownBefore, after: Evaluation) -> list[str]:
    """What a save changed, in words: "Bone marrow biopsy is now suggested: R12."."""
    messages = []
    for step in spec.steps:
        new = after.steps[step.code]
        was_suggested = step.code in before.suggested
        if new.state == engine.SUGGESTED:
            new_codes = [o.code for o in new.suggest_reasons]
            old_codes = before.suggested.get(step.code, [])
            if old_codes is None:
                old_codes = new_codes  # suggested before, its rules not kept: say nothing new
            if new_codes != old_codes:
                verb = "is suggested" if was_suggested else "is now suggested"
                messages.append(f"{step.title} {verb}: {', '.join(new_codes)}.")
        elif was_suggested and new.state != engine.DONE:
            label = STATE_DISPLAY[new.state][0].lower()
            why = [o.code for o in new.not_indicated_reasons]
            suffix = f": {', '.join(why)}" if why and new.state == engine.NOT_INDICATED else ""
            if new.state == engine.NOT_YET:
                suffix = f": {'; '.join(new.awaiting)}"
            messages.append(f"{step.title} is no longer suggested ({label}{suffix}).")
        elif new.state == engine.NOT_YET and step.code not in before.not_yet:
            messages.append(f"{step.title}: not yet, {'; '.join(new.awaiting)}.")
    return messages
