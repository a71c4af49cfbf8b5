"""What the route modules share: role sets, the one page schema, list answers, RPC values."""

from __future__ import annotations

import datetime
import decimal
import uuid

from marshmallow import Schema, fields

from contracts import fields as f
from services.infra.paging import page_of

# every staff role; the routes open to all of them only read (and log out)
ALL_STAFF = ("admin", "support", "billing", "auditor")


class Page(Schema):
    """`?page=&page_size=`, which every list takes: page 1 to 1,000,000, page_size 1 to
    200 (so that an offset always fits)."""

    page = f.Page()
    page_size = f.PageSize()


class PageQuery(Page):
    customer_id = fields.UUID(load_default=None)


def paged(items: list, query: dict) -> dict:
    """A page of a list a service answered whole, by the query's page and page_size."""
    return page_of(items, query["page"], query["page_size"])


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
