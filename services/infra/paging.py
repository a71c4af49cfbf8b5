"""Pages of a list: the bounds every list query keeps, at the services as at the gateway.

`page` is 1 to MAX_PAGE and `page_size` 1 to MAX_PAGE_SIZE (contracts.fields), so the
offset `(page - 1) * page_size` always fits PostgreSQL's bigint. The gateway refuses
anything else with a 400; the services refuse it again before they query, so that no
caller (another service, a script over RPC) reaches the database with an offset that
does not fit.
"""

from __future__ import annotations

from contracts.errors import ValidationFailed
from contracts.fields import MAX_PAGE, MAX_PAGE_SIZE


def page_window(page, page_size) -> tuple[int, int]:
    """`(limit, offset)` of a page; ValidationFailed naming `page` or `page_size` when one
    is not an integer within its bounds."""
    for name, value, top in (("page", page, MAX_PAGE), ("page_size", page_size, MAX_PAGE_SIZE)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            message = f"Must be an integer from 1 to {top}."
            raise ValidationFailed(f"{name}: {message}", {name: [message]})
    return page_size, (page - 1) * page_size


def page_of(items: list, page: int, page_size: int) -> dict:
    """One page of a list the caller holds whole: `{"items", "total", "page", "page_size"}`."""
    limit, offset = page_window(page, page_size)
    return {
        "items": items[offset : offset + limit],
        "total": len(items),
        "page": page,
        "page_size": page_size,
    }
