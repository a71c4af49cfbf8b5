"""Gateway routes of the helpdesk: departments, tickets, attachments, messages."""

from __future__ import annotations

import base64
from urllib.parse import quote

from marshmallow import fields, validate
from werkzeug.wrappers import Response

from contracts import fields as f
from contracts import helpdesk as contract
from gateway.api.common import ALL_STAFF, Page, jsonable, paged
from gateway.http import Call, route
from gateway.schemas import (
    DOWNLOAD,
    BroadcastList,
    ClientDepartmentList,
    Department,
    DepartmentList,
    HelpdeskSettingsAnswer,
    Removal,
    ReplyTemplateAnswer,
    ReplyTemplateList,
    StaffTicket,
    StaffTicketRowList,
    Standing,
    TicketRowList,
    TicketSchema,
)

HELPDESK_STAFF = ("admin", "support")
# what a download may be served as; anything else (HTML above all) is a plain byte stream
SAFE_TYPES = ("text/plain", "image/png", "image/gif", "image/jpeg", "image/bmp", "application/pdf")


class ClientTicketQuery(Page):
    status = f.Text(load_default=None, validate=validate.OneOf(["open", "archived"]))


class StaffTicketQuery(Page):
    status = f.Text(load_default=None, validate=validate.OneOf(contract.STATUSES))
    department_id = fields.UUID(load_default=None)
    assigned_to = fields.UUID(load_default=None)
    customer_id = fields.UUID(load_default=None)
    archived = fields.Boolean(load_default=None)
    tracking_number = f.Text(load_default=None, validate=validate.Length(min=1, max=20))


class TemplateQuery(Page):
    department_id = fields.UUID(load_default=None)


def _user(call: Call) -> dict | None:
    user_id = call.principal.get("user_id")
    return {"id": str(user_id)} if user_id else None


def download(answer: dict) -> Response:
    """A ticket's file, always as a download: never rendered by the browser."""
    content = base64.b64decode(answer["content"])
    content_type = answer["content_type"]
    if content_type not in SAFE_TYPES:
        content_type = "application/octet-stream"
    filename = answer["filename"]
    fallback = filename.encode("ascii", "replace").decode("ascii").replace('"', "_")
    return Response(
        content,
        status=200,
        mimetype=content_type,
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
            ),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


class HelpdeskRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""

    # -- client ---------------------------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/client/departments",
        response=ClientDepartmentList,
        query=Page,
        client=("support",),
        tags=("helpdesk",),
        summary="departments open to clients, with the extra fields each asks for",
    )
    def client_departments(self, call: Call):
        return paged(call.services.helpdesk.departments(True), call.query)

    @route(
        "GET",
        "/api/v1/client/tickets",
        response=TicketRowList,
        client=("support",),
        query=ClientTicketQuery,
        tags=("helpdesk",),
        summary="your tickets (?status=open|archived)",
    )
    def client_tickets(self, call: Call):
        q = call.query
        return call.services.helpdesk.client_tickets(
            call.customer_id, q["status"], q["page"], q["page_size"]
        )

    @route(
        "POST",
        "/api/v1/client/tickets",
        idempotent="service",
        response=TicketSchema,
        client=("support",),
        body=contract.OpenTicket,
        files=True,
        status=201,
        tags=("helpdesk",),
        summary="open a ticket (JSON, or multipart/form-data with files)",
    )
    def client_open_ticket(self, call: Call):
        return call.services.helpdesk.open_ticket(
            call.customer_id,
            jsonable(call.body),
            call.files,
            _user(call),
            call.idempotency_key,
        )

    @route(
        "GET",
        "/api/v1/client/tickets/<uuid:ticket_id>",
        response=TicketSchema,
        client=("support",),
        tags=("helpdesk",),
        summary="one of your tickets with its messages, oldest first",
    )
    def client_ticket(self, call: Call):
        return call.services.helpdesk.client_ticket(call.customer_id, str(call.path["ticket_id"]))

    @route(
        "POST",
        "/api/v1/client/tickets/<uuid:ticket_id>/replies",
        idempotent=True,
        response=TicketSchema,
        client=("support",),
        body=contract.Reply,
        files=True,
        status=201,
        tags=("helpdesk",),
        summary="answer a ticket (403 when it takes no replies)",
    )
    def client_reply(self, call: Call):
        return call.services.helpdesk.client_reply(
            call.customer_id, str(call.path["ticket_id"]), call.body, call.files, _user(call)
        )

    @route(
        "POST",
        "/api/v1/client/tickets/<uuid:ticket_id>/<any(archive,reopen):action>",
        response=TicketSchema,
        client=("support",),
        tags=("helpdesk",),
        summary="move a ticket to the archive, or back among the open ones",
    )
    def client_ticket_state(self, call: Call):
        helpdesk = call.services.helpdesk
        command = helpdesk.client_archive if call.path["action"] == "archive" else None
        command = command or helpdesk.client_reopen
        return command(call.customer_id, str(call.path["ticket_id"]))

    @route(
        "GET",
        "/api/v1/client/tickets/<uuid:ticket_id>/attachments/<file_id>",
        response=DOWNLOAD,
        client=("support",),
        tags=("helpdesk",),
        summary="download a file of one of your tickets",
    )
    def client_attachment(self, call: Call):
        return download(
            call.services.helpdesk.attachment(
                str(call.path["ticket_id"]), call.path["file_id"], call.customer_id
            )
        )

    # -- staff: departments, settings -------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/departments",
        response=DepartmentList,
        query=Page,
        roles=ALL_STAFF,
        tags=("helpdesk",),
        summary="departments",
    )
    def staff_departments(self, call: Call):
        return paged(call.services.helpdesk.departments(False), call.query)

    @route(
        "POST",
        "/api/v1/staff/departments",
        idempotent=True,
        response=Department,
        roles=("admin",),
        body=contract.DepartmentFields,
        status=201,
        tags=("helpdesk",),
        summary="a department: extra fields, staff, incoming addresses, business hours",
    )
    def create_department(self, call: Call):
        return call.services.helpdesk.create_department(jsonable(call.body))

    @route(
        "GET",
        "/api/v1/staff/departments/<uuid:department_id>",
        response=Department,
        roles=ALL_STAFF,
        tags=("helpdesk",),
        summary="one department",
    )
    def staff_department(self, call: Call):
        return call.services.helpdesk.get_department(str(call.path["department_id"]))

    @route(
        "PATCH",
        "/api/v1/staff/departments/<uuid:department_id>",
        response=Department,
        roles=("admin",),
        body=contract.DepartmentFields,
        partial=True,
        tags=("helpdesk",),
        summary="change a department",
    )
    def change_department(self, call: Call):
        return call.services.helpdesk.change_department(
            str(call.path["department_id"]), jsonable(call.body)
        )

    @route(
        "GET",
        "/api/v1/staff/helpdesk-settings",
        response=HelpdeskSettingsAnswer,
        roles=ALL_STAFF,
        tags=("helpdesk",),
        summary="attachment rules, guest mail, the penalty threshold",
    )
    def helpdesk_settings(self, call: Call):
        return call.services.helpdesk.get_settings()

    @route(
        "PATCH",
        "/api/v1/staff/helpdesk-settings",
        response=HelpdeskSettingsAnswer,
        roles=("admin",),
        body=contract.HelpdeskSettings,
        partial=True,
        tags=("helpdesk",),
        summary="change the attachment rules, guest mail, the penalty threshold",
    )
    def change_helpdesk_settings(self, call: Call):
        return call.services.helpdesk.change_settings(jsonable(call.body))

    # -- staff: tickets ---------------------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/tickets",
        response=StaffTicketRowList,
        roles=ALL_STAFF,
        query=StaffTicketQuery,
        tags=("helpdesk",),
        summary=(
            "tickets, newest activity first; filters status, department_id, assigned_to,"
            " customer_id, archived, tracking_number"
        ),
    )
    def staff_tickets(self, call: Call):
        q = jsonable(call.query)
        page, page_size = q.pop("page"), q.pop("page_size")
        filters = {k: v for k, v in q.items() if v is not None}
        return call.services.helpdesk.staff_tickets(filters, page, page_size)

    @route(
        "GET",
        "/api/v1/staff/tickets/<uuid:ticket_id>",
        response=StaffTicket,
        roles=ALL_STAFF,
        tags=("helpdesk",),
        summary="a ticket with every message and internal note",
    )
    def staff_ticket(self, call: Call):
        return call.services.helpdesk.staff_ticket(str(call.path["ticket_id"]))

    @route(
        "PATCH",
        "/api/v1/staff/tickets/<uuid:ticket_id>",
        response=StaffTicket,
        roles=HELPDESK_STAFF,
        body=contract.ChangeTicket,
        partial=True,
        tags=("helpdesk",),
        summary="priority, department, close (status closed) or reopen (status open)",
    )
    def change_ticket(self, call: Call):
        return call.services.helpdesk.change_ticket(
            str(call.path["ticket_id"]), jsonable(call.body)
        )

    @route(
        "POST",
        "/api/v1/staff/tickets/<uuid:ticket_id>/replies",
        idempotent=True,
        response=StaffTicket,
        roles=HELPDESK_STAFF,
        body=contract.StaffReply,
        files=True,
        status=201,
        tags=("helpdesk",),
        summary="answer, or add an internal note (never shown to the client)",
    )
    def staff_reply(self, call: Call):
        return call.services.helpdesk.staff_reply(
            str(call.path["ticket_id"]), jsonable(call.body), call.files
        )

    @route(
        "POST",
        "/api/v1/staff/tickets/<uuid:ticket_id>/assign",
        response=StaffTicket,
        roles=HELPDESK_STAFF,
        body=contract.Assign,
        tags=("helpdesk",),
        summary="assign or reassign (staff_id null: nobody)",
    )
    def assign_ticket(self, call: Call):
        return call.services.helpdesk.assign(str(call.path["ticket_id"]), jsonable(call.body))

    @route(
        "POST",
        "/api/v1/staff/tickets/<uuid:ticket_id>/merge",
        response=StaffTicket,
        roles=HELPDESK_STAFF,
        body=contract.Merge,
        tags=("helpdesk",),
        summary="merge another ticket of the same customer into this one",
    )
    def merge_tickets(self, call: Call):
        return call.services.helpdesk.merge(str(call.path["ticket_id"]), jsonable(call.body))

    @route(
        "GET",
        "/api/v1/staff/tickets/<uuid:ticket_id>/attachments/<file_id>",
        response=DOWNLOAD,
        roles=ALL_STAFF,
        tags=("helpdesk",),
        summary="download a file of a ticket",
    )
    def staff_attachment(self, call: Call):
        return download(
            call.services.helpdesk.attachment(str(call.path["ticket_id"]), call.path["file_id"])
        )

    @route(
        "GET",
        "/api/v1/staff/customers/<uuid:customer_id>/penalty-points",
        response=Standing,
        roles=ALL_STAFF,
        tags=("helpdesk",),
        summary="a customer's penalty points from abuse notices",
    )
    def penalty_points(self, call: Call):
        return call.services.helpdesk.standing(str(call.path["customer_id"]))

    # -- staff: reply templates, messages ---------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/reply-templates",
        response=ReplyTemplateList,
        roles=ALL_STAFF,
        query=TemplateQuery,
        tags=("helpdesk",),
        summary="canned replies (?department_id: those for it and for all)",
    )
    def reply_templates(self, call: Call):
        department_id = call.query["department_id"]
        return paged(
            call.services.helpdesk.templates(str(department_id) if department_id else None),
            call.query,
        )

    @route(
        "POST",
        "/api/v1/staff/reply-templates",
        idempotent=True,
        response=ReplyTemplateAnswer,
        roles=HELPDESK_STAFF,
        body=contract.ReplyTemplate,
        status=201,
        tags=("helpdesk",),
        summary="a canned reply per language; %client_person% and %admin_name% filled in",
    )
    def create_reply_template(self, call: Call):
        return call.services.helpdesk.create_template(jsonable(call.body))

    @route(
        "GET",
        "/api/v1/staff/reply-templates/<uuid:template_id>",
        response=ReplyTemplateAnswer,
        roles=ALL_STAFF,
        tags=("helpdesk",),
        summary="one canned reply",
    )
    def reply_template(self, call: Call):
        return call.services.helpdesk.template(str(call.path["template_id"]))

    @route(
        "PATCH",
        "/api/v1/staff/reply-templates/<uuid:template_id>",
        response=ReplyTemplateAnswer,
        roles=HELPDESK_STAFF,
        body=contract.ReplyTemplate,
        partial=True,
        tags=("helpdesk",),
        summary="change a canned reply's name, texts (all languages at once) or department",
    )
    def change_reply_template(self, call: Call):
        return call.services.helpdesk.change_template(
            str(call.path["template_id"]), jsonable(call.body)
        )

    @route(
        "DELETE",
        "/api/v1/staff/reply-templates/<uuid:template_id>",
        response=Removal,
        roles=HELPDESK_STAFF,
        tags=("helpdesk",),
        summary="delete a canned reply (answers already sent keep their text)",
    )
    def delete_reply_template(self, call: Call):
        call.services.helpdesk.delete_template(str(call.path["template_id"]))
        return {"id": str(call.path["template_id"]), "removed": True}

    @route(
        "POST",
        "/api/v1/staff/messages",
        idempotent="service",
        roles=HELPDESK_STAFF,
        body=contract.SendMessage,
        files=True,
        status=201,
        response=contract.Broadcast,
        tags=("helpdesk",),
        summary=(
            "message to customers (one ticket each), abuse notices: 201 with the recorded"
            " message, `sent` with every ticket, or for many recipients `sending` with the"
            " tickets so far while the rest are opened in the background"
        ),
    )
    def send_message(self, call: Call):
        return call.services.helpdesk.send_message(
            jsonable(call.body), call.files, call.idempotency_key
        )

    @route(
        "GET",
        "/api/v1/staff/messages",
        response=BroadcastList,
        roles=(*HELPDESK_STAFF, "auditor"),
        query=Page,
        tags=("helpdesk",),
        summary="messages to customers, newest first: status, recipients, tickets opened",
    )
    def staff_messages(self, call: Call):
        return call.services.helpdesk.messages(call.query["page"], call.query["page_size"])

    @route(
        "GET",
        "/api/v1/staff/messages/<uuid:message_id>",
        roles=(*HELPDESK_STAFF, "auditor"),
        response=contract.Broadcast,
        tags=("helpdesk",),
        summary="a message to customers: status (sending, sent), count, opened, the tickets",
    )
    def staff_message(self, call: Call):
        return call.services.helpdesk.message(str(call.path["message_id"]))
