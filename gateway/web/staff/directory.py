"""The staff panel's customer directory: customer groups (listed, added, renamed,
removed once no customer is in them), discounts (listed, added for a group or the
filtered customer, renamed or given other dates, ended now; one given to a customer that
was deleted is shown read-only) and projects (listed, added, renamed, their mails'
sender and their renewal and dunning days changed, removed once no customer or product
refers to them).

The same customers-service commands as `/api/v1/staff/customer-groups`, `/discounts` and
`/projects`, each page allowing the roles of the route it mirrors; each change is an
event of its own, stamped with the staff member who made it.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from contracts.errors import Conflict, NotFound, ValidationFailed
from gateway.web.client.finances import parse_amount
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page
from services.infra import clock

PAGE_SIZE = 20
LIST = "GET /api/v1/staff/<any('customer-groups','projects','discounts'):kind>"
CREATE_GROUP = "POST /api/v1/staff/customer-groups"
CHANGE_GROUP = "PATCH /api/v1/staff/customer-groups/<uuid:group_id>"
REMOVE_GROUP = "DELETE /api/v1/staff/customer-groups/<uuid:group_id>"
CREATE_DISCOUNT = "POST /api/v1/staff/discounts"
CHANGE_DISCOUNT = "PATCH /api/v1/staff/discounts/<uuid:discount_id>"
END_DISCOUNT = "DELETE /api/v1/staff/discounts/<uuid:discount_id>"
CREATE_PROJECT = "POST /api/v1/staff/projects"
CHANGE_PROJECT = "PATCH /api/v1/staff/projects/<uuid:project_id>"
REMOVE_PROJECT = "DELETE /api/v1/staff/projects/<uuid:project_id>"
TERMS = ("renew_days_before", "suspend_after_days", "terminate_after_days")
# what the project form changes besides the days (its seller and credit rule stay)
PROJECT_DETAILS = ("name", "sender_email", "sender_name")

NOTICES = {
    "group_created": N_("The group is added."),
    "group_saved": N_("The group is saved."),
    "group_removed": N_("The group is removed."),
    "discount_created": N_("The discount is added."),
    "discount_saved": N_("The discount is saved."),
    "discount_ended": N_("The discount has ended."),
    "project_created": N_("The project is added."),
    "project_saved": N_("The project is saved."),
    "project_removed": N_("The project is removed."),
}


def _notice(call: PageCall) -> str | None:
    notice = NOTICES.get(call.request.args.get("done", ""))
    return call.gettext(notice) if notice else None


def has_ended(discount: dict) -> bool:
    """The discount's validity ended before now (by the gateway's clock)."""
    end = discount.get("valid_to")
    return bool(end) and datetime.fromisoformat(end.replace("Z", "+00:00")) <= clock.now()


def _listing(call: PageCall, kind: str) -> dict:
    number, size = call.page_args(PAGE_SIZE)
    return call.services.customers.list_kind(kind, number, size)


def _required(call: PageCall, values: dict, errors: FormErrors, *names: str) -> None:
    for name in names:
        if not values[name] and name not in errors:
            errors.add(name, call.gettext("Fill this in."))


def _day(text: str, end: bool = False) -> str | None:
    """A date from a date field as the start (or, `end`, the end) of that day in UTC."""
    if not text:
        return None
    day = datetime.strptime(text, "%Y-%m-%d").date()
    moment = datetime.combine(day, time.max if end else time.min, tzinfo=UTC)
    return moment.replace(microsecond=0).isoformat()


class StaffDirectoryPages:
    """Mixed into GatewayService."""

    # -- groups --

    @page("GET", "/staff/groups", staff=LIST)
    def web_staff_groups(self, call: PageCall):
        return _groups(call, {"name": "", "description": ""}, FormErrors(), _notice(call))

    @page("POST", "/staff/groups", staff=CREATE_GROUP)
    def web_staff_group_create(self, call: PageCall):
        values, errors = call.form("name", "description")
        _required(call, values, errors, "name")
        if not errors:
            try:
                group = call.services.customers.create("group", values)
            except ValidationFailed as exc:
                errors = call.service_errors(exc, errors)
            else:
                return call.redirect(f"/staff/groups/{group['id']}", done="group_created")
        return _groups(call, values, errors, None, status=400)

    @page("GET", "/staff/groups/<uuid:group_id>", staff=LIST)
    def web_staff_group(self, call: PageCall):
        group = _entry(call, "group", "group_id")
        return _group(call, group, dict(group), FormErrors(), _notice(call))

    @page("POST", "/staff/groups/<uuid:group_id>", staff=CHANGE_GROUP)
    def web_staff_group_change(self, call: PageCall):
        group = _entry(call, "group", "group_id")
        values, errors = call.form("name", "description")
        _required(call, values, errors, "name")
        if not errors:
            try:
                call.services.customers.change_group(group["id"], values)
            except ValidationFailed as exc:
                errors = call.service_errors(exc, errors)
            else:
                return call.redirect(f"/staff/groups/{group['id']}", done="group_saved")
        return _group(call, group, values, errors, None, status=400)

    @page("POST", "/staff/groups/<uuid:group_id>/remove", staff=REMOVE_GROUP)
    def web_staff_group_remove(self, call: PageCall):
        group = _entry(call, "group", "group_id")
        try:
            call.services.customers.remove_group(group["id"])
        except Conflict:
            errors = FormErrors().add(
                "_form",
                call.gettext("Customers are in this group: take them out of it first."),
            )
            return _group(call, group, dict(group), errors, None, status=409)
        return call.redirect("/staff/groups", done="group_removed")

    # -- discounts --

    @page("GET", "/staff/discounts", staff=LIST)
    def web_staff_discounts(self, call: PageCall):
        groups = call.services.customers.list_kind("group", 1, 200)["items"]
        discounts = _listing(call, "discount")
        # whose customer was deleted: those stay as they were, read-only
        owners = {d["customer_id"] for d in discounts["items"] if d["customer_id"]}
        asked = {i: call.services.customers.customer_record.call_async(i) for i in owners}
        deleted = set()
        for owner, reply in asked.items():
            try:
                if reply.result()["deleted"]:
                    deleted.add(owner)
            except NotFound:
                continue
        return call.render(
            "staff/discounts.html",
            discounts=discounts,
            groups={g["id"]: g["name"] for g in groups},
            ended={d["id"] for d in discounts["items"] if has_ended(d)},
            deleted_owners=deleted,
            notice=_notice(call),
        )

    @page("GET", "/staff/discounts/new", staff=CREATE_DISCOUNT)
    def web_staff_discount_new(self, call: PageCall):
        values = {"name": "", "kind": "percentage", "percent": "", "amount": "", "currency": ""}
        values.update(owner="", valid_from="", valid_to="")
        return _discount_form(call, None, values, FormErrors())

    @page("POST", "/staff/discounts/new", staff=CREATE_DISCOUNT)
    def web_staff_discount_create(self, call: PageCall):
        names = ("name", "kind", "percent", "amount", "currency", "owner")
        values, errors = call.form(*names, "valid_from", "valid_to")
        _required(call, values, errors, "name", "owner")
        payload = {"name": values["name"], "kind": values["kind"]}
        if values["kind"] == "percentage":
            _required(call, values, errors, "percent")
            payload["percent"] = values["percent"].replace(",", ".")
        elif values["kind"] == "fixed":
            _required(call, values, errors, "amount", "currency")
            currency = values["currency"].upper()
            amount = parse_amount(values["amount"], currency, call.language) if currency else None
            if values["amount"] and currency and amount is None:
                errors.add("amount", call.gettext("Write the amount like 9.99."))
            payload["amount"] = {"amount": amount, "currency": currency}
        else:
            errors.add("kind", call.gettext("Choose a kind of discount."))
        owner_kind, _colon, owner_id = values["owner"].partition(":")
        if owner_kind in ("customer", "group") and owner_id:
            payload[f"{owner_kind}_id"] = owner_id
        _dates(call, values, errors, payload)
        if not errors:
            try:
                discount = call.services.customers.create("discount", payload)
            except ValidationFailed as exc:
                errors = call.service_errors(
                    exc, errors, {"customer_id": N_("Check this value: it was not accepted.")}
                )
            else:
                return call.redirect(f"/staff/discounts/{discount['id']}", done="discount_created")
        return _discount_form(call, None, values, errors, status=400)

    @page("GET", "/staff/discounts/<uuid:discount_id>", staff=LIST)
    def web_staff_discount(self, call: PageCall):
        discount = _entry(call, "discount", "discount_id")
        return _discount_form(
            call, discount, _discount_values(discount), FormErrors(), _notice(call)
        )

    @page("POST", "/staff/discounts/<uuid:discount_id>", staff=CHANGE_DISCOUNT)
    def web_staff_discount_change(self, call: PageCall):
        discount = _entry(call, "discount", "discount_id")
        values, errors = call.form("name", "valid_from", "valid_to")
        _required(call, values, errors, "name")
        payload = {"name": values["name"]}
        _dates(call, values, errors, payload, keep_empty=True)
        if not errors:
            try:
                call.services.customers.change_discount(discount["id"], payload)
            except ValidationFailed as exc:
                errors = call.service_errors(
                    exc, errors, {"valid_to": N_("It must end after it starts.")}
                )
            except Conflict:
                return _discount_kept(call, discount)
            else:
                return call.redirect(f"/staff/discounts/{discount['id']}", done="discount_saved")
        return _discount_form(call, discount, values, errors, status=400)

    @page("POST", "/staff/discounts/<uuid:discount_id>/end", staff=END_DISCOUNT)
    def web_staff_discount_end(self, call: PageCall):
        discount = _entry(call, "discount", "discount_id")
        try:
            call.services.customers.end_discount(discount["id"])
        except Conflict:
            return _discount_kept(call, discount)
        return call.redirect(f"/staff/discounts/{discount['id']}", done="discount_ended")

    # -- projects --

    @page("GET", "/staff/projects", staff=LIST)
    def web_staff_projects(self, call: PageCall):
        return call.render(
            "staff/projects.html", projects=_listing(call, "project"), notice=_notice(call)
        )

    @page("GET", "/staff/projects/new", staff=CREATE_PROJECT)
    def web_staff_project_new(self, call: PageCall):
        values = dict.fromkeys(("name", "sender_email", "sender_name", *TERMS), "")
        return _project_form(call, None, dict(values, allow_credit=False), FormErrors())

    @page("POST", "/staff/projects/new", staff=CREATE_PROJECT)
    def web_staff_project_create(self, call: PageCall):
        values, errors = call.form("name", "sender_email", "sender_name", *TERMS)
        values["allow_credit"] = call.request.form.get("allow_credit") == "1"
        _required(call, values, errors, "name", "sender_email")
        payload = {k: values[k] for k in ("name", "sender_email", "sender_name")}
        payload.update(_terms(call, values, errors), allow_credit=values["allow_credit"])
        if not errors:
            try:
                project = call.services.customers.create("project", payload)
            except ValidationFailed as exc:
                errors = call.service_errors(exc, errors)
            else:
                return call.redirect(f"/staff/projects/{project['id']}", done="project_created")
        return _project_form(call, None, values, errors, status=400)

    @page("GET", "/staff/projects/<uuid:project_id>", staff=LIST)
    def web_staff_project(self, call: PageCall):
        project = _entry(call, "project", "project_id")
        values = {k: "" if project[k] is None else str(project[k]) for k in TERMS}
        values.update({k: project[k] or "" for k in PROJECT_DETAILS})
        return _project_form(call, project, values, FormErrors(), _notice(call))

    @page("POST", "/staff/projects/<uuid:project_id>", staff=CHANGE_PROJECT)
    def web_staff_project_change(self, call: PageCall):
        project = _entry(call, "project", "project_id")
        values, errors = call.form(*PROJECT_DETAILS, *TERMS)
        _required(call, values, errors, "name", "sender_email")
        payload = {k: values[k] for k in PROJECT_DETAILS}
        payload.update(_terms(call, values, errors))
        if not errors:
            try:
                call.services.customers.change_project(project["id"], payload)
            except ValidationFailed as exc:
                errors = call.service_errors(
                    exc,
                    errors,
                    {
                        "terminate_after_days": N_("Termination cannot come before suspension."),
                        "sender_email": N_("Enter an e-mail address such as name@example.com."),
                    },
                )
            else:
                return call.redirect(f"/staff/projects/{project['id']}", done="project_saved")
        return _project_form(call, project, values, errors, status=400)

    @page("POST", "/staff/projects/<uuid:project_id>/remove", staff=REMOVE_PROJECT)
    def web_staff_project_remove(self, call: PageCall):
        project = _entry(call, "project", "project_id")
        try:
            call.services.customers.remove_project(project["id"])
        except Conflict as exc:
            held = exc.fields or {}
            customers = int((held.get("customers") or ["0"])[0])
            products = int((held.get("products") or ["0"])[0])
            errors = FormErrors()
            if customers:
                errors.add(
                    "_form",
                    call.ngettext(
                        "%(num)d customer is in this project: move it to another project first.",
                        "%(num)d customers are in this project: move them to another project "
                        "first.",
                        customers,
                    ),
                )
            if products:
                errors.add(
                    "_form",
                    call.ngettext(
                        "%(num)d product of the catalog belongs to this project: move it to "
                        "another project first.",
                        "%(num)d products of the catalog belong to this project: move them to "
                        "another project first.",
                        products,
                    ),
                )
            values = {k: "" if project[k] is None else str(project[k]) for k in TERMS}
            values.update({k: project[k] or "" for k in PROJECT_DETAILS})
            return _project_form(call, project, values, errors, status=409)
        return call.redirect("/staff/projects", done="project_removed")


def _entry(call: PageCall, kind: str, key: str) -> dict:
    return call.services.customers.directory_entry(kind, str(call.path[key]))


def _groups(call: PageCall, values: dict, errors: FormErrors, notice, status: int = 200):
    return call.render(
        "staff/groups.html",
        status=status,
        groups=_listing(call, "group"),
        values=values,
        errors=errors,
        notice=notice,
    )


def _group(call: PageCall, group: dict, values: dict, errors, notice, status: int = 200):
    return call.render(
        "staff/groups_edit.html",
        status=status,
        group=group,
        values=values,
        errors=errors,
        notice=notice,
    )


def _dates(call, values: dict, errors: FormErrors, payload: dict, keep_empty=False) -> None:
    """`valid_from` and `valid_to` from date fields (the whole of the last day counts);
    `keep_empty`: an empty one is sent as no bound."""
    for name in ("valid_from", "valid_to"):
        try:
            moment = _day(values[name], end=name == "valid_to")
        except ValueError:
            errors.add(name, call.gettext("Choose a date."))
            continue
        if moment is not None or keep_empty:
            payload[name] = moment


def _terms(call: PageCall, values: dict, errors: FormErrors) -> dict:
    """The renewal and dunning days typed (empty: the system default)."""
    terms = {}
    for name in TERMS:
        text = values[name]
        if not text:
            terms[name] = None
        elif text.isdigit() and int(text) <= 3650:
            terms[name] = int(text)
        else:
            errors.add(name, call.gettext("A number of days, from 0 to 3650."))
    return terms


def _discount_values(discount: dict) -> dict:
    return {
        "name": discount["name"],
        "valid_from": (discount["valid_from"] or "")[:10],
        "valid_to": (discount["valid_to"] or "")[:10],
    }


def _discount_kept(call: PageCall, discount: dict):
    """A discount of a deleted customer: the change was refused, it stays as it was."""
    errors = FormErrors().add(
        "_form",
        call.gettext(
            "The customer this discount was given to was deleted: the discount stays as it was."
        ),
    )
    return _discount_form(call, discount, _discount_values(discount), errors, status=409)


def _owner_deleted(call: PageCall, discount: dict | None) -> bool:
    """The discount was given to a customer that was deleted (it is read-only)."""
    if not discount or not discount.get("customer_id"):
        return False
    try:
        return bool(call.services.customers.customer_record(discount["customer_id"])["deleted"])
    except NotFound:
        return False


def _discount_form(call: PageCall, discount, values: dict, errors, notice=None, status=200):
    groups = call.services.customers.list_kind("group", 1, 200)["items"]
    owners = [(f"group:{g['id']}", g["name"]) for g in groups]
    filtered = call.filtered_customer
    if filtered:
        owners.insert(0, (f"customer:{filtered['id']}", f"{filtered['number']} {filtered['name']}"))
    return call.render(
        "staff/discounts_edit.html",
        status=status,
        discount=discount,
        values=values,
        errors=errors,
        notice=notice,
        owners=owners,
        groups={g["id"]: g["name"] for g in groups},
        ended=bool(discount) and has_ended(discount),
        owner_deleted=_owner_deleted(call, discount),
    )


def _project_form(call: PageCall, project, values: dict, errors, notice=None, status=200):
    return call.render(
        "staff/projects_edit.html",
        status=status,
        project=project,
        values=values,
        errors=errors,
        notice=notice,
    )
