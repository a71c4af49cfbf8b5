"""What the mail gateway accepts over RPC."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from contracts.fields import Body, Text

# the languages notifications are written in, and the kinds of notification: each pair
# names one template (the mail gateway ships one of each; staff may edit them)
TEMPLATE_LANGUAGES = ("en", "ru", "fr")
TEMPLATE_KINDS = (
    "invoice_issued",
    "credit_note_issued",
    "payment_received",
    "invoice_due",
    "invoice_overdue",
    "service_suspended",
    "service_unsuspended",
    "account_credentials",
    "password_changed",
    "password_reset",
    "email_change",
    "email_changed",
    "ticket_opened",
    "ticket_reply",
    "staff_ticket",
    "ticket_notice",
    "abuse_notice",
)
# kinds whose subject must carry the ticket's [#tracking] so that replies find the ticket;
# ticket_notice: staff's message on a ticket that takes no replies (it invites none);
# abuse_notice: a violation notice, sent whatever the client's notification settings
TICKET_TEMPLATE_KINDS = (
    "ticket_opened",
    "ticket_reply",
    "staff_ticket",
    "ticket_notice",
    "abuse_notice",
)


class EditTemplate(Schema):
    """`mailgateway.edit_template`: staff's own subject and body of a notification (the
    kind and language name the template)."""

    subject = Text(required=True, validate=validate.Length(min=1, max=500))
    body = Body(required=True, validate=validate.Length(min=1, max=20000))


class ReleaseHeld(Schema):
    """`mailgateway.release_held`: hand a kept message to the helpdesk, as if it had just
    arrived or (`department_id`) as a new ticket in that department."""

    department_id = fields.UUID(load_default=None, allow_none=True)


class DiscardHeld(Schema):
    """`mailgateway.discard_held`: why staff set a kept message aside."""

    reason = Text(required=True, validate=validate.Length(min=1, max=1000))
