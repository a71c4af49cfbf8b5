"""Query tables of the billing service, fed from its own log."""

from __future__ import annotations

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
    )
    tables = (
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
