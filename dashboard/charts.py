"""Server-rendered SVG charts for the overview: no JavaScript, no inline styles (CSS classes only), every
value escaped. Each chart carries a text alternative; the page also offers the figures as a table."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from chat.analytics import DayCount


def _n(value: float) -> str:
    """A coordinate with one decimal (format_html escapes its arguments, so numbers are formatted first)."""
    return f"{value:.1f}"


WIDTH, HEIGHT = 520, 190
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 28, 22, 8


def _nice_max(value: int) -> int:
    """A round axis maximum at or above `value` (at least 4, so the four gridlines are whole numbers)."""
    for step in (4, 8, 12, 20, 40, 60, 100, 200, 400, 600, 1000, 2000, 4000, 10000):
        if value <= step:
            return step
    return value


def _label(day: date) -> str:
    return f"{day:%b} {day.day}"


def daily_bars(days: Sequence[DayCount], *, title: str) -> SafeString:
    """A column per day, with four gridlines and a few date labels."""
    top = _nice_max(max((d.count for d in days), default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(days), 1)
    bar_w = max(1.0, slot * 0.7)
    grid = format_html_join(
        "",
        '<line class="chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"/><text class="chart-axis" x="{}" y="{}" '
        'text-anchor="end">{}</text>',
        (
            (PAD_LEFT, WIDTH, _n(y), _n(y), PAD_LEFT - 4, _n(y + 4), value)
            for value, y in ((top * i // 4, PAD_TOP + plot_h - plot_h * i / 4) for i in range(5))
        ),
    )
    bars = format_html_join(
        "",
        '<rect class="chart-bar" x="{}" y="{}" width="{}" height="{}" rx="1.5"><title>{}: {}</title></rect>',
        (
            (
                _n(PAD_LEFT + i * slot + (slot - bar_w) / 2),
                _n(PAD_TOP + plot_h - plot_h * d.count / top),
                _n(bar_w),
                _n(plot_h * d.count / top),
                _label(d.day),
                d.count,
            )
            for i, d in enumerate(days)
        ),
    )
    every = max(1, len(days) // 6)
    labels = format_html_join(
        "",
        '<text class="chart-axis" x="{}" y="{}" text-anchor="{}">{}</text>',
        (
            (
                _n(PAD_LEFT + i * slot + slot / 2),
                HEIGHT - 6,
                "end" if i == len(days) - 1 else "start" if i == 0 else "middle",
                _label(d.day),
            )
            for i, d in enumerate(days)
            if i % every == 0 or i == len(days) - 1
        ),
    )
    total = sum(d.count for d in days)
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-t"><title id="{}-t">{}: {} in '
        "{} days</title>{}{}{}</svg>",
        WIDTH,
        HEIGHT,
        "daily",
        "daily",
        title,
        total,
        len(days),
        grid,
        bars,
        labels,
    )


def ranked_bars(rows: Sequence[tuple[str, int]], *, title: str, label_prefix: str = "") -> SafeString:
    """Horizontal bars, largest first, each labelled with its name and count."""
    if not rows:
        return mark_safe("")
    row_h, label_w, width = 30, 200, 480
    top = max(n for _, n in rows) or 1
    body = format_html_join(
        "",
        '<g><text class="chart-label" x="0" y="{}">{}</text><rect class="chart-bar" x="{}" y="{}" width="{}" '
        'height="16" rx="3"/><text class="chart-value" x="{}" y="{}">{}</text></g>',
        (
            (
                i * row_h + 18,
                (label_prefix + name.replace("_", " ")).capitalize()[:30],
                label_w,
                i * row_h + 5,
                _n((width - label_w - 40) * n / top),
                _n(label_w + (width - label_w - 40) * n / top + 6),
                i * row_h + 18,
                n,
            )
            for i, (name, n) in enumerate(rows)
        ),
    )
    summary = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in rows)
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}: {}">{}</svg>',
        width,
        len(rows) * row_h,
        title,
        summary,
        body,
    )


def meter(used: float, limit: float | None, *, title: str) -> SafeString:
    """A horizontal gauge of `used` against `limit` (an unlimited plan shows a full, neutral bar)."""
    width = 300
    share = min(1.0, used / limit) if limit else 0.0
    level = "danger" if limit and share >= 1 else "warn" if limit and share >= 0.8 else "ok"
    fill = width * share if limit else 0
    text = f"{used:g} of {limit:g}" if limit else f"{used:g} (unlimited)"
    return format_html(
        '<svg class="chart meter" viewBox="0 0 {} 14" role="img" aria-label="{}: {}"><rect class="meter-track" '
        'width="{}" height="14" rx="7"/><rect class="meter-fill meter-{}" width="{}" height="14" rx="7"/></svg>',
        width,
        title,
        text,
        width,
        level,
        _n(fill),
    )


def donut(share: float | None, *, title: str) -> SafeString:
    """A ring showing a share from 0 to 1 (an empty ring when there is nothing to measure)."""
    radius = 40
    circumference = 2 * 3.14159265 * radius
    filled = circumference * (share or 0.0)
    text = f"{share:.0%}" if share is not None else "\u2013"
    if not filled:  # a zero-length round-capped stroke would still draw a dot
        return format_html(
            '<svg class="chart donut" viewBox="0 0 100 100" role="img" aria-label="{}: {}"><circle class="donut-track" '
            'cx="50" cy="50" r="{}"/><text class="donut-text" x="50" y="56" text-anchor="middle">{}</text></svg>',
            title,
            text,
            radius,
            text,
        )
    return format_html(
        '<svg class="chart donut" viewBox="0 0 100 100" role="img" aria-label="{}: {}"><circle class="donut-track" '
        'cx="50" cy="50" r="{}"/><circle class="donut-fill" cx="50" cy="50" r="{}" stroke-dasharray="{} {}" '
        'transform="rotate(-90 50 50)"/><text class="donut-text" x="50" y="56" text-anchor="middle">{}</text></svg>',
        title,
        text,
        radius,
        radius,
        _n(filled),
        _n(circumference),
        text,
    )
