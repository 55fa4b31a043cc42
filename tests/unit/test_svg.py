"""The inline SVG charts: well-formed, escaped, and geometrically right."""
from __future__ import annotations

import math
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from sinks.reports import svg

NS = "{http://www.w3.org/2000/svg}"


def parse(text: str):
    return ElementTree.fromstring(text)


def test_hbar_scales_to_largest_and_escapes_labels():
    root = parse(svg.hbar_chart([("a<b>&", Decimal("10")), ("c", Decimal("5"))], width=400, label_width=100))
    rects = root.findall(f"{NS}rect")
    assert len(rects) == 2
    w0, w1 = float(rects[0].get("width")), float(rects[1].get("width"))
    assert w0 == pytest.approx(2 * w1)
    assert any(t.text == "a<b>&" for t in root.iter(f"{NS}text"))


def test_pie_slices_cover_the_circle_in_proportion():
    slices = svg.pie_slices([1, 3, 0, -2])
    assert slices[0][0] == pytest.approx(-math.pi / 2)
    assert slices[0][1] - slices[0][0] == pytest.approx(math.pi / 2)
    assert slices[1][1] - slices[1][0] == pytest.approx(3 * math.pi / 2)
    assert slices[2][0] == slices[2][1] and slices[3][0] == slices[3][1]
    assert slices[1][1] == pytest.approx(3 * math.pi / 2)


def test_pie_single_user_is_a_full_circle():
    root = parse(svg.pie_chart([("only", Decimal("3.5"))], title="acc1"))
    assert len(root.findall(f"{NS}circle")) == 1 and not root.findall(f"{NS}path")
    assert any("100.0%" in (t.text or "") for t in root.iter(f"{NS}text"))


def test_pie_merges_small_slices_into_other():
    items = [(f"u{i}", Decimal(20 - i)) for i in range(12)]
    root = parse(svg.pie_chart(items, max_slices=5))
    assert len(root.findall(f"{NS}path")) == 5
    assert any((t.text or "").startswith("other (8)") for t in root.iter(f"{NS}text"))


def test_column_chart_and_empty_data():
    root = parse(svg.column_chart([("09:00", Decimal("1")), ("10:00", Decimal("4")), ("11:00", 0)]))
    bars = [r for r in root.findall(f"{NS}rect")]
    assert len(bars) == 3
    assert float(bars[1].get("height")) == pytest.approx(4 * float(bars[0].get("height")))
    for chart in (svg.hbar_chart([]), svg.pie_chart([]), svg.column_chart([]), svg.pie_chart([("z", 0)])):
        assert parse(chart).find(f"{NS}text") is not None
