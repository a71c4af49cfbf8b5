"""The staff panel's customers: the list with every filter of the API, a customer's card,
editing and correcting it, deleting it, registering a new one, and correcting its
personal account.

The same customers commands as `/api/v1/staff/customers...` (`list_customers`,
`edit_customer`, `delete_customer`, `register_customer`), each page allowing the roles of
its route. The card asks every service for its small panel at once (the RPCs of the
routes its links lead to: billing's lists and account, orders' services, the helpdesk's
tickets and penalty points), each panel shown to the roles that may read its list; its
"History" opens the customer's audit history (gateway/web/staff/history.py: every change
of the customer and of what concerns it, from every service, with who made it and why)
for the roles that may read it. A deleted customer keeps its card, read-only
and marked deleted (`customer_record`), with the discounts it was given, which are
given to nothing new. Staff who may send a client its password reset link
(`POST /staff/customers/<id>/password-reset`, gateway/web/staff/accounts.py) find the
button on the card; the card then says whether it went.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from uuid import UUID

from babel import Locale

from contracts.customers import CORRECTIONS, CUSTOMER_KINDS, CUSTOMER_SORTS, LANGUAGES
from contracts.errors import Conflict, HostledgerError, NotFound, ValidationFailed
from contracts.fields import countries
from gateway.web.client.finances import MAX_AMOUNT, parse_amount
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page
from gateway.web.staff.directory import has_ended

ROWS = 20
PANEL_ROWS = 5

LIST = "GET /api/v1/staff/customers"
READ = "GET /api/v1/staff/customers/<uuid:customer_id>"
REGISTER = "POST /api/v1/staff/customers"
EDIT = "PATCH /api/v1/staff/customers/<uuid:customer_id>"
DELETE = "DELETE /api/v1/staff/customers/<uuid:customer_id>"
ERASE = "POST /api/v1/staff/customers/<uuid:customer_id>/erase"
IMPERSONATIONS = "GET /api/v1/staff/customers/<uuid:customer_id>/impersonations"
CORRECT_ACCOUNT = "POST /api/v1/staff/customers/<uuid:customer_id>/account/corrections"
ACCOUNT = "GET /api/v1/staff/customers/<uuid:customer_id>/account"
BILLING_LISTS = "GET /api/v1/staff/<any(invoices,payments,expenses,commissions):name>"
ORDER_LISTS = "GET /api/v1/staff/<any(orders,services):name>"
TICKETS = "GET /api/v1/staff/tickets"
PENALTY = "GET /api/v1/staff/customers/<uuid:customer_id>/penalty-points"
RESET_LINK = "POST /api/v1/staff/customers/<uuid:customer_id>/password-reset"

# the list's filters, as the form names them (dates are days; the API takes instants)
TEXT_FILTERS = ("name", "language", "sort")
ID_FILTERS = ("project_id", "group_id", "active_product_id")
ATTITUDES = ("normal", "good", "conflict")
# what the edit form sends; the corrections among them need a reason
EDIT_FIELDS = (
    "name",
    "verified_phone",
    "note",
    "attitude",
    "referral_source",
    "language",
    "affiliate_program",
    *CORRECTIONS,
)
# fields that may be emptied (sent as null)
NULLABLE = ("verified_phone", "referral_source", "affiliate_program", "company_name", "project_id")


class StaffCustomerPages:
    """Mixed into GatewayService."""

    # -- the list ---------------------------------------------------------------------------

    @page("GET", "/staff/customers", staff=LIST)
    def web_staff_customers(self, call: PageCall):
        args, errors = call.request.args, FormErrors()
        shown = {k: args.get(k, "").strip() for k in ("number", "registered_from", "registered_to")}
        shown.update({k: args.get(k, "").strip() for k in TEXT_FILTERS + ID_FILTERS})
        filters: dict = {}
        if shown["number"]:
            if shown["number"].isdigit() and len(shown["number"]) < 16:
                filters["number"] = int(shown["number"])
            else:
                errors.add("number", call.gettext("Enter a customer number (digits only)."))
        if shown["name"]:
            filters["name"] = shown["name"][:200]
        if shown["language"] in LANGUAGES:
            filters["language"] = shown["language"]
        if shown["sort"] in CUSTOMER_SORTS:
            filters["sort"] = shown["sort"]
        for name in ID_FILTERS:
            if shown[name]:
                if _is_uuid(shown[name]):
                    filters[name] = shown[name]
                else:
                    errors.add(name, call.gettext("Choose one of the list."))
        for name, end in (("registered_from", time.min), ("registered_to", time.max)):
            if shown[name]:
                try:
                    day = date.fromisoformat(shown[name])
                except ValueError:
                    errors.add(name, call.gettext("Enter a date such as 2026-01-31."))
                else:
                    filters[name] = datetime.combine(day, end, tzinfo=UTC).isoformat()
        if call.customer_filter():
            filters["customer_id"] = call.customer_filter()
        number, size = call.page_args(ROWS)
        s = call.services
        choices = {
            "projects": s.customers.list_kind.call_async("project", 1, 200),
            "groups": s.customers.list_kind.call_async("group", 1, 200),
            "products": s.orders.catalog.call_async(call.language, False, None),
        }
        listing = None
        if not errors:
            listing = s.customers.list_customers(dict(filters, page=number, page_size=size))
        choices = {k: v.result() for k, v in choices.items()}
        return call.render(
            "staff/customers.html",
            status=400 if errors else 200,
            listing=listing,
            shown=shown,
            query={k: v for k, v in shown.items() if v},
            errors=errors,
            project_options=_options(choices["projects"]["items"]),
            group_options=_options(choices["groups"]["items"]),
            product_options=_options(choices["products"]),
        )

    # -- a new customer ---------------------------------------------------------------------

    @page("GET", "/staff/customers/new", staff=REGISTER)
    def web_staff_customer_new(self, call: PageCall):
        values = {"kind": "individual", "language": call.language, "country": ""}
        return self._customer_new_page(call, values, FormErrors())

    @page("POST", "/staff/customers/new", staff=REGISTER)
    def web_staff_customer_register(self, call: PageCall):
        names = ("kind", "email", "country", "contact_person", "company_name", "project_id")
        values, errors = call.form(*names, "language", "username")
        if values["kind"] == "company" and not values["company_name"]:
            errors.add("company_name", call.gettext("A company needs its company name."))
        if errors:
            return self._customer_new_page(call, values, errors, 400)
        payload = dict({k: v for k, v in values.items() if v}, registration_ip=call.address)
        try:
            customer = call.services.customers.register_customer(payload)
        except (ValidationFailed, Conflict) as exc:
            errors = call.service_errors(exc, messages=_messages(exc))
            return self._customer_new_page(call, values, errors, exc.status)
        return call.render(
            "staff/customers_registered.html",
            registered=customer,
            credentials=customer.get("credentials"),
        )

    def _customer_new_page(self, call: PageCall, values: dict, errors: FormErrors, status=200):
        projects = call.services.customers.list_kind("project", 1, 200)["items"]
        return call.render(
            "staff/customers_new.html",
            status=status,
            values=values,
            errors=errors,
            kinds=CUSTOMER_KINDS,
            countries=country_names(call.language),
            project_options=_options(projects),
        )

    # -- the card ---------------------------------------------------------------------------

    @page("GET", "/staff/customers/<uuid:customer_id>", staff=READ)
    def web_staff_customer(self, call: PageCall):
        customer_id = str(call.path["customer_id"])
        s = call.services
        record = s.customers.customer_record(customer_id)
        asked = {
            "groups": s.customers.list_kind.call_async("group", 1, 200),
            "projects": s.customers.list_kind.call_async("project", 1, 200),
            "users": s.customers.list_users.call_async(customer_id, 1, 50),
            "payers": s.customers.list_payers.call_async(customer_id, 1, 50),
        }
        # a deleted customer's stay listed as they were (read-only, given to nothing new)
        asked["discounts"] = s.customers.list_kind.call_async("discount", 1, 50, customer_id)
        if call.can(ACCOUNT):
            asked["account"] = s.billing.get_account.call_async(
                customer_id, record["currency"], None, 1, 1
            )
        if call.can(BILLING_LISTS):
            for name in ("invoices", "payments"):
                asked[name] = s.billing.list.call_async(name, customer_id, None, 1, PANEL_ROWS)
        if call.can(ORDER_LISTS):
            asked["services"] = s.orders.list.call_async(
                "services", customer_id, 1, PANEL_ROWS, None
            )
        if call.can(TICKETS):
            asked["tickets"] = s.helpdesk.staff_tickets.call_async(
                {"customer_id": customer_id}, 1, PANEL_ROWS
            )
        if call.can(PENALTY):
            asked["standing"] = s.helpdesk.standing.call_async(customer_id)
        if call.can(IMPERSONATIONS):
            asked["impersonations"] = s.customers.impersonations.call_async(customer_id)
        answers = {}
        for name, reply in asked.items():
            try:
                answers[name] = reply.result()
            except NotFound:  # a deleted customer's, or an account never opened
                answers[name] = None
        staff_ids = set()
        deletion = record.get("deletion") or {}
        if (deletion.get("actor") or {}).get("kind") == "staff":
            staff_ids.add(deletion["actor"]["id"])
        erasure = record.get("erasure") or {}
        if (erasure.get("actor") or {}).get("kind") == "staff":
            staff_ids.add(erasure["actor"]["id"])
        for row in answers.get("impersonations") or ():
            staff_ids.add(row["staff_id"])
        staff = {m["id"]: m for m in s.customers.staff_members(sorted(staff_ids))}
        groups = {g["id"]: g for g in answers["groups"]["items"]}
        projects = {p["id"]: p for p in answers["projects"]["items"]}
        discounts = (answers.get("discounts") or {}).get("items") or []
        return call.render(
            "staff/customers_card.html",
            c=record,
            groups=[groups[g] for g in record["group_ids"] if g in groups],
            project=projects.get(record["project_id"]),
            staff=staff,
            answers=answers,
            ended_discounts={d["id"] for d in discounts if has_ended(d)},
            reset_link=RESET_LINK,
            recent_impersonations=list(reversed(answers.get("impersonations") or []))[:10],
            done=call.request.args.get("done"),
            correction_errors=FormErrors(),
            correction={},
            country_names=dict(country_names(call.language)),
        )

    @page("POST", "/staff/customers/<uuid:customer_id>/account/corrections", staff=CORRECT_ACCOUNT)
    def web_staff_customer_correct_account(self, call: PageCall):
        """A credit or (negative) a debit on the personal account, with its reason."""
        customer_id = str(call.path["customer_id"])
        customer = call.services.customers.get_customer(customer_id)
        values, errors = call.form("amount", "reason")
        minor = parse_amount(values["amount"], customer["currency"], call.language, signed=True)
        if minor is None or minor == 0 or abs(minor) > MAX_AMOUNT:
            errors.add(
                "amount", call.gettext("Enter an amount such as 10.50 or -10.50 (not zero).")
            )
        if len(values["reason"]) < 3:
            errors.add("reason", call.gettext("Say why, in a few words."))
        if not errors:
            body = {
                "amount": {"amount": minor, "currency": customer["currency"]},
                "reason": values["reason"],
            }
            try:
                call.services.billing.correct_balance(customer_id, customer["currency"], body)
            except ValidationFailed as exc:
                errors = call.service_errors(exc)
            else:
                return call.redirect(f"/staff/customers/{customer_id}", done="account")
        return call.render(
            "staff/customers_account.html",
            status=400,
            c=customer,
            correction_errors=errors,
            correction=values,
        )

    # -- editing ----------------------------------------------------------------------------

    @page("GET", "/staff/customers/<uuid:customer_id>/edit", staff=EDIT)
    def web_staff_customer_edit(self, call: PageCall):
        customer = call.services.customers.get_customer(str(call.path["customer_id"]))
        values = {k: "" if customer.get(k) is None else str(customer[k]) for k in EDIT_FIELDS}
        values["group_ids"] = list(customer["group_ids"])
        values["version"] = str(customer["version"])
        values["referrer"] = _referrer_number(call, customer)
        return self._customer_edit_page(call, customer, values, FormErrors())

    @page("POST", "/staff/customers/<uuid:customer_id>/edit", staff=EDIT)
    def web_staff_customer_save(self, call: PageCall):
        customer_id = str(call.path["customer_id"])
        customer = call.services.customers.get_customer(customer_id)
        values, errors = call.form(*EDIT_FIELDS, "reason", "version", "referrer")
        values["group_ids"] = [g for g in call.request.form.getlist("group_ids") if _is_uuid(g)]
        changes: dict = {}
        for name in EDIT_FIELDS:
            now = customer.get(name)
            if values[name] != ("" if now is None else str(now)):
                changes[name] = values[name] or (None if name in NULLABLE else "")
        if values["referrer"] != _referrer_number(call, customer):
            # the referring customer, by its number (the list finds it)
            referrer = None
            if values["referrer"].isdigit() and len(values["referrer"]) < 16:
                found = call.services.customers.list_customers(
                    {"number": int(values["referrer"]), "page": 1, "page_size": 1}
                )["items"]
                referrer = found[0]["id"] if found else None
            if values["referrer"] and referrer is None:
                errors.add("referrer", call.gettext("No customer has this number."))
            elif referrer == customer_id:
                errors.add("referrer", call.gettext("A customer cannot refer itself."))
            else:
                changes["referrer_id"] = referrer
        if sorted(values["group_ids"]) != sorted(customer["group_ids"]):
            changes["group_ids"] = values["group_ids"]
        corrected = set(CORRECTIONS) & set(changes)
        if corrected and not values["reason"]:
            errors.add("reason", call.gettext("Say why you correct this: it is recorded."))
        kind = changes.get("kind", customer["kind"])
        if kind == "company" and not changes.get("company_name", customer["company_name"]):
            errors.add("company_name", call.gettext("A company needs its company name."))
        if values["country"] and values["country"] not in countries():
            errors.add("country", call.gettext("Choose a country of the list."))
        if errors:
            return self._customer_edit_page(call, customer, values, errors, 400)
        if not changes:
            return call.redirect(f"/staff/customers/{customer_id}", done="unchanged")
        if corrected:
            changes["reason"] = values["reason"]
        if values["version"].isdigit():
            changes["version"] = int(values["version"])
        try:
            call.services.customers.edit_customer(customer_id, changes)
        except (ValidationFailed, Conflict) as exc:
            errors = call.service_errors(exc, messages=_messages(exc))
            if "version" in (exc.fields or {}):
                errors = FormErrors().add(
                    "_form",
                    call.gettext(
                        "Someone changed this customer while you were editing: "
                        "check the values below and save again."
                    ),
                )
                fresh = call.services.customers.get_customer(customer_id)
                values["version"] = str(fresh["version"])
            return self._customer_edit_page(call, customer, values, errors, exc.status)
        return call.redirect(f"/staff/customers/{customer_id}", done="saved")

    def _customer_edit_page(
        self, call: PageCall, customer: dict, values: dict, errors: FormErrors, status=200
    ):
        s = call.services
        asked = {
            "projects": s.customers.list_kind.call_async("project", 1, 200),
            "groups": s.customers.list_kind.call_async("group", 1, 200),
            "programs": s.billing.programs.call_async(),
        }
        answers = {k: v.result() for k, v in asked.items()}
        programs = _options(answers["programs"])
        if values["affiliate_program"] and values["affiliate_program"] not in dict(programs):
            # a program recorded by its name before programs had ids: kept as it is
            programs.append((values["affiliate_program"], values["affiliate_program"]))
        return call.render(
            "staff/customers_edit.html",
            status=status,
            c=customer,
            values=values,
            errors=errors,
            kinds=CUSTOMER_KINDS,
            attitudes=ATTITUDES,
            countries=country_names(call.language),
            project_options=_options(answers["projects"]["items"]),
            groups=sorted(answers["groups"]["items"], key=lambda g: g["name"].lower()),
            program_options=programs,
        )

    # -- deleting ---------------------------------------------------------------------------

    @page("GET", "/staff/customers/<uuid:customer_id>/delete", staff=DELETE)
    def web_staff_customer_delete_page(self, call: PageCall):
        customer = call.services.customers.get_customer(str(call.path["customer_id"]))
        return call.render(
            "staff/customers_delete.html", c=customer, errors=FormErrors(), values={}
        )

    @page("POST", "/staff/customers/<uuid:customer_id>/delete", staff=DELETE)
    def web_staff_customer_delete(self, call: PageCall):
        customer_id = str(call.path["customer_id"])
        customer = call.services.customers.get_customer(customer_id)
        values, errors = call.form("reason")
        force = call.request.form.get("force") == "1" and call.principal.get("role") == "admin"
        if not values["reason"]:
            errors.add("reason", call.gettext("Say why the customer is deleted: it is recorded."))
        refusal = None
        if not errors:
            try:
                call.services.customers.delete_customer(customer_id, force, values["reason"][:500])
            except Conflict:
                refusal = self._why_not_deleted(call, customer)
            else:
                return call.redirect(f"/staff/customers/{customer_id}", done="deleted")
        return call.render(
            "staff/customers_delete.html",
            status=409 if refusal else 400,
            c=customer,
            errors=errors,
            values=values,
            refusal=refusal,
            force=force,
        )

    # -- erasing a deleted customer's personal data ----------------------------------------

    def _erasable(self, call: PageCall) -> dict | None:
        """The deleted customer whose data may be erased; None when it is not deleted or
        already erased (its card, where the page sends the person, says which)."""
        record = call.services.customers.customer_record(str(call.path["customer_id"]))
        if not record["deleted"] or record.get("erasure"):
            return None
        return record

    @page("GET", "/staff/customers/<uuid:customer_id>/erase", staff=ERASE)
    def web_staff_customer_erase_page(self, call: PageCall):
        customer = self._erasable(call)
        if customer is None:
            return call.redirect(f"/staff/customers/{call.path['customer_id']}")
        return call.render("staff/customers_erase.html", c=customer, errors=FormErrors(), values={})

    @page("POST", "/staff/customers/<uuid:customer_id>/erase", staff=ERASE)
    def web_staff_customer_erase(self, call: PageCall):
        """Erase, with a reason and the box ticked that says it cannot be undone."""
        customer = self._erasable(call)
        if customer is None:  # sent twice, or from a page left open: the card says why
            return call.redirect(f"/staff/customers/{call.path['customer_id']}")
        values, errors = call.form("reason")
        if not values["reason"]:
            errors.add("reason", call.gettext("Say why the data is erased: it is recorded."))
        elif len(values["reason"]) > 1000:
            errors.add("reason", call.gettext("At most 1000 characters."))
        elif "\n" in values["reason"] or "\r" in values["reason"]:
            errors.add("reason", call.gettext("One line only."))
        if call.request.form.get("confirm") != "1":
            errors.add("confirm", call.gettext("Tick this to confirm: it cannot be undone."))
        if not errors:
            try:
                call.services.customers.erase_customer(customer["id"], values["reason"])
            except ValidationFailed as exc:
                call.service_errors(exc, errors)
            else:
                return call.redirect(f"/staff/customers/{customer['id']}", done="erased")
        return call.render(
            "staff/customers_erase.html", status=400, c=customer, errors=errors, values=values
        )

    def _why_not_deleted(self, call: PageCall, customer: dict) -> dict:
        """What keeps the customer from being deleted, in the page's language: its
        active services and a personal account not at zero."""
        s = call.services
        services = s.orders.list.call_async("services", customer["id"], 1, 1, "active")
        try:
            account = s.billing.get_account(customer["id"], customer["currency"], None, 1, 1)
        except NotFound:
            account = None
        return {
            "active_services": services.result()["total"],
            "balance": account["balance"] if account and account["balance"]["amount"] else None,
        }


def country_names(language: str) -> list[tuple[str, str]]:
    """Every ISO 3166-1 alpha-2 country, (code, name in `language`), by name."""
    names = Locale.parse(language).territories
    codes = countries()
    return sorted(((c, names.get(c, c)) for c in codes), key=lambda pair: pair[1])


def _messages(exc: HostledgerError) -> dict:
    """The form's own sentences for the service's refusals it knows (msgids)."""
    fields = exc.fields or {}
    messages = {}
    if "email" in fields:
        taken = any("already exists" in str(p) for p in fields["email"])
        messages["email"] = (
            N_("An account with this e-mail already exists.")
            if taken
            else N_("Enter an e-mail address such as name@example.com.")
        )
    if "company_name" in fields:
        messages["company_name"] = N_("A company needs its company name.")
    if "country" in fields:
        messages["country"] = N_("Choose a country of the list.")
    if "username" in fields:
        messages["username"] = N_(
            "This username is taken, or not 3 to 64 letters, digits and . _ @ + -."
        )
    return messages


def _referrer_number(call: PageCall, customer: dict) -> str:
    """The number of the customer that referred `customer`, as the form shows it."""
    if not customer.get("referrer_id"):
        return ""
    try:
        return str(call.services.customers.customer_record(customer["referrer_id"])["number"])
    except NotFound:
        return ""


def _options(items: list[dict]) -> list[tuple[str, str]]:
    """(id, name) of each, by name: a select's options."""
    return sorted(((i["id"], i["name"]) for i in items), key=lambda pair: pair[1].lower())


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True
