"""The print's trend chart: records -> points -> chart coordinates and ticks.

Which values are drawn is protocol data (`ProtocolSpec.trend_series`, e.g. every
serum tryptase value: baseline values joined by a line, other values as points).

Pure: no ORM, no request, no drawing. The print template draws a small inline
SVG from these numbers (vector graphics print sharply and need neither a script
nor an outside asset) and lists the same points in a table beside it. Values
and dates are formatted by `formatting`, exactly as on the checklist page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from workup.core.checklist import RecordView, ValueView
from workup.core.formatting import format_date, format_number, format_value
from workup.core.spec import ProtocolSpec, TrendSeriesSpec

# Chart geometry, in SVG user units (the template scales the drawing to its box).
WIDTH = 360.0
HEIGHT = 190.0
MARGIN_LEFT = 42.0
MARGIN_RIGHT = 12.0
MARGIN_TOP = 14.0
MARGIN_BOTTOM = 24.0
MARKER_RADIUS = 3.5
# A date label ("15 Jan 2026") is about 60 units wide at the chart's font size:
# x ticks closer than this would print on top of each other.
X_LABEL_WIDTH = 62.0
Y_TICK_TARGET = 4


@dataclass(frozen=True)
class TrendPoint:
    series: TrendSeriesSpec
    day: date
    value: float
    text: str
    details: tuple[ValueView, ...] = ()
    recorded_by: str = ""
    record_id: int | None = None

    @property
    def date_text(self) -> str:
        return format_date(self.day)


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "middle"  # SVG text-anchor of the label


@dataclass(frozen=True)
class Marker:
    """Where a marker is drawn; a triangle's corners are worked out here, not in the template."""

    x: float
    y: float

    @property
    def triangle(self) -> str:
        """The corners of an upward triangle around the point, for an SVG polygon."""
        r = MARKER_RADIUS * 1.25
        corners = (
            (self.x, self.y - r),
            (self.x + r, self.y + r * 0.8),
            (self.x - r, self.y + r * 0.8),
        )
        return " ".join(f"{_n(x)},{_n(y)}" for x, y in corners)


# The marker of a legend or table row, drawn in a 12 x 12 box.
LEGEND_MARKER = Marker(6.0, 6.0)


@dataclass(frozen=True)
class PlottedPoint(Marker):
    point: TrendPoint | None = None


@dataclass(frozen=True)
class PlottedSeries:
    series: TrendSeriesSpec
    points: tuple[PlottedPoint, ...]

    @property
    def path(self) -> str:
        """An SVG path through the points in date order, or "" when there is no line to draw."""
        if not self.series.connect or len(self.points) < 2:
            return ""
        steps = [f"{_n(p.x)} {_n(p.y)}" for p in self.points]
        return "M " + " L ".join(steps)


@dataclass(frozen=True)
class TrendChart:
    width: float
    height: float
    left: float
    top: float
    right: float
    bottom: float
    unit: str
    series: tuple[PlottedSeries, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    points: tuple[TrendPoint, ...]
    marker_radius: float = MARKER_RADIUS
    legend_marker: Marker = LEGEND_MARKER

    @property
    def y_label_x(self) -> float:
        """Value labels end just left of the plot."""
        return self.left - 4

    @property
    def x_label_y(self) -> float:
        """Date labels sit just below the plot, under their tick marks."""
        return self.bottom + 13

    @property
    def x_tick_end(self) -> float:
        return self.bottom + 3

    @property
    def unit_label_y(self) -> float:
        """The unit is written above the value labels."""
        return self.top - 5


def trend_chart(spec: ProtocolSpec, records: Iterable[RecordView]) -> TrendChart | None:
    """The chart of the protocol's trend series for a workup, or None when it has no value."""
    series = [s for s in spec.trend_series if s.step_code in spec.steps_by_code]
    points = collect_points(spec, records, series)
    if not points:
        return None
    first = series[0]
    unit = spec.step(first.step_code).field(first.field_code).unit
    return build_chart(points, series=series, unit=unit)


def collect_points(
    spec: ProtocolSpec, records: Iterable[RecordView], series: Sequence[TrendSeriesSpec]
) -> list[TrendPoint]:
    """One point per record with a number in its series' field, in date order."""
    points = []
    for record in records:
        chosen = next((s for s in series if _belongs(s, record)), None)
        if chosen is None or record.performed_on is None:
            continue
        value = record.values.get(chosen.field_code)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        step = spec.step(chosen.step_code)
        details = tuple(
            ValueView(label, format_value(field, record.values[code]))
            for code, label in chosen.detail_fields
            if (field := step.field(code)) is not None
            and record.values.get(code) not in (None, "", [])
        )
        points.append(
            TrendPoint(
                series=chosen,
                day=record.performed_on,
                value=float(value),
                text=format_value(step.field(chosen.field_code), value),
                details=details,
                recorded_by=record.recorded_by,
                record_id=record.id,
            )
        )
    return sorted(points, key=lambda p: (p.day, p.record_id or 0))


def _belongs(series: TrendSeriesSpec, record: RecordView) -> bool:
    if record.step_code != series.step_code:
        return False
    if series.where is None:
        return True
    field_code, expected = series.where
    return record.values.get(field_code) == expected


def build_chart(
    points: Sequence[TrendPoint],
    *,
    series: Sequence[TrendSeriesSpec],
    unit: str = "",
    width: float = WIDTH,
    height: float = HEIGHT,
) -> TrendChart:
    """Place points in the plot box: time runs left to right, the value axis starts at 0."""
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    first_day = min(p.day for p in points)
    last_day = max(p.day for p in points)
    span_days = (last_day - first_day).days
    # Keep markers off the axes: a little room at both ends of the time axis.
    pad = 0.05 * (right - left)

    def x_of(day: date) -> float:
        if span_days == 0:
            return (left + right) / 2
        return left + pad + (day - first_day).days / span_days * (right - left - 2 * pad)

    y_values = nice_ticks(max(p.value for p in points))
    y_max = y_values[-1]

    def y_of(value: float) -> float:
        return bottom - value / y_max * (bottom - top)

    plotted = tuple(
        PlottedSeries(
            s,
            tuple(
                PlottedPoint(round(x_of(p.day), 1), round(y_of(p.value), 1), p)
                for p in points
                if p.series == s
            ),
        )
        for s in series
    )
    return TrendChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        unit=unit,
        series=tuple(s for s in plotted if s.points),
        x_ticks=x_ticks(sorted({p.day for p in points}), x_of, width),
        y_ticks=tuple(Tick(round(y_of(v), 1), format_number(v), "end") for v in y_values),
        points=tuple(points),
    )


def nice_ticks(high: float, target: int = Y_TICK_TARGET) -> list[float]:
    """Round-numbered ticks from 0 to at least `high`: steps of 1, 2, 2.5 or 5 times 10ⁿ."""
    if high <= 0:
        high = 1.0
    raw_step = high / target
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw_step <= m * magnitude + 1e-12)
    count = max(1, math.ceil(high / step - 1e-9))
    return [round(i * step, 10) for i in range(count + 1)]


def x_ticks(days: Sequence[date], x_of, width: float) -> tuple[Tick, ...]:
    """Label measurement dates, first and last first, skipping any that would overlap."""
    if not days:
        return ()
    candidates = [days[0], days[-1], *days[1:-1]]
    chosen: list[tuple[float, date]] = []
    for day in candidates:
        x = x_of(day)
        if all(abs(x - other) >= X_LABEL_WIDTH for other, _ in chosen):
            chosen.append((x, day))
    ticks = []
    for x, day in sorted(chosen):
        anchor = "middle"
        if x - X_LABEL_WIDTH / 2 < 0:
            anchor = "start"
        elif x + X_LABEL_WIDTH / 2 > width:
            anchor = "end"
        ticks.append(Tick(round(x, 1), format_date(day), anchor))
    return tuple(ticks)


def _n(value: float) -> str:
    """A coordinate as SVG text: one decimal, never a locale's decimal comma."""
    return f"{value:.1f}"
