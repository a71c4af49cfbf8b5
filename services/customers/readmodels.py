"""Query tables of the customers service, fed from its own log."""

from __future__ import annotations

from services.infra.personal_data import PLACEHOLDER
from services.infra.readmodels import ReadModel


class CustomerList(ReadModel):
    """Every filter of the staff customer list, indexed for 100,000s of customers."""

    name = "customer_list"
    table_names = ("customer_list",)
    tables = (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
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
            group_ids uuid[] NOT NULL DEFAULT '{}',
            active_product_ids uuid[] NOT NULL DEFAULT '{}',
            attitude text NOT NULL DEFAULT 'normal',
            deleted boolean NOT NULL DEFAULT false,
            registered_at timestamptz NOT NULL,
            search text NOT NULL DEFAULT ''
        )
        """,
        # the parts of the name: the display name staff give, the company, the contact
        "ALTER TABLE customer_list ADD COLUMN IF NOT EXISTS display_name text,"
        " ADD COLUMN IF NOT EXISTS company_name text, ADD COLUMN IF NOT EXISTS contact_person text",
        "CREATE UNIQUE INDEX IF NOT EXISTS customer_list_number ON customer_list (number)",
        "CREATE INDEX IF NOT EXISTS customer_list_registered ON customer_list (registered_at)",
        "CREATE INDEX IF NOT EXISTS customer_list_project ON customer_list (project_id)",
        "CREATE INDEX IF NOT EXISTS customer_list_language ON customer_list (language)",
        "CREATE INDEX IF NOT EXISTS customer_list_groups ON customer_list USING gin (group_ids)",
        "CREATE INDEX IF NOT EXISTS customer_list_products"
        " ON customer_list USING gin (active_product_ids)",
        "CREATE INDEX IF NOT EXISTS customer_list_search"
        " ON customer_list USING gin (search gin_trgm_ops)",
    )

    def on_Customer_Registered(self, curs, e) -> None:
        name = e.company_name or e.contact_person
        curs.execute(
            "INSERT INTO customer_list (customer_id, number, kind, name, username, email,"
            " country, language, project_id, registered_at, search, company_name,"
            " contact_person) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (customer_id) DO NOTHING",
            (
                e.originator_id,
                e.number,
                e.kind,
                name,
                e.username,
                e.email,
                e.country,
                e.language,
                e.project_id,
                e.registered_at,
                _search(name, e.contact_person, e.username, e.email),
                e.company_name,
                e.contact_person,
            ),
        )

    def on_Customer_Edited(self, curs, e) -> None:
        changes = e.changes
        if "name" in changes:  # the display name
            curs.execute(
                "UPDATE customer_list SET display_name = %s, name = %s WHERE customer_id = %s",
                (changes["name"], changes["name"], e.originator_id),
            )
        for column in ("language", "attitude"):
            if column in changes:
                curs.execute(
                    f"UPDATE customer_list SET {column} = %s WHERE customer_id = %s",
                    (changes[column], e.originator_id),
                )
        if "email" in changes:  # a change the client confirmed (email_change.py)
            curs.execute(
                "UPDATE customer_list SET email = %(new)s,"
                " search = replace(search, lower(email), lower(%(new)s))"
                " WHERE customer_id = %(id)s",
                {"new": changes["email"], "id": e.originator_id},
            )
        if "group_ids" in changes:
            curs.execute(
                "UPDATE customer_list SET group_ids = %s WHERE customer_id = %s",
                (list(changes["group_ids"]), e.originator_id),
            )
        if {"name", "contact_person"} & set(changes):
            if "contact_person" in changes:
                curs.execute(
                    "UPDATE customer_list SET contact_person = %s WHERE customer_id = %s",
                    (changes["contact_person"], e.originator_id),
                )
            self._rename(curs, e.originator_id)

    def on_Customer_Corrected(self, curs, e) -> None:
        """Staff corrected what the customer registered with."""
        changes = e.changes
        for column in ("email", "country", "kind", "contact_person", "company_name", "project_id"):
            if column in changes:
                curs.execute(
                    f"UPDATE customer_list SET {column} = %s WHERE customer_id = %s",
                    (changes[column], e.originator_id),
                )
        self._rename(curs, e.originator_id)

    @staticmethod
    def _rename(curs, customer_id) -> None:
        """The name shown (display name, else company, else contact) and the search text."""
        curs.execute(
            "UPDATE customer_list SET name = coalesce(display_name, company_name,"
            " contact_person, name) WHERE customer_id = %s",
            (customer_id,),
        )
        curs.execute(
            "UPDATE customer_list SET search = lower(concat_ws(' ', name, company_name,"
            " contact_person, username, email)) WHERE customer_id = %s",
            (customer_id,),
        )

    def on_Customer_ServiceStarted(self, curs, e) -> None:
        curs.execute(
            "UPDATE customer_list SET active_product_ids = array_append(active_product_ids, %s)"
            " WHERE customer_id = %s",
            (e.product_id, e.originator_id),
        )

    def on_Customer_ServiceEnded(self, curs, e) -> None:
        if not getattr(e, "was_active", True):
            return  # ended before its start was applied: never counted
        # one occurrence per active service: remove one, so another service of the same
        # product keeps the customer in the filter
        curs.execute(
            "UPDATE customer_list SET active_product_ids = ("
            " SELECT coalesce(array_agg(p ORDER BY n), '{}') FROM ("
            "  SELECT p, n FROM unnest(active_product_ids) WITH ORDINALITY AS t(p, n)"
            "  WHERE n <> (SELECT min(n) FROM unnest(active_product_ids) WITH ORDINALITY"
            "   AS u(p, n) WHERE p = %s)"
            "  OR NOT %s = ANY(active_product_ids)) AS kept)"
            " WHERE customer_id = %s",
            (e.product_id, e.product_id, e.originator_id),
        )

    def on_Customer_Deleted(self, curs, e) -> None:
        curs.execute(
            "UPDATE customer_list SET deleted = true WHERE customer_id = %s", (e.originator_id,)
        )

    def on_PersonalData_Erased(self, curs, e) -> None:
        """The customer's names and e-mail read as a replay now reads them (its key is
        gone: services/customers/erasure.py), and so does the search text."""
        curs.execute(
            "UPDATE customer_list SET name = %(p)s, email = %(p)s, contact_person = %(p)s,"
            " display_name = CASE WHEN display_name IS NULL THEN NULL ELSE %(p)s END,"
            " company_name = CASE WHEN company_name IS NULL THEN NULL ELSE %(p)s END"
            " WHERE customer_id = %(id)s",
            {"p": PLACEHOLDER, "id": e.customer_id},
        )
        curs.execute(
            "UPDATE customer_list SET search = lower(concat_ws(' ', name, company_name,"
            " contact_person, username, email)) WHERE customer_id = %s",
            (e.customer_id,),
        )


def _search(*parts: str | None) -> str:
    return " ".join(p for p in parts if p).lower()


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

    def on_StaffMember_Edited(self, curs, e) -> None:
        for column in ("name", "role", "language"):
            if column in e.changes:
                curs.execute(
                    f"UPDATE staff_list SET {column} = %s WHERE staff_id = %s",
                    (e.changes[column], e.originator_id),
                )


class Directory(ReadModel):
    """Groups, projects, discounts, a customer's users and payers: small lists."""

    name = "directory"
    table_names = ("directory",)
    tables = (
        """
        CREATE TABLE IF NOT EXISTS directory (
            id uuid PRIMARY KEY,
            kind text NOT NULL,
            customer_id uuid,
            created_at timestamptz NOT NULL,
            removed boolean NOT NULL DEFAULT false
        )
        """,
        "CREATE INDEX IF NOT EXISTS directory_kind ON directory (kind, customer_id, created_at)",
    )

    def _add(self, curs, e, kind: str, customer_id=None) -> None:
        curs.execute(
            "INSERT INTO directory (id, kind, customer_id, created_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (e.originator_id, kind, customer_id, e.timestamp),
        )

    def on_CustomerGroup_Created(self, curs, e) -> None:
        self._add(curs, e, "group")

    def on_CustomerGroup_Removed(self, curs, e) -> None:
        curs.execute("UPDATE directory SET removed = true WHERE id = %s", (e.originator_id,))

    def on_Project_Created(self, curs, e) -> None:
        self._add(curs, e, "project")

    def on_Project_Removed(self, curs, e) -> None:
        curs.execute("UPDATE directory SET removed = true WHERE id = %s", (e.originator_id,))

    def on_Discount_Created(self, curs, e) -> None:
        self._add(curs, e, "discount", e.customer_id)

    def on_CustomerUser_Added(self, curs, e) -> None:
        self._add(curs, e, "user", e.customer_id)

    def on_CustomerUser_Removed(self, curs, e) -> None:
        curs.execute("UPDATE directory SET removed = true WHERE id = %s", (e.originator_id,))

    def on_Payer_Added(self, curs, e) -> None:
        self._add(curs, e, "payer", e.customer_id)

    def on_StaffMember_Registered(self, curs, e) -> None:
        self._add(curs, e, "staff")


class UserEmails(ReadModel):
    """A customer's users by e-mail address: whose is the address an e-mail came from."""

    name = "user_emails"
    table_names = ("user_emails",)
    tables = (
        """
        CREATE TABLE IF NOT EXISTS user_emails (
            user_id uuid PRIMARY KEY,
            customer_id uuid NOT NULL,
            email text NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS user_emails_email ON user_emails (email)",
    )

    def on_CustomerUser_Added(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO user_emails (user_id, customer_id, email) VALUES (%s, %s, %s)"
            " ON CONFLICT (user_id) DO NOTHING",
            (e.originator_id, e.customer_id, e.email.strip().lower()),
        )

    def on_CustomerUser_Removed(self, curs, e) -> None:
        curs.execute("DELETE FROM user_emails WHERE user_id = %s", (e.originator_id,))

    def on_PersonalData_Erased(self, curs, e) -> None:
        """The customer's users' addresses read as a replay now reads them."""
        curs.execute(
            "UPDATE user_emails SET email = %s WHERE customer_id = %s",
            (PLACEHOLDER, e.customer_id),
        )
