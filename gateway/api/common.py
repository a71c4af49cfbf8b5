"""What the route modules share: role sets, the page schema, list answers, RPC values."""

from __future__ import annotations

import datetime
import decimal
import uuid

from marshmallow import Schema, fields, validate

ALL_STAFF = ("admin", "support", "billing")


class Page(Schema):
    """`?page=&page_size=`: every list takes them."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PageQuery(Page):
    customer_id = fields.UUID(load_default=None)


class ListQuery(PageQuery):
    status = fields.String(
        load_default=None, validate=validate.OneOf(["unpaid", "paid", "cancelled", "refunded"])
    )


def str_or_none(value) -> str | None:
    return None if value is None else str(value)


def jsonable(value):
    """Loaded request data as plain JSON for RPC (UUIDs, dates and decimals as strings)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return value
