"""The print's trend chart, drawn from the protocol's trend series (pure, no database).

The series here are the shipped protocol's: serum tryptase over time.
"""

from __future__ import annotations

from datetime import date

import pytest

from workup.core.checklist import RecordView
from workup.core.spec import TrendSeriesSpec
from workup.printing.trend import (
    X_LABEL_WIDTH,
    TrendPoint,
    build_chart,
    nice_ticks,
    trend_chart,
)


def serum(day, value, baseline=True, record_id=None, by="Dr Test"):
    return RecordView(
        id=record_id,
        step_code="serum_tryptase",
        values={"value_ng_ml": value, "is_baseline": baseline},
        performed_on=day,
        recorded_by=by,
    )


def acute(day, value, hours=None, record_id=None):
    values = {"value_ng_ml": value}
    if hours is not None:
        values["hours_after_onset"] = hours
    return RecordView(id=record_id, step_code="acute_tryptase", values=values, performed_on=day)


def by_key(chart):
    return {s.series.code: s for s in chart.series}


def test_there_is_no_chart_without_a_tryptase_value(spec):
    other = RecordView(
        id=1, step_code="cbc_diff", values={"hemoglobin_g_dl": 13.0}, performed_on=None
    )

    assert trend_chart(spec, []) is None
    assert trend_chart(spec, [other]) is None


def test_every_value_is_a_point_in_date_order_whatever_the_record_order(spec):
    records = [
        serum(date(2026, 3, 1), 30.0, record_id=3),
        acute(date(2026, 1, 20), 45.5, hours=2, record_id=2),
        serum(date(2026, 1, 10), 12.0, record_id=1),
        serum(date(2026, 2, 1), 14.0, baseline=False, record_id=4),
    ]

    chart = trend_chart(spec, records)

    assert [p.day for p in chart.points] == [
        date(2026, 1, 10),
        date(2026, 1, 20),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    series_codes = [p.series.code for p in chart.points]
    assert series_codes == ["baseline", "acute", "not-baseline", "baseline"]


def test_values_and_dates_are_formatted_as_everywhere_else(spec):
    chart = trend_chart(spec, [acute(date(2026, 1, 5), 45.5, hours=2.0)])

    (point,) = chart.points
    assert point.text == "45.5 ng/mL"
    assert point.date_text == "05 Jan 2026"
    assert [(d.label, d.text) for d in point.details] == [("after onset", "2 h")]
    assert chart.unit == "ng/mL"


def test_a_record_without_a_number_is_not_drawn(spec):
    broken = RecordView(
        id=1,
        step_code="serum_tryptase",
        values={"is_baseline": True},
        performed_on=date(2026, 1, 1),
    )

    assert trend_chart(spec, [broken]) is None


def test_the_value_axis_starts_at_zero_and_covers_the_highest_value(spec):
    chart = trend_chart(spec, [serum(date(2026, 1, 1), 9.0), serum(date(2026, 2, 1), 250.0)])

    labels = [t.label for t in chart.y_ticks]
    assert labels[0] == "0"
    assert float(labels[-1]) >= 250
    # Ticks run from the bottom of the plot (0) to its top (the highest tick).
    assert chart.y_ticks[0].position == chart.bottom
    assert chart.y_ticks[-1].position == chart.top
    for plotted in chart.series:
        for p in plotted.points:
            assert chart.top <= p.y <= chart.bottom
            assert chart.left <= p.x <= chart.right


def test_later_values_lie_to_the_right_and_higher_values_above(spec):
    chart = trend_chart(spec, [serum(date(2026, 1, 1), 10.0), serum(date(2026, 4, 1), 40.0)])

    first, last = by_key(chart)["baseline"].points
    assert first.x < last.x
    assert first.y > last.y  # SVG y grows downwards


def test_time_is_to_scale(spec):
    chart = trend_chart(
        spec,
        [
            serum(date(2026, 1, 1), 10.0),
            serum(date(2026, 1, 11), 10.0),
            serum(date(2026, 3, 2), 10.0),
        ],
    )

    a, b, c = by_key(chart)["baseline"].points
    assert (c.x - b.x) == pytest.approx(5 * (b.x - a.x), abs=0.2)


def test_a_single_value_sits_in_the_middle_with_one_date_label(spec):
    chart = trend_chart(spec, [serum(date(2026, 1, 1), 10.0)])

    (point,) = by_key(chart)["baseline"].points
    assert point.x == pytest.approx((chart.left + chart.right) / 2, abs=0.1)
    assert [t.label for t in chart.x_ticks] == ["01 Jan 2026"]
    assert by_key(chart)["baseline"].path == ""


def test_only_baseline_values_are_joined_by_a_line(spec):
    chart = trend_chart(
        spec,
        [
            serum(date(2026, 1, 1), 10.0),
            serum(date(2026, 2, 1), 20.0),
            serum(date(2026, 2, 15), 25.0, baseline=False),
            acute(date(2026, 2, 20), 40.0),
            acute(date(2026, 3, 20), 42.0),
        ],
    )

    series = by_key(chart)
    first, second = series["baseline"].points
    assert (
        series["baseline"].path == f"M {first.x:.1f} {first.y:.1f} L {second.x:.1f} {second.y:.1f}"
    )
    assert series["not-baseline"].path == ""
    assert series["acute"].path == ""


def test_series_are_told_apart_by_shape_and_fill_not_colour_alone(spec):
    shapes = {(s.marker, s.filled, s.connect) for s in spec.trend_series}

    assert len(spec.trend_series) == 3
    assert len(shapes) == len(spec.trend_series)


def test_a_triangle_marker_surrounds_its_point(spec):
    chart = trend_chart(spec, [acute(date(2026, 1, 1), 40.0)])

    (point,) = by_key(chart)["acute"].points
    corners = [tuple(map(float, c.split(","))) for c in point.triangle.split()]
    assert len(corners) == 3
    assert min(x for x, _ in corners) < point.x < max(x for x, _ in corners)
    assert min(y for _, y in corners) < point.y < max(y for _, y in corners)


def test_date_labels_never_overlap_and_keep_the_first_and_last_date(spec):
    records = [serum(date(2026, 1, day), 10.0 + day) for day in range(1, 29)]

    chart = trend_chart(spec, records)

    positions = [t.position for t in chart.x_ticks]
    assert positions == sorted(positions)
    assert all(b - a >= X_LABEL_WIDTH - 0.2 for a, b in zip(positions, positions[1:], strict=False))
    labels = [t.label for t in chart.x_ticks]
    assert labels[0] == "01 Jan 2026"
    assert labels[-1] == "28 Jan 2026"
    assert chart.x_ticks[-1].anchor in ("middle", "end")


@pytest.mark.parametrize(
    ("high", "expected"),
    [
        (9.0, [0, 2.5, 5, 7.5, 10]),
        (20.0, [0, 5, 10, 15, 20]),
        (25.0, [0, 10, 20, 30]),
        (250.0, [0, 100, 200, 300]),
        (0.0, [0, 0.25, 0.5, 0.75, 1]),
    ],
)
def test_value_ticks_are_round_numbers(high, expected):
    assert nice_ticks(high) == expected


def test_build_chart_takes_any_series_definition():
    weight = TrendSeriesSpec("w", "Weight", "weight", "kg", connect=True)
    points = [
        TrendPoint(weight, date(2026, 1, 1), 70.0, "70 kg"),
        TrendPoint(weight, date(2026, 1, 2), 71.0, "71 kg"),
    ]

    chart = build_chart(points, series=[weight], unit="kg")

    assert chart.unit == "kg"
    assert chart.series[0].path.startswith("M ")
