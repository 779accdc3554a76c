"""How the dashboard writes figures for people to read (its templates' filters)."""
# (unit, its seconds, the next smaller unit, its seconds), largest first
STEPS = (("d", 86_400, "h", 3_600), ("h", 3_600, "min", 60), ("min", 60, "s", 1))


def duration(seconds: float) -> str:
    """``seconds`` in the two largest units it spans, rounded to the smaller: 42 ms, 7.4 s, 3 min 12 s,
    2 h 5 min, 1 d 2 h (a zero second unit is left out)."""
    if seconds < 0.9995:
        return f"{seconds * 1000:.0f} ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    # from a minute on, the largest unit that the time rounded to its next smaller unit reaches
    unit, size, small, small_size = next(step for step in STEPS if round(seconds / step[3]) * step[3] >= step[1])
    whole, rest = divmod(round(seconds / small_size), size // small_size)
    return f"{whole} {unit}" + (f" {rest} {small}" if rest else "")
