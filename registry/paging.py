"""Pages of list results (``{"items", "total", "page", "per_page"}``) and the orders they come in."""
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from registry.db import db
from registry.errors import InvalidInput

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500
SORT_FIELDS = ("version", "created_at")


@dataclass(frozen=True)
class Page:
    """One page of a longer list."""

    items: list[Any]
    total: int
    page: int
    per_page: int


def paginate(query: Select, page: int, per_page: int) -> Page:
    """The ``page``-th page of an ordered ``select`` of ORM rows, with the count of all of them."""
    total = db.session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(query.offset((page - 1) * per_page).limit(per_page)).scalars().all()
    return Page(list(rows), total, page, per_page)


def slice_page(items: list[Any], page: int, per_page: int) -> Page:
    """The ``page``-th slice of an in-memory list."""
    start = (page - 1) * per_page
    return Page(items[start : start + per_page], len(items), page, per_page)


def sorted_by(versions: list, sort: str) -> list:
    """Sort by ``version``, ``created_at`` or ``metrics.<key>``; '-' for descending.

    Takes anything with ``number``, ``created_at`` and ``metrics`` (versions, evaluations).

    Versions without the sorted metric come last in either direction.
    """
    descending = sort.startswith("-")
    key = sort[1:] if sort[:1] in ("-", "+") else sort
    if key in SORT_FIELDS:
        attr = "number" if key == "version" else key
        return sorted(versions, key=lambda v: (getattr(v, attr), v.number), reverse=descending)
    if key.startswith("metrics.") and len(key) > len("metrics."):
        metric = key[len("metrics."):]
        having = [v for v in versions if _is_number(v.metrics.get(metric))]
        missing = [v for v in versions if not _is_number(v.metrics.get(metric))]
        having.sort(key=lambda v: (v.metrics[metric], v.number), reverse=descending)
        missing.sort(key=lambda v: v.number, reverse=True)
        return having + missing
    raise InvalidInput(
        f"unknown sort key {sort!r}: use version, created_at or metrics.<name>, with '-' for descending",
        errors={"sort": ["unknown sort key"]},
    )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
