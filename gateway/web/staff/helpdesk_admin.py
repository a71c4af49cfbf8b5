"""The staff panel's helpdesk setup: reply templates (a name, a text per language, the
macros they may hold), departments (who answers, which addresses feed them, what a
client must say, business hours) and the helpdesk's settings (attachment rules, guest
mail, the penalty threshold).

Each page mirrors its API route's roles: everyone reads, `support` and `admin` keep the
reply templates, only `admin` changes departments and settings; the forms are shown only
to whom their route allows, and a direct POST from anyone else is 403.
"""

from __future__ import annotations

import re
import uuid
from zoneinfo import available_timezones

from contracts.errors import Conflict, ValidationFailed
from contracts.fields import text_problem
from contracts.helpdesk import LANGUAGES
from gateway.web import i18n
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page

TEMPLATES = "GET /api/v1/staff/reply-templates"
TEMPLATE = "GET /api/v1/staff/reply-templates/<uuid:template_id>"
CREATE_TEMPLATE = "POST /api/v1/staff/reply-templates"
CHANGE_TEMPLATE = "PATCH /api/v1/staff/reply-templates/<uuid:template_id>"
DELETE_TEMPLATE = "DELETE /api/v1/staff/reply-templates/<uuid:template_id>"
DEPARTMENTS = "GET /api/v1/staff/departments"
DEPARTMENT = "GET /api/v1/staff/departments/<uuid:department_id>"
CREATE_DEPARTMENT = "POST /api/v1/staff/departments"
CHANGE_DEPARTMENT = "PATCH /api/v1/staff/departments/<uuid:department_id>"
SETTINGS = "GET /api/v1/staff/helpdesk-settings"
CHANGE_SETTINGS = "PATCH /api/v1/staff/helpdesk-settings"

# the bounds of contracts.helpdesk
NAME_MAX = 200
BODY_MAX = 100_000
LABEL_MAX = 200
# empty rows a department's form offers for new extra fields (no script needed)
NEW_FIELD_ROWS = 2
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
KIB = 1024
TIMEZONES = sorted(available_timezones() | {"UTC"})

NOTICES = {
    "template_created": N_("The reply template was added."),
    "template_saved": N_("The reply template was saved."),
    "template_deleted": N_("The reply template was deleted."),
    "department_created": N_("The department was added."),
    "department_saved": N_("The department was saved."),
    "settings_saved": N_("The helpdesk settings were saved."),
}


def _notice(call: PageCall) -> str | None:
    done = call.request.args.get("done", "")
    return call.gettext(NOTICES[done]) if done in NOTICES else None


def _uuid_text(value: str) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


def _multiline(call: PageCall, name: str, errors: FormErrors, most: int) -> str:
    """A text area's text as typed: newlines kept, only the ends trimmed."""
    text = call.request.form.get(name, "").replace("\r\n", "\n").strip()
    if text and text_problem(text.replace("\n", " ").replace("\t", " ")):
        errors.add(name, call.gettext("Use letters, digits and punctuation only."))
        return ""
    if len(text) > most:
        errors.add(name, call.gettext("At most %(max)d characters.", max=most))
    return text


# -- reply templates ---------------------------------------------------------------------------


def _template_form(call: PageCall) -> tuple[dict, dict, FormErrors]:
    """(what the form shows, the payload, errors) of a reply template's form."""
    values, errors = call.form("name", "department_id")
    if not values["name"] and "name" not in errors:
        errors.add("name", call.gettext("Give the template a name."))
    elif len(values["name"]) > NAME_MAX:
        errors.add("name", call.gettext("At most %(max)d characters.", max=NAME_MAX))
    department_id = _uuid_text(values["department_id"])
    if values["department_id"] and department_id is None:
        errors.add("department_id", call.gettext("Choose one of the departments."))
    bodies = {}
    for language in LANGUAGES:
        text = _multiline(call, f"body_{language}", errors, BODY_MAX)
        values[f"body_{language}"] = text
        if text:
            bodies[language] = text
    if not bodies and not any(f"body_{lang}" in errors for lang in LANGUAGES):
        errors.add("body_en", call.gettext("Write the text in at least one language."))
    payload = {"name": values["name"], "bodies": bodies, "department_id": department_id}
    return values, payload, errors


def _template_values(template: dict | None) -> dict:
    template = template or {"name": "", "department_id": None, "bodies": {}}
    values = {"name": template["name"], "department_id": template["department_id"] or ""}
    for language in LANGUAGES:
        values[f"body_{language}"] = template["bodies"].get(language, "")
    return values


TEMPLATE_MESSAGES = {
    "department_id": N_("Choose one of the departments."),
    "bodies": N_("Write the text in at least one language."),
}


# -- departments -----------------------------------------------------------------------------


def _department_values(department: dict | None) -> dict:
    """A department as its form shows it."""
    d = department or {}
    hours = d.get("business_hours") or {}
    rows = [dict(f) for f in d.get("fields", [])]
    rows += [{"name": "", "label": "", "required": False} for _ in range(NEW_FIELD_ROWS)]
    return {
        "name": d.get("name", ""),
        "client_visible": d.get("client_visible", True),
        "accept_guests": d.get("accept_guests", True),
        "addresses": "\n".join(d.get("addresses", [])),
        "staff_ids": list(d.get("staff_ids", [])),
        "fields": rows,
        "days": list(hours.get("days", [])),
        "opens": hours.get("opens", "09:00"),
        "closes": hours.get("closes", "18:00"),
        "timezone": hours.get("timezone", "UTC"),
    }


def _department_form(call: PageCall) -> tuple[dict, dict, FormErrors]:
    """(what the form shows, the payload, errors) of a department's form."""
    form = call.request.form
    values, errors = call.form("name", "opens", "closes", "timezone")
    if not values["name"] and "name" not in errors:
        errors.add("name", call.gettext("Give the department a name."))
    elif len(values["name"]) > NAME_MAX:
        errors.add("name", call.gettext("At most %(max)d characters.", max=NAME_MAX))
    # one a line (a text area: its newlines are not refused as control characters)
    addresses = [a for a in form.get("addresses", "").split() if a]
    if any(text_problem(a) for a in addresses):
        errors.add("addresses", call.gettext("Use letters, digits and punctuation only."))
        addresses = []
    staff_ids = [s for s in form.getlist("staff_ids") if _uuid_text(s)]
    rows, fields, seen = [], [], set()
    rows_sent = form.get("field_rows", "")
    count = min(int(rows_sent), 50) if rows_sent.isdigit() else 0
    for i in range(count):
        name = form.get(f"field_name_{i}", "").strip()
        label = form.get(f"field_label_{i}", "").strip()
        required = form.get(f"field_required_{i}") == "1"
        rows.append({"name": name, "label": label, "required": required})
        if not name:
            if label:
                errors.add("fields", call.gettext("Give each extra field a name."))
            continue
        if not FIELD_NAME.match(name) or name in seen:
            errors.add(
                "fields",
                call.gettext(
                    "%(name)s: a field's name is a-z, 0-9 and _, starts with a letter, and "
                    "is given once.",
                    name=name,
                ),
            )
        elif len(label) > LABEL_MAX:
            errors.add("fields", call.gettext("At most %(max)d characters.", max=LABEL_MAX))
        seen.add(name)
        fields.append({"name": name, "label": label, "required": required})
    rows += [{"name": "", "label": "", "required": False} for _ in range(NEW_FIELD_ROWS)]
    days = sorted({int(d) for d in form.getlist("days") if d in "0123456"})
    for key in ("opens", "closes"):
        if not TIME.match(values[key]) and key not in errors:
            errors.add(key, call.gettext("Write a time as HH:MM, like 09:00."))
    if values["timezone"] not in TIMEZONES and "timezone" not in errors:
        errors.add("timezone", call.gettext("Choose one of the time zones."))
    hours = None
    if days:
        hours = {
            "days": days,
            "opens": values["opens"],
            "closes": values["closes"],
            "timezone": values["timezone"],
        }
    payload = {
        "name": values["name"],
        "client_visible": form.get("client_visible") == "1",
        "accept_guests": form.get("accept_guests") == "1",
        "addresses": addresses,
        "staff_ids": staff_ids,
        "fields": fields,
        "business_hours": hours,
    }
    shown = dict(
        values,
        client_visible=payload["client_visible"],
        accept_guests=payload["accept_guests"],
        addresses="\n".join(addresses),
        staff_ids=staff_ids,
        fields=rows,
        days=days,
    )
    return shown, payload, errors


DEPARTMENT_MESSAGES = {
    "addresses": N_("Write one e-mail address a line, each feeding one department only."),
    "staff_ids": N_("Choose among the staff members shown."),
    "fields": N_("Check the extra fields: a name is a-z, 0-9 and _."),
}


class StaffHelpdeskAdminPages:
    """Mixed into GatewayService (through StaffHelpdeskPages)."""

    # -- reply templates ----------------------------------------------------------------------

    @page("GET", "/staff/reply-templates", staff=TEMPLATES)
    def web_staff_reply_templates(self, call: PageCall):
        return _templates_page(call, _template_values(None), FormErrors())

    @page("POST", "/staff/reply-templates", staff=CREATE_TEMPLATE)
    def web_staff_create_reply_template(self, call: PageCall):
        values, payload, errors = _template_form(call)
        if not errors:
            try:
                created = call.services.helpdesk.create_template(payload)
            except ValidationFailed as exc:
                call.service_errors(exc, errors, TEMPLATE_MESSAGES)
        if errors:
            return _templates_page(call, values, errors, status=400)
        return call.redirect(f"/staff/reply-templates/{created['id']}", done="template_created")

    @page("GET", "/staff/reply-templates/<uuid:template_id>", staff=TEMPLATE)
    def web_staff_reply_template(self, call: PageCall):
        template = call.services.helpdesk.template(str(call.path["template_id"]))
        return _template_page(call, template, _template_values(template), FormErrors())

    @page("POST", "/staff/reply-templates/<uuid:template_id>", staff=CHANGE_TEMPLATE)
    def web_staff_change_reply_template(self, call: PageCall):
        helpdesk = call.services.helpdesk
        template_id = str(call.path["template_id"])
        template = helpdesk.template(template_id)
        values, payload, errors = _template_form(call)
        if not errors:
            try:
                helpdesk.change_template(template_id, payload)
            except ValidationFailed as exc:
                call.service_errors(exc, errors, TEMPLATE_MESSAGES)
        if errors:
            return _template_page(call, template, values, errors, status=400)
        return call.redirect(f"/staff/reply-templates/{template_id}", done="template_saved")

    @page("POST", "/staff/reply-templates/<uuid:template_id>/delete", staff=DELETE_TEMPLATE)
    def web_staff_delete_reply_template(self, call: PageCall):
        call.services.helpdesk.delete_template(str(call.path["template_id"]))
        return call.redirect("/staff/reply-templates", done="template_deleted")

    # -- departments --------------------------------------------------------------------------

    @page("GET", "/staff/departments", staff=DEPARTMENTS)
    def web_staff_departments(self, call: PageCall):
        departments = call.services.helpdesk.departments(False)
        return call.render(
            "staff/departments.html",
            departments=departments,
            staff_names=_all_staff_names(call, departments),
            notice=_notice(call),
        )

    @page("GET", "/staff/departments/new", staff=CREATE_DEPARTMENT)
    def web_staff_new_department(self, call: PageCall):
        return _department_page(call, None, _department_values(None), FormErrors())

    @page("POST", "/staff/departments/new", staff=CREATE_DEPARTMENT)
    def web_staff_create_department(self, call: PageCall):
        values, payload, errors = _department_form(call)
        if not errors:
            try:
                created = call.services.helpdesk.create_department(payload)
            except (ValidationFailed, Conflict) as exc:
                call.service_errors(exc, errors, DEPARTMENT_MESSAGES)
        if errors:
            return _department_page(call, None, values, errors, status=400)
        return call.redirect(f"/staff/departments/{created['id']}", done="department_created")

    @page("GET", "/staff/departments/<uuid:department_id>", staff=DEPARTMENT)
    def web_staff_department(self, call: PageCall):
        department = call.services.helpdesk.get_department(str(call.path["department_id"]))
        return _department_page(call, department, _department_values(department), FormErrors())

    @page("POST", "/staff/departments/<uuid:department_id>", staff=CHANGE_DEPARTMENT)
    def web_staff_change_department(self, call: PageCall):
        helpdesk = call.services.helpdesk
        department_id = str(call.path["department_id"])
        department = helpdesk.get_department(department_id)
        values, payload, errors = _department_form(call)
        if not errors:
            try:
                helpdesk.change_department(department_id, payload)
            except (ValidationFailed, Conflict) as exc:
                call.service_errors(exc, errors, DEPARTMENT_MESSAGES)
        if errors:
            return _department_page(call, department, values, errors, status=400)
        return call.redirect(f"/staff/departments/{department_id}", done="department_saved")

    # -- settings -----------------------------------------------------------------------------

    @page("GET", "/staff/helpdesk-settings", staff=SETTINGS)
    def web_staff_helpdesk_settings(self, call: PageCall):
        current = call.services.helpdesk.get_settings()
        return _settings_page(call, _settings_values(current), FormErrors())

    @page("POST", "/staff/helpdesk-settings", staff=CHANGE_SETTINGS)
    def web_staff_change_helpdesk_settings(self, call: PageCall):
        values, errors = call.form(
            "allowed_extensions", "max_file_kib", "max_message_kib", "penalty_threshold"
        )
        extensions = [
            e.strip().lstrip(".").lower()
            for e in re.split(r"[\s,;]+", values["allowed_extensions"])
            if e.strip()
        ]
        bad = [e for e in extensions if not EXTENSION.match(e)]
        if bad:
            errors.add(
                "allowed_extensions",
                call.gettext(
                    "%(items)s: an extension is 1 to 10 letters or digits.", items=", ".join(bad)
                ),
            )
        elif len(extensions) > 100:
            errors.add("allowed_extensions", call.gettext("At most 100 extensions."))
        bounds = {
            "max_file_kib": 100 * KIB,
            "max_message_kib": 500 * KIB,
            "penalty_threshold": 100_000,
        }
        numbers = {}
        for name, most in bounds.items():
            text = values[name]
            if name in errors:
                continue
            if not text.isdigit() or not 1 <= int(text) <= most:
                errors.add(
                    name,
                    call.gettext(
                        "Write a whole number from 1 to %(max)s.",
                        max=i18n.number(most, call.language),
                    ),
                )
            else:
                numbers[name] = int(text)
        accept_guest_mail = call.request.form.get("accept_guest_mail") == "1"
        shown = dict(values, accept_guest_mail=accept_guest_mail)
        if not errors:
            payload = {
                "allowed_extensions": list(dict.fromkeys(extensions)),
                "max_file_bytes": numbers["max_file_kib"] * KIB,
                "max_message_bytes": numbers["max_message_kib"] * KIB,
                "accept_guest_mail": accept_guest_mail,
                "penalty_threshold": numbers["penalty_threshold"],
            }
            try:
                call.services.helpdesk.change_settings(payload)
            except ValidationFailed as exc:
                call.service_errors(exc, errors)
        if errors:
            return _settings_page(call, shown, errors, status=400)
        return call.redirect("/staff/helpdesk-settings", done="settings_saved")


def _templates_page(call: PageCall, values: dict, errors: FormErrors, status=200):
    departments = call.services.helpdesk.departments(False)
    return call.render(
        "staff/reply_templates.html",
        status=status,
        templates=call.services.helpdesk.templates(None),
        departments=departments,
        department_names={d["id"]: d["name"] for d in departments},
        languages=LANGUAGES,
        values=values,
        errors=errors,
        notice=_notice(call) if status == 200 else None,
    )


def _template_page(call: PageCall, template: dict, values: dict, errors, status=200):
    return call.render(
        "staff/reply_templates_edit.html",
        status=status,
        reply_template=template,
        departments=call.services.helpdesk.departments(False),
        languages=LANGUAGES,
        values=values,
        errors=errors,
        notice=_notice(call) if status == 200 else None,
    )


def _all_staff_names(call: PageCall, departments: list[dict]) -> dict:
    wanted = sorted({s for d in departments for s in d.get("staff_ids", [])})
    if not wanted:
        return {}
    members = call.services.customers.staff_members(wanted)
    return {m["id"]: m["name"] or m["username"] for m in members}


def _department_page(call: PageCall, department, values: dict, errors, status=200):
    editable = call.can(CHANGE_DEPARTMENT if department else CREATE_DEPARTMENT)
    staff = []
    if editable:
        # every staff member may be one who answers; those already chosen come first
        listing = call.services.customers.list_kind("staff", 1, 200)["items"]
        staff = [(m["id"], m["name"] or m["username"]) for m in listing if m.get("active", True)]
        known = {m for m, _ in staff}
        missing = [s for s in values["staff_ids"] if s not in known]
        if missing:
            staff += sorted(_names(call, missing).items(), key=lambda i: i[1].lower())
    names = _names(call, values["staff_ids"]) if not editable else dict(staff)
    return call.render(
        "staff/departments_edit.html",
        status=status,
        department=department,
        editable=editable,
        values=values,
        staff=staff,
        staff_names=names,
        timezones=TIMEZONES,
        errors=errors,
        notice=_notice(call) if status == 200 else None,
    )


def _names(call: PageCall, ids: list[str]) -> dict:
    if not ids:
        return {}
    return {
        m["id"]: m["name"] or m["username"]
        for m in call.services.customers.staff_members(sorted(set(ids)))
    }


def _settings_values(current: dict) -> dict:
    return {
        "allowed_extensions": ", ".join(current["allowed_extensions"]),
        "max_file_kib": str(current["max_file_bytes"] // KIB),
        "max_message_kib": str(current["max_message_bytes"] // KIB),
        "accept_guest_mail": current["accept_guest_mail"],
        "penalty_threshold": str(current["penalty_threshold"]),
    }


def _settings_page(call: PageCall, values: dict, errors: FormErrors, status=200):
    return call.render(
        "staff/helpdesk_settings.html",
        status=status,
        values=values,
        errors=errors,
        notice=_notice(call) if status == 200 else None,
    )
