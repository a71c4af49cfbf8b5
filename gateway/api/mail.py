"""Gateway routes of the mail gateway: the outbox, notification templates, incoming mail."""

from __future__ import annotations

from marshmallow import fields, validate
from werkzeug.wrappers import Response

from contracts import fields as f
from contracts.mail import TEMPLATE_KINDS as KINDS
from contracts.mail import TEMPLATE_LANGUAGES as LANGUAGES
from contracts.mail import DiscardHeld, EditTemplate, ReleaseHeld
from gateway.api.common import ALL_STAFF, Page, paged
from gateway.http import Call, route
from gateway.schemas import (
    RAW_MAIL,
    HeldMail,
    HeldMailList,
    HeldMessage,
    MailTemplate,
    MailTemplateList,
    Notification,
    NotificationList,
    ReceivedMailList,
    TemplatePreview,
)

OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "uncertain", "skipped", "bounced")
HELD_STATUSES = ("held", "released", "discarded")
_TEMPLATE_URL = "/api/v1/staff/mail/templates/<any({}):kind>/<any({}):language>".format(
    ",".join(KINDS), ",".join(LANGUAGES)
)


class OutboxQuery(Page):
    status = f.Text(load_default=None, validate=validate.OneOf(OUTBOX_STATUSES))
    customer_id = fields.UUID(load_default=None)
    kind = f.Text(load_default=None, validate=validate.OneOf(KINDS))


class HeldQuery(Page):
    status = f.Text(load_default="held", validate=validate.OneOf((*HELD_STATUSES, "all")))


class ReceivedQuery(Page):
    sender = f.Email(load_default=None)


class MailRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""

    # -- the outbox ----------------------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/mail/outbox",
        query=OutboxQuery,
        response=NotificationList,
        roles=ALL_STAFF,
        tags=("mail",),
        summary="notifications and whether each was sent",
    )
    def mail_outbox(self, call: Call):
        q = call.query
        return call.services.mailgateway.outbox(
            q["status"],
            str(q["customer_id"]) if q["customer_id"] else None,
            q["kind"],
            q["page"],
            q["page_size"],
        )

    @route(
        "POST",
        "/api/v1/staff/mail/outbox/<int:notification_id>/resend",
        response=Notification,
        roles=("admin", "support"),
        tags=("mail",),
        summary="send a failed, uncertain or bounced notification again",
    )
    def mail_resend(self, call: Call):
        return call.services.mailgateway.resend_notification(call.path["notification_id"])

    # -- templates -----------------------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/mail/templates",
        query=Page,
        response=MailTemplateList,
        roles=ALL_STAFF,
        tags=("mail",),
        summary="every notification template in every language",
    )
    def mail_templates(self, call: Call):
        return paged(call.services.mailgateway.list_templates()["items"], call.query)

    @route(
        "GET",
        _TEMPLATE_URL,
        response=MailTemplate,
        roles=ALL_STAFF,
        tags=("mail",),
        summary="one notification template",
    )
    def mail_template(self, call: Call):
        return call.services.mailgateway.get_template(call.path["kind"], call.path["language"])

    @route(
        "PUT",
        _TEMPLATE_URL,
        body=EditTemplate,
        response=MailTemplate,
        roles=("admin",),
        tags=("mail",),
        summary="change a notification template (Jinja2, sandboxed; checked before saved)",
    )
    def mail_template_edit(self, call: Call):
        return call.services.mailgateway.edit_template(
            call.path["kind"], call.path["language"], call.body["subject"], call.body["body"]
        )

    @route(
        "POST",
        _TEMPLATE_URL + "/preview",
        body=EditTemplate,
        response=TemplatePreview,
        roles=("admin",),
        tags=("mail",),
        summary="what a template's text gives on sample values (nothing is saved)",
    )
    def mail_template_preview(self, call: Call):
        return call.services.mailgateway.preview_template(
            call.path["kind"], call.path["language"], call.body["subject"], call.body["body"]
        )

    @route(
        "DELETE",
        _TEMPLATE_URL,
        response=MailTemplate,
        roles=("admin",),
        tags=("mail",),
        summary="go back to the shipped text of a notification template",
    )
    def mail_template_reset(self, call: Call):
        return call.services.mailgateway.reset_template(call.path["kind"], call.path["language"])

    # -- incoming mail -------------------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/mail/held",
        query=HeldQuery,
        response=HeldMailList,
        roles=("admin", "support", "auditor"),
        tags=("mail",),
        summary="incoming mail kept for staff (unreadable, refused, over the rate limit):"
        " waiting (`status=held`, the default), released, discarded or all",
    )
    def mail_held(self, call: Call):
        q = call.query
        status = None if q["status"] == "all" else q["status"]
        return call.services.mailgateway.held_mail(q["page"], q["page_size"], status)

    @route(
        "GET",
        "/api/v1/staff/mail/held/<int:held_id>",
        response=HeldMessage,
        roles=("admin", "support", "auditor"),
        tags=("mail",),
        summary="one kept message: its headers, text body and attachments, read as text",
    )
    def mail_held_message(self, call: Call):
        return call.services.mailgateway.held_message(call.path["held_id"])

    @route(
        "POST",
        "/api/v1/staff/mail/held/<int:held_id>/release",
        idempotent=True,
        body=ReleaseHeld,
        response=HeldMail,
        roles=("admin", "support"),
        tags=("mail",),
        summary="hand a kept message to the helpdesk as if it had just arrived, or as a new"
        " ticket in `department_id`; once (then 409)",
    )
    def mail_held_release(self, call: Call):
        department_id = call.body["department_id"]
        return call.services.mailgateway.release_held(
            call.path["held_id"], str(department_id) if department_id else None
        )

    @route(
        "POST",
        "/api/v1/staff/mail/held/<int:held_id>/discard",
        idempotent=True,
        body=DiscardHeld,
        response=HeldMail,
        roles=("admin", "support"),
        tags=("mail",),
        summary="set a kept message aside for good, saying why; once (then 409)",
    )
    def mail_held_discard(self, call: Call):
        return call.services.mailgateway.discard_held(call.path["held_id"], call.body["reason"])

    @route(
        "GET",
        "/api/v1/staff/mail/held/<int:held_id>/raw",
        response=RAW_MAIL,
        roles=("admin", "support", "auditor"),
        tags=("mail",),
        summary="one kept message as it was received (message/rfc822)",
    )
    def mail_held_raw(self, call: Call):
        import base64

        content = call.services.mailgateway.held_raw(call.path["held_id"])
        return Response(
            base64.b64decode(content),
            mimetype="message/rfc822",
            headers={
                "Content-Disposition": f'attachment; filename="held-{call.path["held_id"]}.eml"'
            },
        )

    @route(
        "GET",
        "/api/v1/staff/mail/received",
        query=ReceivedQuery,
        response=ReceivedMailList,
        roles=("admin", "support", "auditor"),
        tags=("mail",),
        summary="incoming mail taken, with what became of each message",
    )
    def mail_received(self, call: Call):
        q = call.query
        return call.services.mailgateway.received_mail(q["sender"], q["page"], q["page_size"])
