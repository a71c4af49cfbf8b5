"""The staff panel's messages to customers: the SEND MESSAGE dialog and the messages sent.

The dialog sends what POST /api/v1/staff/messages sends (`helpdesk.send_message`), one
ticket per recipient: recipients as radio buttons (the customer the panel is filtered
by, customer numbers, a group, a project, the customer list's filters when the page is
opened from that list with them, or everyone), the department, the text per language
(three field groups: English, the fallback, then Russian and French), a reply template as
the starting text (a button puts its text in the fields, no script needed), strict
language, forbid replies, "move the ticket to me when the client answers", a violation
notice (deadline, action, penalty points, comment), and files. The list shows each
message's progress (sending or sent, tickets opened of recipients).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from uuid import UUID

from contracts.errors import NotFound, TooLarge, UnsupportedType, ValidationFailed
from contracts.helpdesk import LANGUAGES
from gateway.web.client.support import _file_refused, _uploads, attachment_rules, upload_page
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page
from services.infra import clock

LIST = "GET /api/v1/staff/messages"
ONE = "GET /api/v1/staff/messages/<uuid:message_id>"
SEND = "POST /api/v1/staff/messages"
ROWS = 20
SUBJECT_MAX = 255
BODY_MAX = 100_000
COMMENT_MAX = 2000
RECIPIENTS = ("customer", "numbers", "group", "project", "filter", "all")
ACTIONS = ("suspend_services", "move_to_active")
# the customer list's filters (its page's query) a message may be sent to
FILTER_TEXTS = ("name", "language")
FILTER_IDS = ("project_id", "group_id", "active_product_id")
FILTER_DAYS = ("registered_from", "registered_to")
FLAGS = ("strict_language", "forbid_replies", "assign_to_me", "abuse")
FIELDS = (
    "recipients",
    "numbers",
    "group_id",
    "project_id",
    "department_id",
    "template_id",
    "language",
    "deadline",
    "action",
    "penalty_points",
    "comment",
    *(f"{part}_{lang}" for lang in LANGUAGES for part in ("subject", "body")),
)
# what the helpdesk refuses, said next to the field at fault
SERVICE_MESSAGES = {
    "forbid_replies": N_(
        "A violation notice must let the client answer: it cannot forbid replies."
    ),
    "abuse": N_("A violation notice must let the client answer: it cannot forbid replies."),
    "department_id": N_("Choose one of the departments."),
    "template_id": N_("Choose one of the templates."),
}


def _uuid(value: str) -> str | None:
    try:
        return str(UUID(value)) if value else None
    except ValueError:
        return None


def _list_args(args) -> dict:
    """The customer list's filters in `args` (as its page's query names them), each kept
    as written when it is well formed: what "the customers of the list" means."""
    kept: dict = {}
    for name in (*FILTER_TEXTS, "number", *FILTER_IDS, *FILTER_DAYS):
        value = args.get(name, "").strip()
        if not value:
            continue
        if name == "language" and value not in LANGUAGES:
            continue
        if name == "number" and not (value.isdigit() and len(value) < 16):
            continue
        if name in FILTER_IDS and not _uuid(value):
            continue
        if name in FILTER_DAYS and not _day(value):
            continue
        kept[name] = value[:200]
    return kept


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _customer_filter(kept: dict) -> dict:
    """The list's filters as the helpdesk sends them to the customers service (the days
    as instants: from the start of the first to the end of the last)."""
    found = {k: v for k, v in kept.items() if k not in FILTER_DAYS}
    if "number" in found:
        found["number"] = int(found["number"])
    for name, end in (("registered_from", time.min), ("registered_to", time.max)):
        if name in kept:
            found[name] = datetime.combine(_day(kept[name]), end, tzinfo=UTC).isoformat()
    return found


def _options(items: list[dict]) -> list[tuple[str, str]]:
    return [(i["id"], i["name"]) for i in items]


def _notice(call: PageCall) -> str | None:
    if call.request.args.get("done") == "sent":
        return call.gettext("The message is on its way: each recipient gets a ticket.")
    return None


class StaffMessagePages:
    """Mixed into GatewayService."""

    # -- the messages sent --------------------------------------------------------------------

    @page("GET", "/staff/messages", staff=LIST)
    def web_staff_messages(self, call: PageCall):
        number, size = call.page_args(ROWS)
        s = call.services
        pending = s.helpdesk.messages.call_async(number, size)
        departments = {d["id"]: d["name"] for d in s.helpdesk.departments(False)}
        return call.render(
            "staff/messages.html",
            listing=pending.result(),
            departments=departments,
            notice=_notice(call),
        )

    @page("GET", "/staff/messages/<uuid:message_id>", staff=ONE)
    def web_staff_message(self, call: PageCall):
        message = call.services.helpdesk.message(str(call.path["message_id"]))
        pending = {
            t["customer_id"]: call.services.customers.get_customer.call_async(t["customer_id"])
            for t in message["tickets"]
        }
        customers = {}
        for customer_id, reply in pending.items():
            try:
                customers[customer_id] = reply.result()
            except NotFound:
                continue
        department = call.services.helpdesk.get_department(message["department_id"])
        return call.render(
            "staff/message.html",
            message=message,
            customers=customers,
            department=department,
            notice=_notice(call),
        )

    # -- the dialog -----------------------------------------------------------------------------

    @page("GET", "/staff/messages/new", staff=SEND)
    def web_staff_message_new(self, call: PageCall):
        list_filter = _list_args(call.request.args)
        chosen = "filter" if list_filter else "customer" if call.filtered_customer else "numbers"
        values = {
            "recipients": chosen,
            "action": "suspend_services",
            "penalty_points": "0",
            "language": call.language,
        }
        return self._message_form(call, values, FormErrors(), list_filter)

    @upload_page("POST", "/staff/messages/new", staff=SEND)
    def web_staff_message_send(self, call: PageCall):
        values, errors = call.form(*FIELDS)
        values.update({name: name in call.request.form for name in FLAGS})
        for lang in LANGUAGES:  # the bodies as typed: newlines kept, only the ends trimmed
            values[f"body_{lang}"] = (
                call.request.form.get(f"body_{lang}", "").replace("\r\n", "\n").strip()
            )
        list_filter = _list_args(
            {
                k[len("filter_") :]: v
                for k, v in call.request.form.items()
                if k.startswith("filter_")
            }
        )
        if call.request.form.get("action_button") == "template":
            self._use_template(call, values, errors)
            return self._message_form(call, values, errors, list_filter)
        payload = self._payload(call, values, errors, list_filter)
        rules = attachment_rules(call)
        files = _uploads(call, rules, errors)
        if errors:
            return self._message_form(call, values, errors, list_filter, status=400)
        try:
            sent = call.services.helpdesk.send_message(payload, files, None)
        except (UnsupportedType, TooLarge) as exc:
            _file_refused(call, exc, errors)
        except ValidationFailed as exc:
            call.service_errors(exc, errors, SERVICE_MESSAGES)
        else:
            return call.redirect(f"/staff/messages/{sent['id']}", done="sent")
        return self._message_form(call, values, errors, list_filter, status=400)

    def _use_template(self, call: PageCall, values: dict, errors: FormErrors) -> None:
        """Put the chosen reply template's text, per language, in the body fields."""
        template_id = _uuid(values["template_id"])
        found = [t for t in call.services.helpdesk.templates(None) if t["id"] == template_id]
        if not found:
            errors.add("template_id", call.gettext("Choose one of the templates."))
            return
        for lang, text in found[0]["bodies"].items():
            if lang in LANGUAGES:
                values[f"body_{lang}"] = text

    def _payload(self, call: PageCall, values: dict, errors: FormErrors, list_filter) -> dict:
        """What the helpdesk is sent, from the form; what the form gets wrong goes into
        `errors` next to its field."""
        payload: dict = {
            "department_id": values["department_id"],
            "forbid_replies": values["forbid_replies"],
            "assign_to_me": values["assign_to_me"],
            "strict_language": values["strict_language"],
        }
        if not _uuid(values["department_id"]):
            errors.add("department_id", call.gettext("Choose one of the departments."))
        self._recipients(call, values, errors, list_filter, payload)
        if values["strict_language"]:
            if values["language"] in LANGUAGES:
                payload["language"] = values["language"]
            else:
                errors.add("language", call.gettext("Choose one of the languages."))
        translations = {}
        for lang in LANGUAGES:
            subject, body = values[f"subject_{lang}"], values[f"body_{lang}"]
            if len(subject) > SUBJECT_MAX:
                errors.add(
                    f"subject_{lang}", call.gettext("At most %(max)d characters.", max=SUBJECT_MAX)
                )
            if len(body) > BODY_MAX:
                errors.add(
                    f"body_{lang}", call.gettext("At most %(max)d characters.", max=BODY_MAX)
                )
            if lang == "en":
                if not subject:
                    errors.add("subject_en", call.gettext("Write a subject."))
                if not body:
                    errors.add("body_en", call.gettext("Write the message."))
                payload.update(subject=subject, body=body)
            elif subject or body:
                if not subject:
                    errors.add(
                        f"subject_{lang}",
                        call.gettext("Write a subject in this language too, or leave both empty."),
                    )
                if not body:
                    errors.add(
                        f"body_{lang}",
                        call.gettext(
                            "Write the message in this language too, or leave both empty."
                        ),
                    )
                translations[lang] = {"subject": subject, "body": body}
        payload["translations"] = translations
        if values["abuse"]:
            payload["abuse"] = self._abuse(call, values, errors)
        return payload

    def _recipients(self, call, values, errors, list_filter, payload) -> None:
        chosen = values["recipients"]
        if chosen not in RECIPIENTS:
            errors.add("recipients", call.gettext("Choose who gets the message."))
        elif chosen == "customer":
            customer = call.filtered_customer
            if customer is None:
                errors.add(
                    "recipients", call.gettext("No customer is chosen in the panel any more.")
                )
            else:
                payload["customer_ids"] = [customer["id"]]
        elif chosen == "numbers":
            payload["customer_ids"] = self._customer_ids(call, values["numbers"], errors)
        elif chosen in ("group", "project"):
            name = f"{chosen}_id"
            if _uuid(values[name]):
                payload[name] = values[name]
            else:
                errors.add(name, call.gettext("Choose one of the list."))
        elif chosen == "filter":
            if list_filter:
                payload["filter"] = _customer_filter(list_filter)
            else:
                errors.add("recipients", call.gettext("Choose who gets the message."))
        else:
            payload["all"] = True

    def _customer_ids(self, call: PageCall, text: str, errors: FormErrors) -> list[str]:
        """The customers whose numbers are typed (separated by commas or spaces)."""
        numbers = text.replace(",", " ").split()
        if not numbers:
            errors.add("numbers", call.gettext("Enter one or more customer numbers."))
            return []
        if not all(n.isdigit() and len(n) < 16 for n in numbers) or len(numbers) > 200:
            errors.add(
                "numbers", call.gettext("Enter customer numbers (digits), separated by commas.")
            )
            return []
        wanted = list(dict.fromkeys(int(n) for n in numbers))
        pending = {
            n: call.services.customers.list_customers.call_async({"number": n, "page_size": 1})
            for n in wanted
        }
        found, unknown = [], []
        for n, reply in pending.items():
            items = reply.result()["items"]
            if items:
                found.append(items[0]["id"])
            else:
                unknown.append(str(n))
        if unknown:
            errors.add(
                "numbers",
                call.gettext("There is no customer %(numbers)s.", numbers=", ".join(unknown)),
            )
        return found

    def _abuse(self, call: PageCall, values: dict, errors: FormErrors) -> dict:
        abuse: dict = {"comment": values["comment"]}
        try:
            deadline = datetime.fromisoformat(values["deadline"]).replace(tzinfo=UTC)
        except ValueError:
            errors.add("deadline", call.gettext("Enter a date and time such as 2026-01-31 18:00."))
        else:
            if deadline <= clock.now():
                errors.add("deadline", call.gettext("The deadline must be in the future."))
            abuse["deadline"] = deadline.isoformat()
        if values["action"] in ACTIONS:
            abuse["action"] = values["action"]
        else:
            errors.add("action", call.gettext("Choose what happens at the deadline."))
        points = values["penalty_points"] or "0"
        if points.isdigit() and int(points) <= 1000:
            abuse["penalty_points"] = int(points)
        else:
            errors.add("penalty_points", call.gettext("Enter a whole number from 0 to 1000."))
        if len(values["comment"]) > COMMENT_MAX:
            errors.add("comment", call.gettext("At most %(max)d characters.", max=COMMENT_MAX))
        return abuse

    def _message_form(self, call, values, errors, list_filter, status=200):
        s = call.services
        pending = {
            "departments": s.helpdesk.departments.call_async(False),
            "templates": s.helpdesk.templates.call_async(None),
            "groups": s.customers.list_kind.call_async("group", 1, 200),
            "projects": s.customers.list_kind.call_async("project", 1, 200),
        }
        answers = {name: reply.result() for name, reply in pending.items()}
        return call.render(
            "staff/messages_new.html",
            status=status,
            values=values,
            errors=errors,
            list_filter=list_filter,
            rules=attachment_rules(call),
            department_options=_options(answers["departments"]),
            template_options=_options(answers["templates"]),
            group_options=_options(answers["groups"]["items"]),
            project_options=_options(answers["projects"]["items"]),
        )
