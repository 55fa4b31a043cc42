"""Inline SVG charts for the HTML report: no matplotlib, no scripts, no external assets.

Values may be Decimal; they become float here and only here, for drawing. Labels are escaped.
"""
from __future__ import annotations

import math
from html import escape
from typing import Callable, Sequence

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")
OTHER_COLOR = "#d3d3d3"
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'

Item = tuple[str, object]


def _num(v) -> float:
    return float(v)  # drawing only; the numbers printed next to a chart come from Decimal


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def _empty(width: int, height: int, text: str = "no data") -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"><text x="{width / 2}" y="{height / 2}" '
            f'text-anchor="middle" fill="#888" font-size="13" {FONT}>{escape(text)}</text></svg>')


def hbar_chart(items: Sequence[Item], *, width: int = 640, bar_height: int = 18,
               label_width: int = 150, value_label: Callable[[object], str] = str,
               color: str = PALETTE[0]) -> str:
    """Horizontal bars, one per (label, value), largest first as given."""
    if not items:
        return _empty(width, 60)
    gap = 4
    height = len(items) * (bar_height + gap) + gap
    value_width = 90
    plot = max(width - label_width - value_width, 10)
    top = max((_num(v) for _, v in items), default=0.0)
    scale = plot / top if top > 0 else 0.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="chart hbar">']
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_height + gap)
        w = max(_num(value) * scale, 0.0)
        mid = y + bar_height / 2 + 4
        parts.append(f'<text x="{label_width - 6}" y="{mid:.1f}" text-anchor="end" font-size="12" {FONT}>'
                     f'{escape(str(label))}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{w:.2f}" height="{bar_height}" rx="2" '
                     f'fill="{color}"><title>{escape(str(label))}: {escape(value_label(value))}</title></rect>')
        parts.append(f'<text x="{label_width + w + 4:.2f}" y="{mid:.1f}" font-size="11" fill="#333" {FONT}>'
                     f'{escape(value_label(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def pie_slices(values: Sequence[float]) -> list[tuple[float, float]]:
    """(start, end) angles in radians, clockwise from 12 o'clock; non-positive values get none."""
    total = sum(v for v in values if v > 0)
    out, angle = [], -math.pi / 2
    for v in values:
        if v <= 0 or total <= 0:
            out.append((angle, angle))
            continue
        sweep = 2 * math.pi * v / total
        out.append((angle, angle + sweep))
        angle += sweep
    return out


def pie_chart(items: Sequence[Item], *, size: int = 160, legend_width: int = 190, title: str | None = None,
              value_label: Callable[[object], str] = str, max_slices: int = 8) -> str:
    """A pie with a legend. Beyond ``max_slices`` the smallest slices merge into "other"."""
    items = [(str(label), value) for label, value in items if _num(value) > 0]
    if not items:
        return _empty(size + legend_width, size, "no spend")
    if len(items) > max_slices:
        head, tail = items[:max_slices - 1], items[max_slices - 1:]
        rest = sum(_num(v) for _, v in tail)
        items = head + [(f"other ({len(tail)})", rest)]
    values = [_num(v) for _, v in items]
    title_h = 20 if title else 0
    r = size / 2 - 4
    cx, cy = size / 2, title_h + size / 2
    legend_h = len(items) * 18 + 6
    height = title_h + max(size, legend_h)
    width = size + legend_width
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="chart pie">']
    if title:
        parts.append(f'<text x="4" y="14" font-size="13" font-weight="600" {FONT}>{escape(title)}</text>')
    total = sum(values)
    for i, ((label, value), (a0, a1)) in enumerate(zip(items, pie_slices(values))):
        color = OTHER_COLOR if label.startswith("other (") else PALETTE[i % len(PALETTE)]
        tip = f"<title>{escape(label)}: {escape(value_label(value))}</title>"
        if a1 - a0 >= 2 * math.pi - 1e-9:
            # A single 100% slice: an arc from a point to itself draws nothing, so use a circle.
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="{color}">{tip}</circle>')
        elif a1 > a0:
            x0, y0 = cx + r * math.cos(a0), cy + r * math.sin(a0)
            x1, y1 = cx + r * math.cos(a1), cy + r * math.sin(a1)
            large = 1 if a1 - a0 > math.pi else 0
            parts.append(f'<path d="M{cx:.2f},{cy:.2f} L{x0:.2f},{y0:.2f} A{r:.2f},{r:.2f} 0 {large},1 '
                         f'{x1:.2f},{y1:.2f} Z" fill="{color}" stroke="#fff" stroke-width="1">{tip}</path>')
        ly = title_h + 6 + i * 18
        pct = 100 * values[i] / total if total else 0
        parts.append(f'<rect x="{size + 10}" y="{ly}" width="11" height="11" fill="{color}"/>')
        parts.append(f'<text x="{size + 26}" y="{ly + 10}" font-size="11" {FONT}>'
                     f'{escape(label[:22])} {pct:.1f}%</text>')
    parts.append("</svg>")
    return "".join(parts)


def column_chart(items: Sequence[Item], *, width: int = 900, height: int = 220,
                 value_label: Callable[[object], str] = str, color: str = PALETTE[0],
                 max_ticks: int = 8) -> str:
    """Vertical bars over time (or any ordered labels), with a y gridline at the maximum."""
    if not items:
        return _empty(width, 60)
    left, bottom, top_pad, right = 70, 36, 12, 10
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    n = len(items)
    step = plot_w / n
    bar_w = max(step * 0.8, 1.0)
    top = max((_num(v) for _, v in items), default=0.0)
    scale = plot_h / top if top > 0 else 0.0
    base = top_pad + plot_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" class="chart columns">',
             f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#999"/>',
             f'<line x1="{left}" y1="{top_pad}" x2="{width - right}" y2="{top_pad}" stroke="#eee"/>',
             f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" font-size="11" {FONT}>'
             f'{escape(_fmt(top))}</text>',
             f'<text x="{left - 6}" y="{base + 4}" text-anchor="end" font-size="11" {FONT}>0</text>']
    every = max(1, math.ceil(n / max_ticks))
    for i, (label, value) in enumerate(items):
        h = max(_num(value) * scale, 0.0)
        x = left + i * step + (step - bar_w) / 2
        parts.append(f'<rect x="{x:.2f}" y="{base - h:.2f}" width="{bar_w:.2f}" height="{h:.2f}" '
                     f'fill="{color}"><title>{escape(str(label))}: {escape(value_label(value))}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.2f}" y="{base + 16}" text-anchor="middle" '
                         f'font-size="10" {FONT}>{escape(str(label))}</text>')
    parts.append("</svg>")
    return "".join(parts)
