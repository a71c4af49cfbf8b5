"""Query tables of the orders service, fed from its own log."""

from __future__ import annotations

from services.infra.readmodels import ReadModel
from services.orders.domain import PromoCode


class OrderLists(ReadModel):
    name = "order_lists"
    table_names = ("product_list", "order_list", "service_list", "project_terms")
    tables = (
        """
        CREATE TABLE IF NOT EXISTS product_list (
            product_id uuid PRIMARY KEY,
            on_sale boolean NOT NULL,
            project_id uuid,
            created_at timestamptz NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS order_list (
            order_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            invoice_id uuid NOT NULL UNIQUE,
            status text NOT NULL,
            placed_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS order_list_customer ON order_list (customer_id, placed_at)",
        """
        CREATE TABLE IF NOT EXISTS service_list (
            service_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            order_id uuid NOT NULL,
            product_id uuid NOT NULL,
            status text NOT NULL,
            next_due_date date,
            provisioning_kind text NOT NULL DEFAULT 'manual',
            provisioning_state text NOT NULL DEFAULT 'waiting',
            provision_next_at timestamptz,
            project_id uuid,
            renewal_invoice_id uuid,
            created_at timestamptz NOT NULL
        )
        """,
        # tables made before these columns existed (a rebuild fills them)
        "ALTER TABLE service_list ADD COLUMN IF NOT EXISTS project_id uuid",
        "ALTER TABLE service_list ADD COLUMN IF NOT EXISTS renewal_invoice_id uuid",
        # the scheduler's pages: what may need a renewal invoice, what may be overdue
        "CREATE INDEX IF NOT EXISTS service_list_to_renew ON service_list"
        " (next_due_date, service_id) WHERE renewal_invoice_id IS NULL"
        " AND status IN ('active', 'suspended')",
        "CREATE INDEX IF NOT EXISTS service_list_invoiced ON service_list"
        " (next_due_date, service_id) WHERE renewal_invoice_id IS NOT NULL"
        " AND status IN ('active', 'suspended')",
        """
        CREATE TABLE IF NOT EXISTS project_terms (
            terms_id uuid PRIMARY KEY,
            project_id uuid NOT NULL UNIQUE,
            renew_days_before integer,
            suspend_after_days integer,
            terminate_after_days integer
        )
        """,
        "CREATE INDEX IF NOT EXISTS service_list_provisioning"
        " ON service_list (provisioning_state, provisioning_kind, provision_next_at)",
        "CREATE INDEX IF NOT EXISTS service_list_customer ON service_list (customer_id)",
        "CREATE INDEX IF NOT EXISTS service_list_due ON service_list (status, next_due_date)",
        "CREATE INDEX IF NOT EXISTS service_list_order ON service_list (order_id)",
    )

    def on_Product_Created(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO product_list (product_id, on_sale, project_id, created_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (e.originator_id, e.on_sale, e.project_id, e.timestamp),
        )

    def on_Product_Changed(self, curs, e) -> None:
        if "on_sale" in e.changes:
            curs.execute(
                "UPDATE product_list SET on_sale = %s WHERE product_id = %s",
                (e.changes["on_sale"], e.originator_id),
            )

    def on_Order_Placed(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO order_list (order_id, customer_id, invoice_id, status, placed_at)"
            " VALUES (%s, %s, %s, 'pending', %s) ON CONFLICT DO NOTHING",
            (e.originator_id, e.customer_id, e.invoice_id, e.placed_at),
        )

    def on_Order_Paid(self, curs, e) -> None:
        curs.execute(
            "UPDATE order_list SET status = 'paid' WHERE order_id = %s", (e.originator_id,)
        )

    def on_Service_Created(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO service_list (service_id, customer_id, order_id, product_id, status,"
            " provisioning_kind, project_id, created_at)"
            " VALUES (%s, %s, %s, %s, 'pending', %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.customer_id,
                e.order_id,
                e.product_id,
                e.provisioning["kind"],
                getattr(e, "project_id", None),
                e.timestamp,
            ),
        )

    def on_Service_Activated(self, curs, e) -> None:
        curs.execute(
            "UPDATE service_list SET status = 'active', next_due_date = %s WHERE service_id = %s",
            (e.next_due_date, e.originator_id),
        )

    def _status(self, curs, e, status: str) -> None:
        curs.execute(
            "UPDATE service_list SET status = %s WHERE service_id = %s", (status, e.originator_id)
        )

    def on_Service_Suspended(self, curs, e) -> None:
        self._status(curs, e, "suspended")

    def on_Service_Unsuspended(self, curs, e) -> None:
        self._status(curs, e, "active")

    def on_Service_Terminated(self, curs, e) -> None:
        self._status(curs, e, "terminated")

    def on_Service_Cancelled(self, curs, e) -> None:
        self._status(curs, e, "cancelled")

    def on_Service_ProvisioningRequested(self, curs, e) -> None:
        curs.execute(
            "UPDATE service_list SET provisioning_state = 'requested', provision_next_at = %s"
            " WHERE service_id = %s",
            (e.at, e.originator_id),
        )

    def on_Service_Provisioned(self, curs, e) -> None:
        curs.execute(
            "UPDATE service_list SET provisioning_state = 'done', provision_next_at = NULL"
            " WHERE service_id = %s",
            (e.originator_id,),
        )

    def on_Service_ProvisioningAttemptFailed(self, curs, e) -> None:
        curs.execute(
            "UPDATE service_list SET provisioning_state = %s, provision_next_at = %s"
            " WHERE service_id = %s",
            ("requested" if e.next_attempt_at else "failed", e.next_attempt_at, e.originator_id),
        )

    def on_Service_RenewalInvoiced(self, curs, e) -> None:
        curs.execute(
            "UPDATE service_list SET renewal_invoice_id = %s WHERE service_id = %s",
            (e.invoice_id, e.originator_id),
        )

    def on_Service_Renewed(self, curs, e) -> None:
        curs.execute(
            "UPDATE service_list SET next_due_date = %s, renewal_invoice_id = NULL"
            " WHERE service_id = %s",
            (e.next_due_date, e.originator_id),
        )

    def on_ProjectTerms_Recorded(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO project_terms (terms_id, project_id, renew_days_before,"
            " suspend_after_days, terminate_after_days) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.project_id,
                e.renew_days_before,
                e.suspend_after_days,
                e.terminate_after_days,
            ),
        )

    def on_ProjectTerms_Changed(self, curs, e) -> None:
        curs.execute(
            "UPDATE project_terms SET renew_days_before = %s, suspend_after_days = %s,"
            " terminate_after_days = %s WHERE terms_id = %s",
            (e.renew_days_before, e.suspend_after_days, e.terminate_after_days, e.originator_id),
        )


class PromoLists(ReadModel):
    """Promo codes as the staff list shows them (filtered by state and by a part of the
    code), and the orders placed with each: an order attempt that reserved a code is
    remembered (`promo_attempts`) until it becomes an order (`promo_orders`)."""

    name = "promo_lists"
    table_names = ("promo_list", "promo_attempts", "promo_orders")
    tables = (
        """
        CREATE TABLE IF NOT EXISTS promo_list (
            promo_id uuid PRIMARY KEY,
            code text NOT NULL,
            kind text NOT NULL,
            percent text,
            amount bigint,
            currency text,
            product_ids text[] NOT NULL DEFAULT '{}',
            expires_at timestamptz,
            max_uses integer,
            uses integer NOT NULL DEFAULT 0,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS promo_list_created ON promo_list (created_at, promo_id)",
        """
        CREATE TABLE IF NOT EXISTS promo_attempts (
            attempt_id uuid PRIMARY KEY,
            promo_id uuid NOT NULL,
            customer_id uuid NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS promo_orders (
            promo_id uuid NOT NULL,
            order_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            invoice_id uuid NOT NULL,
            placed_at timestamptz NOT NULL,
            PRIMARY KEY (promo_id, order_id)
        )
        """,
        "CREATE INDEX IF NOT EXISTS promo_orders_placed ON promo_orders (promo_id, placed_at)",
    )

    def on_PromoCode_Created(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO promo_list (promo_id, code, kind, percent, amount, currency,"
            " product_ids, expires_at, max_uses, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.code,
                e.kind,
                e.percent,
                e.amount,
                e.currency,
                [str(p) for p in e.product_ids],
                e.expires_at,
                e.max_uses,
                e.timestamp,
            ),
        )

    def on_PromoCode_Changed(self, curs, e) -> None:
        changes = dict(e.changes)
        if "product_ids" in changes:
            changes["product_ids"] = [str(p) for p in changes["product_ids"]]
        columns = [k for k in changes if k in _PROMO_COLUMNS]
        if columns:
            curs.execute(
                "UPDATE promo_list SET "
                + ", ".join(f"{k} = %s" for k in columns)
                + " WHERE promo_id = %s",
                (*(changes[k] for k in columns), e.originator_id),
            )

    def on_PromoCode_Deactivated(self, curs, e) -> None:
        curs.execute("UPDATE promo_list SET active = false WHERE promo_id = %s", (e.originator_id,))

    def on_PromoCode_Activated(self, curs, e) -> None:
        curs.execute("UPDATE promo_list SET active = true WHERE promo_id = %s", (e.originator_id,))

    def on_PromoCode_Used(self, curs, e) -> None:
        curs.execute(
            "UPDATE promo_list SET uses = uses + 1 WHERE promo_id = %s", (e.originator_id,)
        )

    def on_PromoCode_Released(self, curs, e) -> None:
        curs.execute(
            "UPDATE promo_list SET uses = uses - 1 WHERE promo_id = %s", (e.originator_id,)
        )

    def _attempt(self, curs, attempt_id, promo, customer_id) -> None:
        if not promo:
            return
        curs.execute(
            "INSERT INTO promo_attempts (attempt_id, promo_id, customer_id)"
            " VALUES (%s, %s, %s) ON CONFLICT (attempt_id) DO UPDATE"
            " SET promo_id = EXCLUDED.promo_id",
            (attempt_id, PromoCode.id_for(promo["code"]), customer_id),
        )

    def on_OrderAttempt_Started(self, curs, e) -> None:
        self._attempt(curs, e.originator_id, e.promo, e.customer_id)

    def on_OrderAttempt_Restarted(self, curs, e) -> None:
        # the same request again: the same code as when it started, or none
        if not e.promo:
            curs.execute("DELETE FROM promo_attempts WHERE attempt_id = %s", (e.originator_id,))

    def on_OrderAttempt_Placed(self, curs, e) -> None:
        curs.execute(
            "DELETE FROM promo_attempts WHERE attempt_id = %s RETURNING promo_id, customer_id",
            (e.originator_id,),
        )
        row = curs.fetchone()
        if row is not None:
            curs.execute(
                "INSERT INTO promo_orders (promo_id, order_id, customer_id, invoice_id,"
                " placed_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (row["promo_id"], e.order_id, row["customer_id"], e.invoice_id, e.timestamp),
            )


_PROMO_COLUMNS = ("kind", "percent", "amount", "currency", "product_ids", "expires_at", "max_uses")
