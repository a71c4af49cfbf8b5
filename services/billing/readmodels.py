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
