"""Query tables of the customers service, fed from its own log."""

from __future__ import annotations

from services.infra.readmodels import ReadModel


class CustomerList(ReadModel):
    name = "customer_list"
    table_names = ("customer_list",)
    tables = (
        """
        CREATE TABLE IF NOT EXISTS customer_list (
            customer_id uuid PRIMARY KEY,
            number bigint NOT NULL,
            kind text NOT NULL,
            name text NOT NULL,
            username text NOT NULL,
            email text NOT NULL,
            country text NOT NULL,
            language text NOT NULL,
            project_id uuid,
            registered_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS customer_list_number ON customer_list (number)",
        "CREATE INDEX IF NOT EXISTS customer_list_registered ON customer_list (registered_at)",
    )

    def on_Customer_Registered(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO customer_list (customer_id, number, kind, name, username, email,"
            " country, language, project_id, registered_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (customer_id) DO NOTHING",
            (
                e.originator_id,
                e.number,
                e.kind,
                e.company_name or e.contact_person,
                e.username,
                e.email,
                e.country,
                e.language,
                e.project_id,
                e.registered_at,
            ),
        )


class StaffList(ReadModel):
    name = "staff_list"
    table_names = ("staff_list",)
    tables = (
        """
        CREATE TABLE IF NOT EXISTS staff_list (
            staff_id uuid PRIMARY KEY,
            username text NOT NULL,
            name text NOT NULL,
            email text,
            role text NOT NULL,
            language text NOT NULL
        )
        """,
    )

    def on_StaffMember_Registered(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO staff_list (staff_id, username, name, email, role, language)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (staff_id) DO NOTHING",
            (e.originator_id, e.username, e.name, e.email, e.role, e.language),
        )
