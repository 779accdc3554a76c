"""Pages of a list: the page arguments and the page of items a list answers."""
from marshmallow import Schema, fields, validate

from registry.paging import DEFAULT_PER_PAGE, MAX_PER_PAGE


# Far beyond any real list, and small enough that page * per_page fits every database's OFFSET.
MAX_PAGE = 1_000_000


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    per_page = fields.Integer(load_default=DEFAULT_PER_PAGE, validate=validate.Range(min=1, max=MAX_PER_PAGE))


def page_of(item_schema: type[Schema]) -> type[Schema]:
    """A list-response schema ``{"items", "total", "page", "per_page"}`` of ``item_schema``."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item_schema)),
            "total": fields.Integer(),
            "page": fields.Integer(),
            "per_page": fields.Integer(),
        },
        name=f"{item_schema.__name__}Page",
    )
