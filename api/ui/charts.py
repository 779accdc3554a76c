"""Geometry of the compare page's bar chart, drawn as inline SVG (no JavaScript, no CDN)."""
import math
from dataclasses import dataclass


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
