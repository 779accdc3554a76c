"""Pages of list results: ``{"items", "total", "page", "per_page"}``."""
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select

from registry.db import db

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


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
