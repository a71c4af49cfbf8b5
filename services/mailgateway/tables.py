"""The mail gateway's own tables, beside its event store (one database, `<prefix>mailgateway`).

Both of its processes create them at start (IF NOT EXISTS): the nameko service (the
outbox and its sender) and the mail-in process (SMTP server and IMAP poller).
"""

from __future__ import annotations

SCHEMA = (
    # One row per notification. `status`:
    #   pending   -> waiting for its turn (`next_attempt_at`)
    #   sending   -> claimed by the sender, SMTP transaction under way
    #   sent      -> the relay accepted it (250 after the message data)
    #   failed    -> the relay refused it for good (5xx), or it could not be rendered
    #   uncertain -> the connection broke after the message data was sent, or the
    #                sender died between `sending` and `sent`: it may have arrived, so it
    #                is never sent again by itself (staff may resend it)
    #   skipped   -> not sent on purpose (the customer turned this kind off, no address)
    #   bounced   -> sent, then a delivery status notification came back for it
    """
    CREATE TABLE IF NOT EXISTS mail_outbox (
        id bigserial PRIMARY KEY,
        key text NOT NULL UNIQUE,
        kind text NOT NULL,
        customer_id uuid,
        recipient text,
        language text NOT NULL DEFAULT 'en',
        context jsonb NOT NULL DEFAULT '{}'::jsonb,
        secret text,
        message_id text NOT NULL,
        in_reply_to text,
        status text NOT NULL DEFAULT 'pending',
        reason text,
        subject text,
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL,
        last_error text,
        created_at timestamptz NOT NULL,
        sent_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS mail_outbox_due ON mail_outbox (next_attempt_at, id)"
    " WHERE status = 'pending'",
    "CREATE INDEX IF NOT EXISTS mail_outbox_message_id ON mail_outbox (message_id)",
    "CREATE INDEX IF NOT EXISTS mail_outbox_customer ON mail_outbox (customer_id, id)",
    # orders' ServiceSuspended/Unsuspended recorded before they named the customer name
    # the service only: its owner comes from the ServiceActivated event before them
    """
    CREATE TABLE IF NOT EXISTS mail_service_owners (
        service_id uuid PRIMARY KEY,
        customer_id uuid NOT NULL
    )
    """,
    # per ticket and recipient: the first and the latest Message-ID of the conversation
    """
    CREATE TABLE IF NOT EXISTS mail_threads (
        ticket_id text NOT NULL,
        recipient text NOT NULL,
        root text NOT NULL,
        last text NOT NULL,
        PRIMARY KEY (ticket_id, recipient)
    )
    """,
    # incoming mail kept for staff instead of being handed to the helpdesk
    """
    CREATE TABLE IF NOT EXISTS mail_held (
        id bigserial PRIMARY KEY,
        received_at timestamptz NOT NULL,
        reason text NOT NULL,
        detail text NOT NULL DEFAULT '',
        sender text NOT NULL DEFAULT '',
        recipient text NOT NULL DEFAULT '',
        subject text NOT NULL DEFAULT '',
        raw bytea NOT NULL
    )
    """,
    # what staff did with a held message: `status` held, released (handed to the helpdesk:
    # the ticket it went to) or discarded (`note`: why); who (`handled_by`, an actor) and when
    "ALTER TABLE mail_held ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'held',"
    " ADD COLUMN IF NOT EXISTS handled_at timestamptz,"
    " ADD COLUMN IF NOT EXISTS handled_by jsonb,"
    " ADD COLUMN IF NOT EXISTS note text,"
    " ADD COLUMN IF NOT EXISTS ticket_id text,"
    " ADD COLUMN IF NOT EXISTS tracking_number text",
    "CREATE INDEX IF NOT EXISTS mail_held_status ON mail_held (status, id)",
    # every incoming message taken (or dropped by the loop rules): the per-sender rate
    # limit counts here, and staff can see why a message opened no ticket
    """
    CREATE TABLE IF NOT EXISTS mail_received (
        id bigserial PRIMARY KEY,
        received_at timestamptz NOT NULL,
        sender text NOT NULL,
        recipient text NOT NULL,
        message_id text NOT NULL,
        outcome text NOT NULL,
        reason text,
        ticket_id text,
        tracking_number text
    )
    """,
    "CREATE INDEX IF NOT EXISTS mail_received_sender ON mail_received (sender, received_at)",
    # the files of ticket messages mailed to clients, once per content (`id`: its sha256,
    # as the helpdesk names it): every copy of a message to many customers refers to it
    """
    CREATE TABLE IF NOT EXISTS mail_attachments (
        id text PRIMARY KEY,
        content bytea NOT NULL
    )
    """,
    # what an erasure of a customer must find here (services.mailgateway.erasure): the
    # addresses the customers service's events gave it, and the tickets of its ticket mail
    """
    CREATE TABLE IF NOT EXISTS mail_customer_addresses (
        customer_id uuid NOT NULL,
        address text NOT NULL,
        PRIMARY KEY (customer_id, address)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS mail_customer_tickets (
        ticket_id text PRIMARY KEY,
        customer_id uuid NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS mail_customer_tickets_customer"
    " ON mail_customer_tickets (customer_id)",
    # IMAP: the highest UID handed on per mailbox, valid while UIDVALIDITY stays the same
    """
    CREATE TABLE IF NOT EXISTS mail_imap_positions (
        mailbox text PRIMARY KEY,
        uidvalidity bigint NOT NULL,
        last_uid bigint NOT NULL
    )
    """,
)
