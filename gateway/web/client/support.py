"""Support tickets in the client area: the list (open or archived), a new ticket with
its department's extra fields and attachments, and one ticket's conversation with a
reply form, archive and reopen.

The same helpdesk commands as `/api/v1/client/tickets...` (`client_tickets`,
`open_ticket`, `client_ticket`, `client_reply`, `client_archive`, `client_reopen`), with
the permission `support`. Files are checked here first against the helpdesk's own rules
(allowed extensions, size per file and per message: `get_settings`), so the error names
the file in the page's language; the helpdesk checks them again, content included.
Attachments are downloaded from the API's route, which takes the session cookie.
"""

from __future__ import annotations

import base64

from contracts.errors import Forbidden, TooLarge, UnsupportedType, ValidationFailed
from gateway.web import i18n
from gateway.web.pages import FormErrors, Page, PageCall, page

PERMISSIONS = ("support",)
PAGE_SIZE = 20
STATES = ("open", "archived")
# the bounds of contracts.helpdesk.OpenTicket and Reply
SUBJECT_MAX = 255
BODY_MAX = 100_000
FIELD_MAX = 1000


class UploadPage(Page):
    """A page whose form may carry files: the body may be as large as an API route's
    that takes files (the helpdesk applies its own per-file and per-message limits)."""

    files = True


def upload_page(method: str, url: str, **options):
    return UploadPage.declare(method, url, **options)


def _user(call: PageCall) -> dict | None:
    user_id = call.principal.get("user_id")
    return {"id": str(user_id)} if user_id else None


def _size(call: PageCall, n: int) -> str:
    """Bytes as a person reads them, in the page's language (5 MiB, 5 Mio, 5 МиБ)."""
    if n >= 1024 * 1024:
        return call.gettext("%(size)s MiB", size=i18n.number(round(n / 1048576, 1), call.language))
    if n >= 1024:
        return call.gettext("%(size)s KiB", size=i18n.number(round(n / 1024, 1), call.language))
    return call.ngettext("%(num)d byte", "%(num)d bytes", n)


def attachment_rules(call: PageCall) -> dict:
    """What a file must be: allowed extensions, the largest file and message."""
    values = call.services.helpdesk.get_settings()
    return {
        "extensions": list(values["allowed_extensions"]),
        "max_file": values["max_file_bytes"],
        "max_message": values["max_message_bytes"],
        "max_file_text": _size(call, values["max_file_bytes"]),
        "max_message_text": _size(call, values["max_message_bytes"]),
    }


def _uploads(call: PageCall, rules: dict, errors: FormErrors) -> list[dict]:
    """The form's files as the helpdesk takes them, each checked against `rules` (an error
    under `files` names each file at fault)."""
    files, total = [], 0
    for item in call.request.files.getlist("files"):
        if not item or not item.filename:
            continue  # the empty part a browser sends when no file was chosen
        content = item.read()
        name = item.filename.replace("\\", "/").rsplit("/", 1)[-1]
        _, dot, ext = name.rpartition(".")
        ext = ext.lower() if dot else ""
        total += len(content)
        if ext not in rules["extensions"]:
            errors.add(
                "files",
                call.gettext(
                    "%(file)s: files of this type are not accepted (allowed: %(allowed)s).",
                    file=name,
                    allowed=", ".join(rules["extensions"]),
                ),
            )
        elif len(content) > rules["max_file"]:
            errors.add(
                "files",
                call.gettext(
                    "%(file)s is larger than %(size)s.", file=name, size=rules["max_file_text"]
                ),
            )
        files.append(
            {
                "filename": name,
                "content_type": item.mimetype or "application/octet-stream",
                "content": base64.b64encode(content).decode("ascii"),
            }
        )
    if total > rules["max_message"] and "files" not in errors:
        errors.add(
            "files",
            call.gettext(
                "The files of one message may not exceed %(size)s in all.",
                size=rules["max_message_text"],
            ),
        )
    return files


def _file_refused(call: PageCall, exc: UnsupportedType | TooLarge, errors: FormErrors) -> None:
    """The helpdesk refused a file (its content, or a size): said next to the files."""
    for problem in (exc.fields or {}).get("files") or [exc.message]:
        name = str(problem).split(": ", 1)[0] if ": " in str(problem) else ""
        if isinstance(exc, TooLarge):
            text = call.gettext("%(file)s is too large.", file=name) if name else None
            errors.add("files", text or call.gettext("The files are too large."))
        else:
            errors.add(
                "files",
                call.gettext("%(file)s: its content does not match its extension.", file=name)
                if name
                else call.gettext("A file was not accepted."),
            )


def _text(call: PageCall, values: dict, errors: FormErrors, name: str, most: int, empty: str):
    if not values[name]:
        errors.add(name, empty)
    elif len(values[name]) > most:
        errors.add(name, call.gettext("At most %(max)d characters.", max=most))


def _body(call: PageCall, errors: FormErrors) -> str:
    """The message text as typed: newlines kept, only the ends trimmed."""
    from contracts.fields import text_problem

    body = call.request.form.get("body", "").replace("\r\n", "\n").strip()
    if body and text_problem(body.replace("\n", " ").replace("\t", " ")):
        errors.add("body", call.gettext("Use letters, digits and punctuation only."))
        return ""
    if not body:
        errors.add("body", call.gettext("Write your message."))
    elif len(body) > BODY_MAX:
        errors.add("body", call.gettext("At most %(max)d characters.", max=BODY_MAX))
    return body


class SupportPages:
    """Mixed into GatewayService."""

    @page("GET", "/support", client=True, permissions=PERMISSIONS)
    def web_support(self, call: PageCall):
        state = call.request.args.get("status", "open")
        state = state if state in STATES else "open"
        number, size = call.page_args(PAGE_SIZE)
        helpdesk = call.services.helpdesk
        pending = helpdesk.client_tickets.call_async(call.customer_id, state, number, size)
        names = {d["id"]: d["name"] for d in helpdesk.departments(False)}
        tickets = pending.result()
        return call.render(
            "client/support.html",
            state=state,
            tickets=tickets,
            departments=names,
            notice=_notice(call),
        )

    # -- a new ticket ---------------------------------------------------------------------

    @page("GET", "/tickets/new", client=True, permissions=PERMISSIONS)
    def web_new_ticket(self, call: PageCall):
        departments = call.services.helpdesk.departments(True)
        chosen = call.request.args.get("department", "")
        if len(departments) == 1 and not chosen:
            chosen = departments[0]["id"]
        department = next((d for d in departments if d["id"] == chosen), None)
        errors = FormErrors()
        if chosen and department is None:
            errors.add("department", call.gettext("Choose one of the departments."))
        return _new_ticket_form(
            call,
            departments,
            department,
            {"subject": "", "body": "", "fields": {}},
            errors,
            status=400 if errors else 200,
        )

    @upload_page("POST", "/tickets/new", client=True, permissions=PERMISSIONS)
    def web_open_ticket(self, call: PageCall):
        helpdesk = call.services.helpdesk
        departments = helpdesk.departments(True)
        department = next(
            (d for d in departments if d["id"] == call.request.form.get("department_id")), None
        )
        if department is None:
            errors = FormErrors().add("department", call.gettext("Choose one of the departments."))
            return _new_ticket_form(call, departments, None, {}, errors, status=400)
        names = ["subject"] + [f"field_{f['name']}" for f in department["fields"]]
        values, errors = call.form(*names)
        _text(call, values, errors, "subject", SUBJECT_MAX, call.gettext("Write a subject."))
        body = _body(call, errors)
        extra = {}
        for spec in department["fields"]:
            key = f"field_{spec['name']}"
            value = values[key]
            if spec.get("required") and not value and key not in errors:
                errors.add(key, call.gettext("Fill in this field."))
            elif len(value) > FIELD_MAX:
                errors.add(key, call.gettext("At most %(max)d characters.", max=FIELD_MAX))
            if value:
                extra[spec["name"]] = value
        files = _uploads(call, attachment_rules(call), errors)
        shown = {"subject": values["subject"], "body": body, "fields": extra}
        if errors:
            return _new_ticket_form(call, departments, department, shown, errors, status=400)
        payload = {
            "department_id": department["id"],
            "subject": values["subject"],
            "body": body,
            "fields": extra,
        }
        try:
            ticket = helpdesk.open_ticket(call.customer_id, payload, files, _user(call), None)
        except (UnsupportedType, TooLarge) as exc:
            _file_refused(call, exc, errors)
            return _new_ticket_form(call, departments, department, shown, errors, status=400)
        except ValidationFailed as exc:
            # a department's own field is named by itself (`domain`) or as `fields.domain`
            own = {f["name"] for f in department["fields"]}
            fields = {}
            for name, problems in (exc.fields or {}).items():
                bare = name.removeprefix("fields.")
                if bare in own:
                    errors.add(f"field_{bare}", call.gettext("Fill in this field."))
                else:
                    fields[name] = problems
            if fields or not errors:
                call.service_errors(ValidationFailed(exc.message, fields), errors)
            return _new_ticket_form(call, departments, department, shown, errors, status=400)
        return call.redirect(f"/tickets/{ticket['id']}", done="opened")

    # -- one ticket ---------------------------------------------------------------------------

    @page("GET", "/tickets/<uuid:ticket_id>", client=True, permissions=PERMISSIONS)
    def web_ticket(self, call: PageCall):
        ticket = call.services.helpdesk.client_ticket(call.customer_id, _ticket_id(call))
        return _ticket_page(call, ticket, {"body": ""}, FormErrors())

    @upload_page("POST", "/tickets/<uuid:ticket_id>/replies", client=True, permissions=PERMISSIONS)
    def web_reply(self, call: PageCall):
        helpdesk = call.services.helpdesk
        ticket_id = _ticket_id(call)
        errors = FormErrors()
        body = _body(call, errors)
        files = _uploads(call, attachment_rules(call), errors)
        if not errors:
            try:
                helpdesk.client_reply(
                    call.customer_id, ticket_id, {"body": body}, files, _user(call)
                )
            except (UnsupportedType, TooLarge) as exc:
                _file_refused(call, exc, errors)
            except Forbidden:
                errors.add("_form", call.gettext("This ticket does not take replies."))
            except ValidationFailed as exc:
                call.service_errors(exc, errors)
        if errors:
            ticket = helpdesk.client_ticket(call.customer_id, ticket_id)
            return _ticket_page(call, ticket, {"body": body}, errors, status=400)
        return call.redirect(f"/tickets/{ticket_id}", done="replied")

    @page(
        "POST",
        "/tickets/<uuid:ticket_id>/<any(archive,reopen):action>",
        client=True,
        permissions=PERMISSIONS,
    )
    def web_ticket_state(self, call: PageCall):
        helpdesk = call.services.helpdesk
        ticket_id = _ticket_id(call)
        if call.path["action"] == "archive":
            helpdesk.client_archive(call.customer_id, ticket_id)
            return call.redirect(f"/tickets/{ticket_id}", done="archived")
        helpdesk.client_reopen(call.customer_id, ticket_id)
        return call.redirect(f"/tickets/{ticket_id}", done="reopened")


def _ticket_id(call: PageCall) -> str:
    return str(call.path["ticket_id"])


def _notice(call: PageCall) -> str | None:
    return {
        "opened": call.gettext("Your ticket is open: we will answer here and by e-mail."),
        "replied": call.gettext("Your reply was added."),
        "archived": call.gettext("The ticket is in the archive."),
        "reopened": call.gettext("The ticket is open again."),
    }.get(call.request.args.get("done", ""))


def _new_ticket_form(call, departments, department, values, errors, status=200):
    return call.render(
        "client/ticket_new.html",
        status=status,
        departments=departments,
        department=department,
        values={"subject": "", "body": "", "fields": {}, **values},
        errors=errors,
        rules=attachment_rules(call) if department else None,
    )


def _ticket_page(call, ticket, values, errors, status=200):
    replies_open = not ticket["forbid_replies"]
    for message in ticket["messages"]:
        for file in message["attachments"]:
            file["size_text"] = _size(call, file.get("size") or 0)
    # the extra fields under the labels their department gives them
    department = next(
        (
            d
            for d in call.services.helpdesk.departments(False)
            if d["id"] == ticket["department_id"]
        ),
        None,
    )
    labels = {f["name"]: f.get("label") for f in (department or {}).get("fields", [])}
    ticket["field_rows"] = [
        (labels.get(name) or name, value) for name, value in sorted(ticket["fields"].items())
    ]
    return call.render(
        "client/ticket.html",
        status=status,
        ticket=ticket,
        values=values,
        errors=errors,
        replies_open=replies_open,
        rules=attachment_rules(call) if replies_open else None,
        notice=_notice(call) if status == 200 else None,
    )
