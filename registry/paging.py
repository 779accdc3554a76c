"""Pages of list results: ``{"items", "total", "page", "per_page"}``."""
from dataclasses import dataclass
from typing import Any

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


@dataclass(frozen=True)
class Page:
    """One page of a longer list."""

    items: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        """Index of the first item of this page in the whole list."""
        return (self.page - 1) * self.per_page


def slice_page(items: list[Any], page: int, per_page: int) -> Page:
    """The ``page``-th slice of an in-memory list."""
    start = (page - 1) * per_page
    return Page(items[start : start + per_page], len(items), page, per_page)
