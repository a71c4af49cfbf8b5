"""The staff panel's mail: incoming mail kept for staff (read it as text, release it into
a ticket or discard it), incoming mail taken, the outbox of notifications (resend an
uncertain one), and the notification templates (edit with a preview on sample values,
go back to the shipped text).

The same mailgateway commands as `/api/v1/staff/mail/...`, each page allowing the roles
of its route. A held message is only ever shown as text: its headers, its body as the
helpdesk would take it, the names of its attachments; the message as received is a
download (the API's raw route).
"""

from __future__ import annotations

from contracts.errors import Conflict, NotFound, ValidationFailed
from contracts.fields import text_problem
from contracts.mail import TEMPLATE_KINDS, TEMPLATE_LANGUAGES
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page

ROWS = 20

HELD = "GET /api/v1/staff/mail/held"
HELD_ONE = "GET /api/v1/staff/mail/held/<int:held_id>"
RELEASE = "POST /api/v1/staff/mail/held/<int:held_id>/release"
DISCARD = "POST /api/v1/staff/mail/held/<int:held_id>/discard"
RECEIVED = "GET /api/v1/staff/mail/received"
OUTBOX = "GET /api/v1/staff/mail/outbox"
RESEND = "POST /api/v1/staff/mail/outbox/<int:notification_id>/resend"
TEMPLATES = "GET /api/v1/staff/mail/templates"
_TEMPLATE = "/api/v1/staff/mail/templates/<any({}):kind>/<any({}):language>".format(
    ",".join(TEMPLATE_KINDS), ",".join(TEMPLATE_LANGUAGES)
)
TEMPLATE = f"GET {_TEMPLATE}"
EDIT = f"PUT {_TEMPLATE}"
RESET = f"DELETE {_TEMPLATE}"
PREVIEW = f"POST {_TEMPLATE}/preview"
_PAGE = "/staff/mail/templates/<any({}):kind>/<any({}):language>".format(
    ",".join(TEMPLATE_KINDS), ",".join(TEMPLATE_LANGUAGES)
)

HELD_STATUSES = ("held", "released", "discarded")
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "uncertain", "skipped", "bounced")
RESENDABLE = ("failed", "uncertain", "bounced")

# what the notices after a form say (?done=...)
NOTICES = {
    "released": N_("The message was handed to the helpdesk."),
    "discarded": N_("The message was discarded."),
    "resent": N_("The notification will be sent again."),
    "saved": N_("The template was saved."),
    "reset": N_("The template is back to the text it came with."),
}


class StaffMailPages:
    """Mixed into GatewayService."""

    @page("GET", "/staff/mail", staff=True)
    def web_staff_mail(self, call: PageCall):
        """The first tab this role may read."""
        for spec, url in ((HELD, "/staff/mail/held"), (OUTBOX, "/staff/mail/outbox")):
            if call.can(spec):
                return call.redirect(url)
        return call.redirect("/staff/mail/templates")

    # -- held mail ----------------------------------------------------------------------------

    @page("GET", "/staff/mail/held", staff=HELD)
    def web_staff_mail_held(self, call: PageCall):
        status = call.request.args.get("status", "held")
        status = status if status in HELD_STATUSES else "held"
        number, size = call.page_args(ROWS)
        listing = call.services.mailgateway.held_mail(number, size, status)
        return call.render(
            "staff/mail_held.html",
            listing=listing,
            state=status,
            statuses=HELD_STATUSES,
            **_tabs(call),
        )

    @page("GET", "/staff/mail/held/<int:held_id>", staff=HELD_ONE)
    def web_staff_mail_held_one(self, call: PageCall):
        return self._held_page(call, {}, FormErrors())

    def _held_page(self, call: PageCall, values: dict, errors: FormErrors, status: int = 200):
        s = call.services
        departments = s.helpdesk.departments.call_async(False) if call.can(RELEASE) else None
        message = s.mailgateway.held_message(call.path["held_id"])
        by = message.get("handled_by") or {}
        handler = None
        if by.get("kind") == "staff" and by.get("id"):
            members = s.customers.staff_members([by["id"]])
            handler = members[0]["name"] or members[0]["username"] if members else None
        done = call.request.args.get("done", "")
        return call.render(
            "staff/mail_held_one.html",
            status=status,
            message=message,
            handler=handler,
            department_options=[(d["id"], d["name"]) for d in departments.result()]
            if departments
            else [],
            values=values,
            errors=errors,
            notice=call.gettext(NOTICES[done]) if done in NOTICES else None,
            show_source=call.request.args.get("source") == "1",
            source=_source(s, message) if call.request.args.get("source") == "1" else None,
        )

    @page("POST", "/staff/mail/held/<int:held_id>/release", staff=RELEASE)
    def web_staff_mail_held_release(self, call: PageCall):
        held_id = call.path["held_id"]
        values, errors = call.form("department_id")
        if not errors:
            try:
                call.services.mailgateway.release_held(held_id, values["department_id"] or None)
            except ValidationFailed as exc:
                errors = _release_errors(call, exc)
            except Conflict:
                errors.add("_form", call.gettext("This message was already released or discarded."))
                return self._held_page(call, values, errors, 409)
            else:
                return call.redirect(f"/staff/mail/held/{held_id}", done="released")
        return self._held_page(call, values, errors, 400)

    @page("POST", "/staff/mail/held/<int:held_id>/discard", staff=DISCARD)
    def web_staff_mail_held_discard(self, call: PageCall):
        held_id = call.path["held_id"]
        values, errors = call.form("reason")
        if not values["reason"] and "reason" not in errors:
            errors.add("reason", call.gettext("Say why, in a few words."))
        if not errors:
            try:
                call.services.mailgateway.discard_held(held_id, values["reason"])
            except ValidationFailed as exc:
                errors = call.service_errors(exc)
            except Conflict:
                errors.add("_form", call.gettext("This message was already released or discarded."))
                return self._held_page(call, values, errors, 409)
            else:
                return call.redirect(f"/staff/mail/held/{held_id}", done="discarded")
        return self._held_page(call, values, errors, 400)

    # -- mail taken ---------------------------------------------------------------------------

    @page("GET", "/staff/mail/received", staff=RECEIVED)
    def web_staff_mail_received(self, call: PageCall):
        sender = call.request.args.get("sender", "").strip()
        errors = FormErrors()
        if sender and ("@" not in sender or len(sender) > 320 or any(c.isspace() for c in sender)):
            errors.add("sender", call.gettext("Enter an e-mail address."))
        number, size = call.page_args(ROWS)
        listing = None
        if not errors:
            try:
                listing = call.services.mailgateway.received_mail(sender or None, number, size)
            except ValidationFailed:
                errors.add("sender", call.gettext("Enter an e-mail address."))
        return call.render(
            "staff/mail_received.html",
            status=400 if errors else 200,
            listing=listing,
            sender=sender,
            errors=errors,
            **_tabs(call),
        )

    # -- the outbox ---------------------------------------------------------------------------

    @page("GET", "/staff/mail/outbox", staff=OUTBOX)
    def web_staff_mail_outbox(self, call: PageCall):
        status = call.request.args.get("status", "")
        status = status if status in OUTBOX_STATUSES else ""
        number, size = call.page_args(ROWS)
        listing = call.services.mailgateway.outbox(
            status or None, call.customer_filter(), None, number, size
        )
        done = call.request.args.get("done", "")
        return call.render(
            "staff/mail_outbox.html",
            listing=listing,
            state=status,
            statuses=OUTBOX_STATUSES,
            resendable=RESENDABLE,
            notice=call.gettext(NOTICES[done]) if done in NOTICES else None,
            error=call.gettext("This notification cannot be sent again.")
            if done == "not_resent"
            else None,
            **_tabs(call),
        )

    @page("POST", "/staff/mail/outbox/<int:notification_id>/resend", staff=RESEND)
    def web_staff_mail_resend(self, call: PageCall):
        status = call.request.form.get("status", "")
        back = {"status": status} if status in OUTBOX_STATUSES else {}
        try:
            call.services.mailgateway.resend_notification(call.path["notification_id"])
        except (Conflict, NotFound):
            return call.redirect("/staff/mail/outbox", done="not_resent", **back)
        return call.redirect("/staff/mail/outbox", done="resent", **back)

    # -- templates ----------------------------------------------------------------------------

    @page("GET", "/staff/mail/templates", staff=TEMPLATES)
    def web_staff_mail_templates(self, call: PageCall):
        items = call.services.mailgateway.list_templates()["items"]
        kinds: dict = {}
        for item in items:
            kinds.setdefault(item["kind"], {})[item["language"]] = item
        return call.render(
            "staff/mail_templates.html",
            kinds=kinds,
            languages=TEMPLATE_LANGUAGES,
            **_tabs(call),
        )

    @page("GET", _PAGE, staff=TEMPLATE)
    def web_staff_mail_template(self, call: PageCall):
        kind, language = call.path["kind"], call.path["language"]
        template = call.services.mailgateway.get_template(kind, language)
        done = call.request.args.get("done", "")
        return self._template_page(
            call,
            template,
            {"subject": template["subject"], "body": template["body"]},
            FormErrors(),
            notice=call.gettext(NOTICES[done]) if done in NOTICES else None,
        )

    def _template_page(self, call, template, values, errors, status=200, preview=None, notice=None):
        return call.render(
            "staff/mail_template.html",
            status=status,
            entry=template,
            values=values,
            errors=errors,
            preview=preview,
            notice=notice,
            may_edit=call.can(EDIT),
            may_reset=call.can(RESET),
        )

    @page("POST", _PAGE, staff=EDIT)
    def web_staff_mail_template_edit(self, call: PageCall):
        """Save the text, or (`action=preview`) show what it gives on sample values."""
        kind, language = call.path["kind"], call.path["language"]
        values, errors = call.form("subject")
        # the text as typed: its lines and its leading spaces count
        values["body"] = call.request.form.get("body", "").replace("\r\n", "\n")
        if text_problem(values["body"], multiline=True):
            errors.add("body", call.gettext("Use letters, digits and punctuation only."))
        for name in ("subject", "body"):
            if not values[name] and name not in errors:
                errors.add(name, call.gettext("Fill this in."))
        mail = call.services.mailgateway
        preview = None
        if not errors:
            try:
                if call.request.form.get("action") == "preview":
                    preview = mail.preview_template(
                        kind, language, values["subject"], values["body"]
                    )
                else:
                    mail.edit_template(kind, language, values["subject"], values["body"])
                    return call.redirect(call.request.path, done="saved")
            except ValidationFailed as exc:
                errors = _template_errors(call, exc)
        template = mail.get_template(kind, language)
        return self._template_page(
            call, template, values, errors, 400 if errors else 200, preview=preview
        )

    @page("POST", _PAGE + "/reset", staff=RESET)
    def web_staff_mail_template_reset(self, call: PageCall):
        kind, language = call.path["kind"], call.path["language"]
        call.services.mailgateway.reset_template(kind, language)
        return call.redirect(f"/staff/mail/templates/{kind}/{language}", done="reset")


def _tabs(call: PageCall) -> dict:
    """The mail section's tabs this role may open."""
    tabs = [
        ("/staff/mail/held", call.gettext("Held mail"), HELD),
        ("/staff/mail/received", call.gettext("Received mail"), RECEIVED),
        ("/staff/mail/outbox", call.gettext("Outbox"), OUTBOX),
        ("/staff/mail/templates", call.gettext("Templates"), TEMPLATES),
    ]
    return {"mail_tabs": [(url, label) for url, label, spec in tabs if call.can(spec)]}


def _source(services, message: dict) -> str:
    """The message as received, as text (bytes that are not UTF-8 read as Latin-1)."""
    import base64

    raw = base64.b64decode(services.mailgateway.held_raw(message["id"]))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _release_errors(call: PageCall, exc: ValidationFailed) -> FormErrors:
    errors = FormErrors()
    fields = exc.fields or {}
    if "department_id" in fields:
        errors.add(
            "department_id",
            call.gettext(
                "The helpdesk did not take the message: choose the department it goes to."
            ),
        )
    else:
        errors.add("_form", call.gettext("This message cannot be read; it can only be discarded."))
    return errors


def _template_errors(call: PageCall, exc: ValidationFailed) -> FormErrors:
    """A template's errors next to its field: the mail gateway's sentence (Jinja2's own
    words on what is wrong, in English) after one in the page's language."""
    errors = FormErrors()
    for name, problems in (exc.fields or {}).items():
        key = name if name in ("subject", "body") else "_form"
        for problem in problems if isinstance(problems, list) else [problems]:
            errors.add(
                key, call.gettext("This template has an error: %(detail)s", detail=str(problem))
            )
    if not errors:
        errors.add("_form", call.gettext("Check this value: it was not accepted."))
    return errors
