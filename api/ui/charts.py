"""Geometry of the dashboard's charts (compare bars, live quality, drift), drawn as inline SVG (no JavaScript, no CDN)."""
import math
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Bar:
    """One version's value of one metric, and its bar's length as a share of the longest (0..1)."""

    version: int
    value: float | None
    share: float
    negative: bool


def metric_bars(versions, metric_names: list[str]) -> dict[str, list[Bar]]:
    """For each metric, one bar per version, scaled to the largest magnitude among them."""
    chart = {}
    for name in metric_names:
        values = [_number(v.metrics.get(name)) for v in versions]
        largest = max((abs(x) for x in values if x is not None), default=0.0)
        chart[name] = [
            Bar(v.number, x, (abs(x) / largest) if x is not None and largest else 0.0, x is not None and x < 0)
            for v, x in zip(versions, values)
        ]
    return chart


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class QualityMark:
    """One slice of a live-quality chart: where its value and its interval's ends sit (SVG y, top 0)."""

    x: float
    y: float | None  # None: no label in this slice
    y_low: float | None
    y_high: float | None
    label: str  # what the slice is, for the tooltip


QUALITY_HEIGHT = 140
QUALITY_WIDTH = 600
QUALITY_MARGIN = 36  # room for the axis labels on the left


def quality_marks(points, *, metric: str) -> tuple[list[QualityMark], list[tuple[float, str]]]:
    """The marks of a live-quality timeline and its y ticks (y, text): accuracy on 0–1, an error on
    0 to its largest upper bound."""
    highs = [p.quality.ci_high for p in points if p.quality and p.quality.ci_high is not None and math.isfinite(p.quality.ci_high)]
    top = 1.0 if metric == "accuracy" else max(highs, default=1.0) or 1.0
    step = (QUALITY_WIDTH - QUALITY_MARGIN) / max(len(points), 1)

    def y(value: float) -> float:
        return round(QUALITY_HEIGHT - 10 - (min(value, top) / top) * (QUALITY_HEIGHT - 20), 1)

    marks = []
    for i, point in enumerate(points):
        x = round(QUALITY_MARGIN + step * (i + 0.5), 1)
        span = f"{point.start:%m-%d %H:%M} – {point.end:%H:%M}"
        if point.quality is None:
            marks.append(QualityMark(x, None, None, None, f"{span}: no label yet"))
            continue
        q = point.quality
        marks.append(QualityMark(x, y(q.value), y(q.ci_low), y(q.ci_high),
                                 f"{span}: {q.metric} {q.value:.4g} ({q.ci_low:.4g}–{q.ci_high:.4g}), {q.rows} rows"))
    ticks = [(y(top * share), f"{top * share:.3g}") for share in (0.0, 0.5, 1.0)]
    return marks, ticks


TIME_TICKS = 4  # time labels under a live-quality chart: its start, its end and evenly between


def time_ticks(points) -> list[tuple[float, str]]:
    """Where a live-quality timeline's slices start, as x and UTC text under the chart: the first slice's
    start, the last one's end and evenly between; the date too where the timeline spans more than a day."""
    if not points:
        return []
    start, end = points[0].start, points[-1].end
    spread = "%m-%d %H:%M" if end - start > timedelta(days=1) else "%H:%M"
    width = QUALITY_WIDTH - QUALITY_MARGIN
    return [(round(QUALITY_MARGIN + width * i / (TIME_TICKS - 1), 1),
             (start + (end - start) * i / (TIME_TICKS - 1)).strftime(spread)) for i in range(TIME_TICKS)]


@dataclass(frozen=True)
class ShareBar:
    """One bin of a drift chart: its name and the heights (0..1 of the tallest) of the reference's and
    the recent shares."""

    name: str
    reference: float
    recent: float
    reference_share: float
    recent_share: float


def share_bars(bins: list[dict]) -> list[ShareBar]:
    """A drift chart's bars: each bin's reference and recent shares, scaled to the largest share."""
    tallest = max((max(b["reference"], b["recent"]) for b in bins), default=0.0) or 1.0
    return [ShareBar(b["bin"], b["reference"] / tallest, b["recent"] / tallest, b["reference"], b["recent"]) for b in bins]
