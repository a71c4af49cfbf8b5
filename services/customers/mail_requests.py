"""Mail the customers service asks the mail gateway for: recorded, then handed over.

A new account's credentials (the order form), a password reset link, and an e-mail
change's confirmation link (with the notice to the old address, email_change.py) are
mails that must go out. Each is recorded as a row of `mail_requests` in the same transaction as the
registration or the reset (`request_statement`, a save's `also`), with the generated
password or the reset token in `secret`. `background.MailRequests` hands each row to
the mail gateway (`send_account_credentials`, `send_password_reset`, both queueing one
mail per request however often they are called) and erases the secret once the mail
gateway took it; while the mail gateway cannot be reached it tries again with backoff.
Secrets never go into events.
"""

from __future__ import annotations

from uuid import UUID

from psycopg.types.json import Jsonb

from services.infra import clock

# the mails that can be asked for (a new kind: add it here; the check follows at start)
KINDS = ("account_credentials", "password_reset", "email_change", "email_changed")
_KIND_CHECK = "CHECK (kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + "))"

TABLE = (
    f"""
    CREATE TABLE IF NOT EXISTS mail_requests (
        id bigserial PRIMARY KEY,
        kind text NOT NULL {_KIND_CHECK},
        customer_id uuid,
        details jsonb NOT NULL,
        secret text,
        created_at timestamptz NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        handed_over_at timestamptz,
        last_error text
    )
    """,
    "CREATE INDEX IF NOT EXISTS mail_requests_due ON mail_requests (next_attempt_at, id)"
    " WHERE handed_over_at IS NULL",
    # a table made before a kind was added takes it too
    "ALTER TABLE mail_requests DROP CONSTRAINT IF EXISTS mail_requests_kind_check",
    f"ALTER TABLE mail_requests ADD CONSTRAINT mail_requests_kind_check {_KIND_CHECK}",
)
MAX_BACKOFF = 300.0


def request_statement(kind: str, customer_id, details: dict, secret: str) -> tuple[str, tuple]:
    """The row that asks for one mail, for the `also` of the save that makes it needed."""
    now = clock.now()
    customer_id = UUID(str(customer_id)) if customer_id else None
    return (
        "INSERT INTO mail_requests (kind, customer_id, details, secret, created_at,"
        " next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s)",
        (kind, customer_id, Jsonb(details), secret, now, now),
    )
