"""Query tables of the helpdesk, fed from its own log.

`ticket_list` holds one row per ticket with what the lists filter and sort on; its
indexes keep one department's (or customer's, or assignee's) page fast at any size.
"""

from __future__ import annotations

from services.infra.personal_data import PLACEHOLDER
from services.infra.readmodels import ReadModel


class HelpdeskLists(ReadModel):
    name = "helpdesk_lists"
    table_names = (
        "department_list",
        "ticket_list",
        "ticket_counts",
        "ticket_message_index",
        "reply_template_list",
        "abuse_deadlines",
        "broadcast_list",
    )
    tables = (
        """
        CREATE TABLE IF NOT EXISTS department_list (
            department_id uuid PRIMARY KEY,
            name text NOT NULL,
            client_visible boolean NOT NULL,
            addresses text[] NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS ticket_list (
            ticket_id uuid PRIMARY KEY,
            tracking_number text NOT NULL,
            department_id uuid NOT NULL,
            customer_id uuid,
            guest_email text,
            subject text NOT NULL,
            status text NOT NULL,
            archived boolean NOT NULL DEFAULT false,
            priority text NOT NULL,
            assignee uuid,
            merged_into uuid,
            opened_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS ticket_list_department"
        " ON ticket_list (department_id, updated_at DESC, ticket_id DESC)",
        "CREATE INDEX IF NOT EXISTS ticket_list_department_status"
        " ON ticket_list (department_id, status, updated_at DESC, ticket_id DESC)",
        "CREATE INDEX IF NOT EXISTS ticket_list_customer"
        " ON ticket_list (customer_id, archived, updated_at DESC, ticket_id DESC)",
        "CREATE INDEX IF NOT EXISTS ticket_list_assignee"
        " ON ticket_list (assignee, updated_at DESC, ticket_id DESC)",
        "CREATE INDEX IF NOT EXISTS ticket_list_status ON ticket_list (status, updated_at DESC)",
        "CREATE INDEX IF NOT EXISTS ticket_list_tracking ON ticket_list (tracking_number)",
        "CREATE INDEX IF NOT EXISTS ticket_list_updated"
        " ON ticket_list (updated_at DESC, ticket_id DESC)",
        # how many tickets each department has in each status: the lists' totals without
        # counting a department's 100,000 rows on every page
        """
        CREATE TABLE IF NOT EXISTS ticket_counts (
            department_id uuid NOT NULL,
            status text NOT NULL,
            n bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (department_id, status)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS ticket_message_index (
            message_id uuid PRIMARY KEY,
            ticket_id uuid NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS reply_template_list (
            template_id uuid PRIMARY KEY,
            name text NOT NULL,
            department_id uuid,
            created_at timestamptz NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS abuse_deadlines (
            ticket_id uuid PRIMARY KEY,
            deadline timestamptz NOT NULL,
            pending boolean NOT NULL DEFAULT true
        )
        """,
        "CREATE INDEX IF NOT EXISTS abuse_deadlines_due ON abuse_deadlines (deadline)"
        " WHERE pending",
        """
        CREATE TABLE IF NOT EXISTS broadcast_list (
            broadcast_id uuid PRIMARY KEY,
            subject text NOT NULL,
            department_id uuid NOT NULL,
            author_id text,
            author_name text NOT NULL,
            status text NOT NULL,
            recipients integer NOT NULL,
            opened integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            sent_at timestamptz
        )
        """,
        # the one customer a message to one customer is about (its subject goes with it)
        "ALTER TABLE broadcast_list ADD COLUMN IF NOT EXISTS customer_id uuid",
        "CREATE INDEX IF NOT EXISTS broadcast_list_customer ON broadcast_list (customer_id)"
        " WHERE customer_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS broadcast_list_created"
        " ON broadcast_list (created_at DESC, broadcast_id DESC)",
        "CREATE INDEX IF NOT EXISTS broadcast_list_sending ON broadcast_list (created_at)"
        " WHERE status = 'sending'",
    )

    # -- departments ----------------------------------------------------------------------------

    def on_Department_Created(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO department_list (department_id, name, client_visible, addresses,"
            " created_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.name,
                e.client_visible,
                [a.lower() for a in e.addresses],
                e.timestamp,
            ),
        )

    def on_Department_Changed(self, curs, e) -> None:
        changes = e.changes
        for column in ("name", "client_visible"):
            if column in changes:
                curs.execute(
                    f"UPDATE department_list SET {column} = %s WHERE department_id = %s",
                    (changes[column], e.originator_id),
                )
        if "addresses" in changes:
            curs.execute(
                "UPDATE department_list SET addresses = %s WHERE department_id = %s",
                ([a.lower() for a in changes["addresses"]], e.originator_id),
            )

    # -- tickets --------------------------------------------------------------------------------

    def on_Ticket_Opened(self, curs, e) -> None:
        status = "answered" if e.author_kind == "staff" else "open"
        curs.execute(
            "INSERT INTO ticket_list (ticket_id, tracking_number, department_id, customer_id,"
            " guest_email, subject, status, priority, opened_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.tracking_number,
                e.department_id,
                e.customer_id,
                e.guest_email,
                e.subject,
                status,
                e.priority,
                e.at,
                e.at,
            ),
        )
        if curs.rowcount:
            self._count(curs, e.department_id, status, 1)
        self._message(curs, e)
        if e.abuse:
            curs.execute(
                "INSERT INTO abuse_deadlines (ticket_id, deadline) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (e.originator_id, e.abuse["deadline"]),
            )

    def _message(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO ticket_message_index (message_id, ticket_id) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING",
            (e.message_id, e.originator_id),
        )

    def _update(self, curs, ticket_id, sets: str, params: tuple = ()) -> None:
        """Change the ticket's row, keeping ticket_counts in step with its department and
        status."""
        curs.execute(
            "SELECT department_id, status FROM ticket_list WHERE ticket_id = %s", (ticket_id,)
        )
        before = curs.fetchone()
        curs.execute(
            f"UPDATE ticket_list SET {sets} WHERE ticket_id = %s RETURNING department_id, status",
            (*params, ticket_id),
        )
        after = curs.fetchone()
        if before is None or after is None:
            return
        old = (before["department_id"], before["status"])
        new = (after["department_id"], after["status"])
        if old != new:
            self._count(curs, *old, -1)
            self._count(curs, *new, 1)

    def _count(self, curs, department_id, status: str, delta: int) -> None:
        curs.execute(
            "INSERT INTO ticket_counts (department_id, status, n) VALUES (%s, %s, %s)"
            " ON CONFLICT (department_id, status) DO UPDATE SET n = ticket_counts.n + excluded.n",
            (department_id, status, delta),
        )

    def on_Ticket_MessageAdded(self, curs, e) -> None:
        self._message(curs, e)
        if e.author_kind in ("client", "mail"):
            self._update(
                curs,
                e.originator_id,
                "status = 'customer_reply', archived = false, updated_at = %s",
                (e.at,),
            )
            curs.execute(
                "UPDATE abuse_deadlines SET pending = false WHERE ticket_id = %s",
                (e.originator_id,),
            )
        elif e.author_kind == "staff":
            self._update(curs, e.originator_id, "status = 'answered', updated_at = %s", (e.at,))
        else:
            self._update(curs, e.originator_id, "updated_at = %s", (e.at,))

    def on_Ticket_NoteAdded(self, curs, e) -> None:
        self._message(curs, e)

    def on_Ticket_Assigned(self, curs, e) -> None:
        self._update(curs, e.originator_id, "assignee = %s", (e.staff_id,))

    def on_Ticket_Closed(self, curs, e) -> None:
        self._update(
            curs,
            e.originator_id,
            "status = 'closed', archived = true, updated_at = greatest(updated_at, %s)",
            (e.timestamp,),
        )

    def on_Ticket_Reopened(self, curs, e) -> None:
        self._update(curs, e.originator_id, "status = 'open', archived = false")

    def on_Ticket_Archived(self, curs, e) -> None:
        self._update(curs, e.originator_id, "archived = true")

    def on_Ticket_Unarchived(self, curs, e) -> None:
        self._update(curs, e.originator_id, "archived = false")

    def on_PersonalData_Erased(self, curs, e) -> None:
        """The customer's tickets read as a replay now reads them (their key is gone)."""
        curs.execute(
            "UPDATE ticket_list SET subject = %s, guest_email = CASE WHEN guest_email IS NULL"
            " THEN NULL ELSE %s END WHERE customer_id = %s",
            (PLACEHOLDER, PLACEHOLDER, e.customer_id),
        )
        curs.execute(
            "UPDATE broadcast_list SET subject = %s WHERE customer_id = %s",
            (PLACEHOLDER, e.customer_id),
        )

    def on_Ticket_Changed(self, curs, e) -> None:
        for column in ("priority", "department_id"):
            if column in e.changes:
                self._update(curs, e.originator_id, f"{column} = %s", (e.changes[column],))

    def on_Ticket_Merged(self, curs, e) -> None:
        for message in e.messages:
            curs.execute(
                "INSERT INTO ticket_message_index (message_id, ticket_id) VALUES (%s, %s)"
                " ON CONFLICT (message_id) DO UPDATE SET ticket_id = excluded.ticket_id",
                (message["id"], e.originator_id),
            )

    def on_Ticket_MergedInto(self, curs, e) -> None:
        self._update(curs, e.originator_id, "status = 'closed', merged_into = %s", (e.target_id,))

    def on_Ticket_AbuseActed(self, curs, e) -> None:
        curs.execute(
            "UPDATE abuse_deadlines SET pending = false WHERE ticket_id = %s", (e.originator_id,)
        )
        if e.action == "move_to_active":
            self._update(
                curs,
                e.originator_id,
                "status = 'customer_reply', archived = false, updated_at = %s",
                (e.timestamp,),
            )

    # -- reply templates ------------------------------------------------------------------------

    def on_ReplyTemplate_Created(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO reply_template_list (template_id, name, department_id, created_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (e.originator_id, e.name, e.department_id, e.timestamp),
        )

    def on_ReplyTemplate_Changed(self, curs, e) -> None:
        changes = e.changes
        if "name" in changes:
            curs.execute(
                "UPDATE reply_template_list SET name = %s WHERE template_id = %s",
                (changes["name"], e.originator_id),
            )
        if "department_id" in changes:
            curs.execute(
                "UPDATE reply_template_list SET department_id = %s WHERE template_id = %s",
                (changes["department_id"], e.originator_id),
            )

    def on_ReplyTemplate_Deleted(self, curs, e) -> None:
        curs.execute("DELETE FROM reply_template_list WHERE template_id = %s", (e.originator_id,))

    # -- messages to customers ------------------------------------------------------------------

    def on_Broadcast_Created(self, curs, e) -> None:
        curs.execute(
            "INSERT INTO broadcast_list (broadcast_id, subject, department_id, author_id,"
            " author_name, status, recipients, created_at, sent_at, customer_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                e.originator_id,
                e.subject,
                e.department_id,
                e.author.get("id"),
                e.author.get("name") or "",
                "sending" if e.recipients else "sent",
                len(e.recipients),
                e.at,
                None if e.recipients else e.at,
                getattr(e, "customer_id", None),  # recorded before it: none
            ),
        )

    def on_Broadcast_TicketsOpened(self, curs, e) -> None:
        curs.execute(
            "UPDATE broadcast_list SET opened = opened + %s WHERE broadcast_id = %s",
            (len(e.tickets), e.originator_id),
        )

    def on_Broadcast_Sent(self, curs, e) -> None:
        curs.execute(
            "UPDATE broadcast_list SET status = 'sent', sent_at = %s WHERE broadcast_id = %s",
            (e.at, e.originator_id),
        )
