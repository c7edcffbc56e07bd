"""Charts drawn on the server as SVG: stacked bars by day, and a timeline of bars over time.

No chart library and no script: the markup is built here, every text escaped, and each
shape carries a <title> so hovering shows its figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape

from markupsafe import Markup

# Colour-blind-safe (Okabe-Ito), then a grey for "other".
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442")
OTHER_COLOUR = "#9a9a9a"
STATUS_COLOURS = {
    "succeeded": "#009e73",
    "failed": "#d55e00",
    "running": "#0072b2",
    "denied": "#9a9a9a",
    "subagent": "#cc79a7",
}


@dataclass(frozen=True)
class Series:
    """One stacked layer: a name, its colour and its value per day."""

    name: str
    colour: str
    values: dict[date, float]


def stack_by_day(
    points: Sequence[tuple[date, str, float]], *, days: int = 30, top: int = 6
) -> tuple[list[date], list[Series]]:
    """Group (day, key, value) points into the last `days` days and `top` layers (+ other).

    The days run up to the latest day with a point; the biggest keys over the window get
    their own layer and the rest are summed as "other".
    """
    if not points:
        return [], []
    last = max(day for day, _, _ in points)
    first = last - timedelta(days=days - 1)
    window = [(day, key, value) for day, key, value in points if day >= first]
    totals: dict[str, float] = {}
    for _, key, value in window:
        totals[key] = totals.get(key, 0.0) + value
    ranked = sorted(totals, key=lambda key: (-totals[key], key))
    kept = ranked if len(ranked) <= top + 1 else ranked[:top]
    layers: dict[str, dict[date, float]] = {key: {} for key in kept}
    other: dict[date, float] = {}
    for day, key, value in window:
        target = layers.get(key, other)
        target[day] = target.get(day, 0.0) + value
    series = [Series(key, PALETTE[i % len(PALETTE)], layers[key]) for i, key in enumerate(kept)]
    if other:
        series.append(Series("other", OTHER_COLOUR, other))
    return [first + timedelta(days=n) for n in range(days)], series


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    while power > value:
        power /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def stacked_bars(
    days: Sequence[date],
    series: Sequence[Series],
    *,
    label: str,
    formatter: Callable[[float], str],
    width: int = 720,
    height: int = 180,
) -> Markup:
    """An SVG of one stacked bar per day, with a y scale, day ticks and hover titles."""
    if not days or not series:
        return Markup('<p class="empty">No usage recorded yet.</p>')
    left, bottom, top_pad = 64, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    totals = [sum(s.values.get(day, 0.0) for s in series) for day in days]
    ceiling = _nice_ceiling(max(totals))
    slot = plot_w / len(days)
    bar_w = max(1.0, slot * 0.8)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = top_pad + plot_h * (1 - fraction)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(formatter(ceiling * fraction))}</text>"
        )
    tick_every = max(1, len(days) // 6)
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar_w) / 2
        y = top_pad + plot_h
        for layer in series:
            value = layer.values.get(day, 0.0)
            if value <= 0:
                continue
            h = plot_h * value / ceiling
            y -= h
            tip = f"{day.isoformat()} · {layer.name}: {formatter(value)}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{layer.colour}"><title>{escape(tip)}</title></rect>'
            )
        if index % tick_every == 0 or index == len(days) - 1:
            parts.append(
                f'<text class="axis" x="{x + bar_w / 2:.1f}" y="{height - 6}" '
                f'text-anchor="middle">{day.strftime("%b %d")}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" '
        f'fill="{layer.colour}"/></svg> {escape(layer.name)}</li>'
        for layer in series
    )
    return Markup("".join(parts) + f'<ul class="legend">{legend}</ul>')


@dataclass(frozen=True)
class Bar:
    """One span on a timeline: its lane, when, what it is, and its kind (for its colour)."""

    lane: str
    start: datetime
    end: datetime | None
    title: str
    kind: str


def timeline(bars: Sequence[Bar], *, now: datetime, width: int = 900, lane_h: int = 18) -> Markup:
    """An SVG of spans over time, one lane per tool or subagent, in order of first use."""
    if not bars:
        return Markup('<p class="empty">No tool calls or subagents recorded.</p>')
    lanes: list[str] = []
    for bar in sorted(bars, key=lambda b: b.start):
        if bar.lane not in lanes:
            lanes.append(bar.lane)
    first = min(bar.start for bar in bars)
    last = max((bar.end or min(now, bar.start + timedelta(seconds=1))) for bar in bars)
    last = max(last, first + timedelta(seconds=1))
    span = (last - first).total_seconds()
    left, top_pad, axis_h = 150, 4, 20
    plot_w = width - left - 8
    height = top_pad + lane_h * len(lanes) + axis_h

    def x_of(moment: datetime) -> float:
        return left + plot_w * (moment - first).total_seconds() / span

    parts = [
        f'<svg class="timeline" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Timeline of tool calls and subagents" xmlns="http://www.w3.org/2000/svg">'
    ]
    for index, lane in enumerate(lanes):
        y = top_pad + index * lane_h
        parts.append(
            f'<text class="lane" x="{left - 6}" y="{y + lane_h - 5}" text-anchor="end">'
            f"{escape(lane[:22])}</text>"
            f'<line class="grid" x1="{left}" x2="{width - 8}" y1="{y + lane_h}" '
            f'y2="{y + lane_h}"/>'
        )
    for bar in bars:
        y = top_pad + lanes.index(bar.lane) * lane_h + 3
        x0 = x_of(bar.start)
        x1 = x_of(bar.end) if bar.end else x_of(min(now, last))
        colour = STATUS_COLOURS.get(bar.kind, OTHER_COLOUR)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(2.0, x1 - x0):.1f}" height="{lane_h - 6}" '
            f'rx="2" fill="{colour}"><title>{escape(bar.title)}</title></rect>'
        )
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        moment = first + timedelta(seconds=span * fraction)
        anchor = "start" if fraction == 0 else "end" if fraction == 1 else "middle"
        parts.append(
            f'<text class="axis" x="{left + plot_w * fraction:.1f}" y="{height - 5}" '
            f'text-anchor="{anchor}">{moment.strftime("%H:%M:%S")}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
