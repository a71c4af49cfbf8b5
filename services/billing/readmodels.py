"""Query tables of the billing service, fed from its own log."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from services.infra.personal_data import PLACEHOLDER
from services.infra.readmodels import ReadModel


class AccountList(ReadModel):
    name = "account_list"
    table_names = ("account_list",)
    tables = (
        """
        CREATE TABLE IF NOT EXISTS account_list (
            account_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            currency text NOT NULL,
            balance bigint NOT NULL DEFAULT 0,
            opened_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS account_list_customer ON account_list (customer_id)",
    )

    def on_PersonalAccount_Opened(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO account_list (account_id, customer_id, currency, opened_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (account_id) DO NOTHING",
            (e.originator_id, e.customer_id, e.currency, e.opened_at),
        )

    def _add(self, curs, e) -> None:
        curs.execute(
            "UPDATE account_list SET balance = balance + %s WHERE account_id = %s",
            (e.amount, e.originator_id),
        )

    on_PersonalAccount_Credited = _add
    on_PersonalAccount_Debited = _add


class Ledger(ReadModel):
    """Every entry of every personal account, with the balance after it: what
    `GET .../account` pages through, and what `?at=` reads the past balance from.

    `ledger_accounts.version` is the last version of each account projected here: a
    reader compares it with the aggregate's version and reads any newer entries
    straight from the event store (see services/billing/ledger.py). `in_order` says
    that no entry's time is before an earlier entry's (the clock can be moved back),
    so the entries up to any instant are the first n: `seq` 1 to n.
    """

    name = "ledger"
    table_names = ("ledger_entries", "ledger_accounts")
    tables = (
        """
        CREATE TABLE IF NOT EXISTS ledger_accounts (
            account_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            currency text NOT NULL,
            version bigint NOT NULL,
            balance bigint NOT NULL DEFAULT 0,
            entries bigint NOT NULL DEFAULT 0,
            last_at timestamptz,
            in_order boolean NOT NULL DEFAULT true
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS ledger_entries (
            account_id uuid NOT NULL,
            version bigint NOT NULL,
            seq bigint NOT NULL,
            entry_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            currency text NOT NULL,
            occurred_at timestamptz NOT NULL,
            kind text NOT NULL,
            amount bigint NOT NULL,
            balance_after bigint NOT NULL,
            reference text,
            reason text,
            actor jsonb,
            PRIMARY KEY (account_id, version)
        )
        """,
        "CREATE INDEX IF NOT EXISTS ledger_entries_at"
        " ON ledger_entries (account_id, occurred_at, version)",
        # the n-th entry of an account: a page of the whole history is a range of these
        "CREATE UNIQUE INDEX IF NOT EXISTS ledger_entries_seq ON ledger_entries (account_id, seq)",
    )

    def on_PersonalAccount_Opened(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO ledger_accounts (account_id, customer_id, currency, version)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (account_id) DO NOTHING",
            (e.originator_id, e.customer_id, e.currency, e.originator_version),
        )

    def on_PersonalAccount_BuyerChanged(self, curs, e) -> None:
        curs.execute(
            "UPDATE ledger_accounts SET version = %s WHERE account_id = %s AND version < %s",
            (e.originator_version, e.originator_id, e.originator_version),
        )

    def _entry(self, curs, e) -> None:
        # one statement per entry (a burst of 100,000 is projected in 100,000 round trips,
        # not twice as many); the event says the balance after it, and events from before
        # it did are summed here. An event projected already changes nothing.
        actor = getattr(e, "actor", None)
        curs.execute(
            "WITH account AS ("
            " UPDATE ledger_accounts SET version = %(version)s, entries = entries + 1,"
            " balance = COALESCE(%(balance_after)s, balance + %(amount)s),"
            " in_order = in_order AND (last_at IS NULL OR last_at <= %(at)s),"
            " last_at = GREATEST(last_at, %(at)s)"
            " WHERE account_id = %(account_id)s AND version < %(version)s"
            " RETURNING customer_id, currency, balance, entries)"
            " INSERT INTO ledger_entries (account_id, version, seq, entry_id, customer_id,"
            " currency, occurred_at, kind, amount, balance_after, reference, reason, actor)"
            " SELECT %(account_id)s, %(version)s, entries, %(entry_id)s, customer_id, currency,"
            " %(at)s, %(kind)s, %(amount)s, balance, %(reference)s, %(reason)s, %(actor)s"
            " FROM account",
            {
                "account_id": e.originator_id,
                "version": e.originator_version,
                "balance_after": getattr(e, "balance_after", None),
                "amount": e.amount,
                "entry_id": e.entry_id,
                "at": e.at,
                "kind": e.kind,
                "reference": e.reference,
                "reason": e.reason,
                "actor": Jsonb(actor) if actor else None,
            },
        )

    on_PersonalAccount_Credited = _entry
    on_PersonalAccount_Debited = _entry

    def on_PersonalData_Erased(self, curs, e) -> None:
        """The entries' reasons (staff's words, sealed with the customer's key) read as a
        replay now reads them: the placeholder."""
        curs.execute(
            "UPDATE ledger_entries SET reason = %s WHERE customer_id = %s AND reason IS NOT NULL",
            (PLACEHOLDER, e.customer_id),
        )


class BillingLists(ReadModel):
    """Invoices, payments and expenses, for the client's and staff's lists."""

    name = "billing_lists"
    table_names = (
        "invoice_list",
        "payment_list",
        "expense_list",
        "expense_accounts",
        "unmatched_list",
        "commission_list",
        "credit_note_list",
        "refund_list",
    )
    tables = (
        """
        CREATE TABLE IF NOT EXISTS credit_note_list (
            credit_note_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            number text NOT NULL,
            invoice_id uuid NOT NULL,
            invoice_number text NOT NULL,
            refund_id uuid NOT NULL,
            refund_to text NOT NULL,
            total bigint NOT NULL,
            currency text NOT NULL,
            issued_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS credit_note_list_customer"
        " ON credit_note_list (customer_id, issued_at)",
        """
        CREATE TABLE IF NOT EXISTS refund_list (
            refund_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            invoice_id uuid NOT NULL,
            invoice_number text NOT NULL,
            credit_note_number text NOT NULL,
            amount bigint NOT NULL,
            currency text NOT NULL,
            refund_to text NOT NULL,
            processor text,
            status text NOT NULL,
            attempt integer NOT NULL DEFAULT 1,
            processor_refund_id text,
            error text,
            requested_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS refund_list_status ON refund_list (status, requested_at)",
        """
        CREATE TABLE IF NOT EXISTS commission_list (
            commission_id uuid PRIMARY KEY,
            referrer_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            invoice_id uuid NOT NULL,
            program text NOT NULL,
            amount bigint NOT NULL,
            currency text NOT NULL,
            status text NOT NULL,
            earned_at timestamptz NOT NULL,
            matures_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS commission_due ON commission_list (status, matures_at)",
        "CREATE INDEX IF NOT EXISTS commission_referrer ON commission_list (referrer_id)",
        """
        CREATE TABLE IF NOT EXISTS unmatched_list (
            unmatched_id uuid PRIMARY KEY,
            processor text NOT NULL,
            event_id text NOT NULL,
            reference text NOT NULL,
            amount bigint NOT NULL,
            currency text NOT NULL,
            invoice_ref text,
            received_at timestamptz NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS expense_accounts (
            account_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            currency text NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS invoice_list (
            invoice_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            number text NOT NULL,
            status text NOT NULL,
            purpose text NOT NULL,
            total bigint NOT NULL,
            currency text NOT NULL,
            issued_at timestamptz NOT NULL,
            due_date date NOT NULL,
            overdue boolean NOT NULL DEFAULT false,
            reminded boolean NOT NULL DEFAULT false
        )
        """,
        "CREATE INDEX IF NOT EXISTS invoice_list_due ON invoice_list (status, overdue, due_date)",
        "CREATE INDEX IF NOT EXISTS invoice_list_customer ON invoice_list (customer_id, issued_at)",
        "CREATE INDEX IF NOT EXISTS invoice_list_issued ON invoice_list (issued_at)",
        """
        CREATE TABLE IF NOT EXISTS payment_list (
            payment_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            amount bigint NOT NULL,
            currency text NOT NULL,
            method text NOT NULL,
            reference text NOT NULL,
            invoice_id uuid,
            received_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS payment_list_customer"
        " ON payment_list (customer_id, received_at)",
        """
        CREATE TABLE IF NOT EXISTS expense_list (
            entry_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            kind text NOT NULL,
            amount bigint NOT NULL,
            currency text NOT NULL,
            reference text,
            at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS expense_list_customer ON expense_list (customer_id, at)",
    )

    def on_Commission_Earned(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO commission_list (commission_id, referrer_id, customer_id, invoice_id,"
            " program, amount, currency, status, earned_at, matures_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.referrer_id,
                e.customer_id,
                e.invoice_id,
                e.program,
                e.amount,
                e.currency,
                e.timestamp,
                e.matures_at,
            ),
        )

    def on_Commission_Credited(self, curs, e) -> None:
        curs.execute(
            "UPDATE commission_list SET status = 'credited' WHERE commission_id = %s",
            (e.originator_id,),
        )

    def on_UnmatchedPayment_Kept(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO unmatched_list (unmatched_id, processor, event_id, reference, amount,"
            " currency, invoice_ref, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.processor,
                e.event_id,
                e.reference,
                e.amount,
                e.currency,
                e.invoice_id,
                e.received_at,
            ),
        )

    def on_PersonalAccount_Opened(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO expense_accounts (account_id, customer_id, currency) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (e.originator_id, e.customer_id, e.currency),
        )

    def on_Invoice_Issued(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO invoice_list (invoice_id, customer_id, number, status, purpose, total,"
            " currency, issued_at, due_date) VALUES (%s, %s, %s, 'unpaid', %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.customer_id,
                e.number,
                e.purpose,
                e.total,
                e.currency,
                e.issued_at,
                e.due_date,
            ),
        )

    def on_Invoice_Paid(self, curs, e) -> None:
        curs.execute(
            "UPDATE invoice_list SET status = 'paid' WHERE invoice_id = %s", (e.originator_id,)
        )

    def on_Invoice_DueSoon(self, curs, e) -> None:
        curs.execute(
            "UPDATE invoice_list SET reminded = true WHERE invoice_id = %s", (e.originator_id,)
        )

    def on_Invoice_Overdue(self, curs, e) -> None:
        curs.execute(
            "UPDATE invoice_list SET overdue = true WHERE invoice_id = %s", (e.originator_id,)
        )

    def on_Invoice_Refunded(self, curs, e) -> None:
        curs.execute(
            "UPDATE invoice_list SET status = 'refunded' WHERE invoice_id = %s", (e.originator_id,)
        )

    def on_Invoice_Cancelled(self, curs, e) -> None:
        curs.execute(
            "UPDATE invoice_list SET status = 'cancelled' WHERE invoice_id = %s", (e.originator_id,)
        )

    def on_Invoice_Voided(self, curs, e) -> None:
        curs.execute(
            "UPDATE invoice_list SET status = 'void' WHERE invoice_id = %s", (e.originator_id,)
        )

    def on_Payment_Received(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO payment_list (payment_id, customer_id, amount, currency, method,"
            " reference, invoice_id, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.customer_id,
                e.amount,
                e.currency,
                e.method,
                e.reference,
                e.invoice_id,
                e.received_at,
            ),
        )

    def on_PersonalAccount_Debited(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO expense_list (entry_id, customer_id, kind, amount, currency, reference,"
            " at) SELECT %s, customer_id, %s, %s, currency, %s, %s FROM expense_accounts"
            " WHERE account_id = %s ON CONFLICT DO NOTHING",
            (e.entry_id, e.kind, -e.amount, e.reference, e.at, e.originator_id),
        )

    def on_CreditNote_Issued(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO credit_note_list (credit_note_id, customer_id, number, invoice_id,"
            " invoice_number, refund_id, refund_to, total, currency, issued_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.customer_id,
                e.number,
                e.invoice_id,
                e.invoice_number,
                e.refund_id,
                e.to,
                e.total,
                e.currency,
                e.issued_at,
            ),
        )

    def on_Refund_Requested(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO refund_list (refund_id, customer_id, invoice_id, invoice_number,"
            " credit_note_number, amount, currency, refund_to, processor, status, requested_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'requested', %s)"
            " ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.customer_id,
                e.invoice_id,
                e.invoice_number,
                e.credit_note_number,
                e.amount,
                e.currency,
                e.to,
                e.processor,
                e.requested_at,
            ),
        )

    def on_Refund_Sent(self, curs, e) -> None:
        curs.execute(
            "UPDATE refund_list SET status = 'pending', processor_refund_id = %s, error = NULL"
            " WHERE refund_id = %s",
            (e.processor_refund_id, e.originator_id),
        )

    def on_Refund_Completed(self, curs, e) -> None:
        curs.execute(
            "UPDATE refund_list SET status = 'completed', error = NULL,"
            " processor_refund_id = COALESCE(%s, processor_refund_id) WHERE refund_id = %s",
            (e.processor_refund_id, e.originator_id),
        )

    def on_Refund_Failed(self, curs, e) -> None:
        curs.execute(
            "UPDATE refund_list SET status = 'failed', error = %s,"
            " attempt = attempt + CASE WHEN %s THEN 1 ELSE 0 END WHERE refund_id = %s",
            (e.error, e.answered, e.originator_id),
        )
