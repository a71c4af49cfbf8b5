"""What the mail gateway holds about a customer, found and scrubbed when it is erased.

The mail gateway keeps mail in its own tables, outside its event store: the outbox (to
whom, what about, what the mail was made from), the files ticket mail carries, every
incoming message taken (`mail_received`: who sent it, to which ticket it went), incoming
mail held for staff (`mail_held`: the raw message), conversation threads, and bounces
(an outbox row marked `bounced`, the bounce itself received or held). The customer's
addresses are gathered from everything it knew of them:

- the addresses the customers service's events gave (`CustomerRegistered`, an e-mail
  changed in `CustomerUpdated`), kept in `mail_customer_addresses`;
- the recipients of mail to the customer (the outbox rows naming it);
- the senders of mail that went to the customer's tickets (its users write from theirs),
  the tickets being those of its ticket mail (`mail_customer_tickets`, and the outbox).

Then every row from, to or about those addresses or tickets is scrubbed in the erasure's
transaction: addresses and subjects read `[erased]`, raw messages, bodies, contexts and
errors are emptied, threads and the addresses learnt are deleted, and the files only its
mail carried are deleted (a file another customer's mail carries too stays). Held mail
whose raw message names one of the addresses anywhere (a carbon copy, a bounce quoting
it) is emptied as well.
"""

from __future__ import annotations

from services.infra.personal_data import PLACEHOLDER


def _rows(curs, statement: str, params: tuple) -> list[str]:
    curs.execute(statement, params)
    return [r["v"] for r in curs.fetchall() if r["v"]]


def gather(curs, customer_id) -> tuple[list[str], list[str]]:
    """(addresses lowered, ticket ids) the mail gateway knows of the customer."""
    addresses = set(
        _rows(
            curs,
            "SELECT address AS v FROM mail_customer_addresses WHERE customer_id = %s",
            (customer_id,),
        )
    )
    addresses.update(
        _rows(
            curs,
            "SELECT DISTINCT lower(recipient) AS v FROM mail_outbox"
            " WHERE customer_id = %s AND recipient IS NOT NULL",
            (customer_id,),
        )
    )
    tickets = set(
        _rows(
            curs,
            "SELECT ticket_id AS v FROM mail_customer_tickets WHERE customer_id = %s",
            (customer_id,),
        )
    )
    tickets.update(
        _rows(
            curs,
            "SELECT DISTINCT context->>'ticket_id' AS v FROM mail_outbox"
            " WHERE customer_id = %s AND context ? 'ticket_id'",
            (customer_id,),
        )
    )
    # mail in to its tickets: the customer or its users wrote from these
    for table in ("mail_received", "mail_held"):
        addresses.update(
            _rows(
                curs,
                f"SELECT DISTINCT lower(sender) AS v FROM {table}"
                " WHERE ticket_id = ANY(%s) AND sender <> ''",
                (sorted(tickets),),
            )
        )
    addresses.discard(PLACEHOLDER)
    return sorted(addresses), sorted(tickets)


def _about(alias: str = "") -> str:
    """An outbox row about the customer: its own, to one of its addresses, or about one of
    its tickets (parameters: customer id, addresses, tickets)."""
    a = f"{alias}." if alias else ""
    return (
        f"coalesce({a}customer_id = %s OR lower({a}recipient) = ANY(%s)"
        f" OR {a}context->>'ticket_id' = ANY(%s), false)"
    )


# the ids of the files the outbox rows `o` matching a condition carry
_FILES = (
    "SELECT coalesce(f->>'id', '') FROM mail_outbox o, jsonb_array_elements(CASE WHEN"
    " jsonb_typeof(o.context->'attachments') = 'array' THEN o.context->'attachments'"
    " ELSE '[]'::jsonb END) f WHERE "
)


def scrub_statements(customer_id, addresses: list[str], tickets: list[str]) -> list:
    """The SQL that scrubs it all, for the erasure's save (`also`), in this order."""
    about = (customer_id, addresses, tickets)
    return [
        (
            # the files only its mail carried (read before the contexts are emptied)
            f"DELETE FROM mail_attachments WHERE id IN ({_FILES}{_about('o')})"
            f" AND id NOT IN ({_FILES}NOT {_about('o')})",
            about + about,
        ),
        (
            # a ticket mail's key names its recipient (ticket_mail.py): made unique by the
            # row's id instead
            "UPDATE mail_outbox SET recipient = CASE WHEN recipient IS NULL THEN NULL"
            " ELSE %s END, subject = CASE WHEN subject IS NULL THEN NULL ELSE %s END,"
            " context = '{}'::jsonb, secret = NULL, last_error = NULL,"
            " key = CASE WHEN recipient IS NOT NULL AND"
            "  position(lower(recipient) IN lower(key)) > 0 THEN 'erased:' || id ELSE key END,"
            " status = CASE WHEN status = 'pending' THEN 'skipped' ELSE status END,"
            " reason = CASE WHEN status = 'pending' THEN 'erased' ELSE reason END"
            f" WHERE {_about()}",
            (PLACEHOLDER, PLACEHOLDER, *about),
        ),
        (
            "UPDATE mail_received SET sender = %s,"
            " reason = CASE WHEN reason IS NULL THEN NULL ELSE %s END"
            " WHERE lower(sender) = ANY(%s) OR ticket_id = ANY(%s)",
            (PLACEHOLDER, PLACEHOLDER, addresses, tickets),
        ),
        (
            "UPDATE mail_held SET sender = %s, subject = %s, detail = '', raw = ''::bytea,"
            " recipient = CASE WHEN EXISTS (SELECT 1 FROM unnest(%s::text[]) a"
            "  WHERE position(a IN lower(recipient)) > 0) THEN %s ELSE recipient END"
            " WHERE lower(sender) = ANY(%s) OR ticket_id = ANY(%s)"
            " OR EXISTS (SELECT 1 FROM unnest(%s::text[]) a"
            "  WHERE position(a IN lower(encode(raw, 'escape'))) > 0)",
            (
                PLACEHOLDER,
                PLACEHOLDER,
                addresses,
                PLACEHOLDER,
                addresses,
                tickets,
                addresses,
            ),
        ),
        (
            "DELETE FROM mail_threads WHERE lower(recipient) = ANY(%s) OR ticket_id = ANY(%s)",
            (addresses, tickets),
        ),
        (
            "DELETE FROM mail_customer_addresses WHERE customer_id = %s OR address = ANY(%s)",
            (customer_id, addresses),
        ),
        ("DELETE FROM mail_customer_tickets WHERE customer_id = %s", (customer_id,)),
    ]


def learn_address_statement(customer_id, address: str) -> tuple[str, tuple]:
    return (
        "INSERT INTO mail_customer_addresses (customer_id, address) VALUES (%s, lower(%s))"
        " ON CONFLICT DO NOTHING",
        (customer_id, address),
    )


def learn_ticket_statement(ticket_id, customer_id) -> tuple[str, tuple]:
    return (
        "INSERT INTO mail_customer_tickets (ticket_id, customer_id) VALUES (%s, %s)"
        " ON CONFLICT (ticket_id) DO NOTHING",
        (str(ticket_id), customer_id),
    )
