"""The client's settings: an index, contact details and e-mail, password, the account's
users, payers, notifications, language and style, favourite pages.

The same customers-service calls as the API's client routes, with their permissions:
contact details, notifications and users need `full` (the owner has it); payers
`billing`; the password and the e-mail are the owner's own (a user changes neither).
Style and favourite pages belong to each person (the owner, or each user) and need no
permission. Changing the language or the style answers with a whole page
(hx-boost="false"), since <html lang> and data-theme change with it.
"""

from __future__ import annotations

import re
from functools import cache

from babel import Locale

from contracts.customers import (
    MAX_FAVOURITES,
    PAYER_KINDS,
    THEMES,
    USER_PERMISSIONS,
    is_client_area_path,
)
from contracts.errors import Conflict, InvalidCredentials, NotFound, RateLimited, ValidationFailed
from contracts.fields import countries, text_problem
from gateway.web import i18n
from gateway.web.client.auth import PASSWORD_MAX, PASSWORD_MIN, _try_later
from gateway.web.i18n import N_
from gateway.web.pages import FormErrors, PageCall, page

PHONE = re.compile(r"^\+?[0-9 ()-]{5,32}$")
USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{3,64}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CONFIRM_URL = "/settings/email/confirm"


@cache
def country_options(language: str) -> list[tuple[str, str]]:
    """(code, name in `language`) of every country the contracts accept, by name."""
    names = Locale.parse(language).territories
    return sorted(((code, names.get(code, code)) for code in countries()), key=lambda item: item[1])


def _address(call: PageCall, errors: FormErrors, name: str, most: int) -> str:
    """A text of several lines as typed: newlines kept, only the ends trimmed."""
    text = call.request.form.get(name, "").replace("\r\n", "\n").strip()
    if text_problem(text, multiline=True):
        errors.add(name, call.gettext("Use letters, digits and punctuation only."))
        return ""
    if len(text) > most:
        errors.add(name, call.gettext("At most %(max)d characters.", max=most))
    return text


def _acting_refusal(call: PageCall, errors: FormErrors) -> bool:
    """Staff acting in the client's area may look and help, not take the account over (the
    customers service refuses it too): the form says so, instead of a bare error page."""
    if not (call.principal or {}).get("impersonator"):
        return False
    errors.add(
        "_form",
        call.gettext(
            "Staff acting as the client may not do this: only the client can, logged in as itself."
        ),
    )
    return True


def _email_ok(address: str) -> bool:
    return len(address) <= 254 and bool(EMAIL.match(address))


class SettingsPages:
    """Mixed into GatewayService."""

    # -- the index ---------------------------------------------------------------------------

    @page("GET", "/settings", client=True)
    def web_settings(self, call: PageCall):
        return call.render("client/settings.html")

    # -- contact details and e-mail ------------------------------------------------------------

    @page("GET", "/settings/profile", client=True)
    def web_settings_profile(self, call: PageCall):
        notice = {
            "saved": call.gettext("Your contact details are saved."),
            "email_sent": call.gettext(
                "We sent a link to the new address: your e-mail changes once you open it."
            ),
            "email_changed": call.gettext("Your e-mail address is changed."),
        }.get(call.request.args.get("done", ""))
        return _profile_page(call, _profile_values(call.customer), FormErrors(), notice=notice)

    @page("POST", "/settings/profile", client=True, permissions=("full",))
    def web_settings_profile_save(self, call: PageCall):
        values, errors = call.form("contact_person", "phone", "version")
        values["address"] = _address(call, errors, "address", 500)
        if not values["contact_person"]:
            errors.add("contact_person", call.gettext("Enter the contact person's name."))
        elif len(values["contact_person"]) > 200:
            errors.add("contact_person", call.gettext("At most %(max)d characters.", max=200))
        if values["phone"] and not PHONE.match(values["phone"]):
            errors.add(
                "phone",
                call.gettext("A phone number: digits, spaces and + ( ) - only (5 to 32)."),
            )
        if errors:
            return _profile_page(call, values, errors, status=400)
        changes = {
            "contact_person": values["contact_person"],
            "phone": values["phone"] or None,
            "address": values["address"] or None,
        }
        if values["version"].isdigit():
            changes["version"] = int(values["version"])
        try:
            call.services.customers.edit_profile(call.customer_id, changes)
        except Conflict:
            errors.add(
                "_form",
                call.gettext(
                    "Your details were changed elsewhere meanwhile: check them and save again."
                ),
            )
            fresh = call.services.customers.get_customer(call.customer_id)
            values["version"] = str(fresh["version"])
            return _profile_page(call, values, errors, status=409)
        except ValidationFailed as exc:
            call.service_errors(exc, errors)
            return _profile_page(call, values, errors, status=400)
        return call.redirect("/settings/profile", done="saved")

    @page("POST", "/settings/profile/email", client=True)
    def web_settings_email(self, call: PageCall):
        values, errors = call.form("email", "current_password")
        if call.principal.get("user_id"):
            errors.add("_form", call.gettext("Only the account's owner changes its e-mail."))
            return _profile_page(call, _profile_values(call.customer), errors, status=403)
        if _acting_refusal(call, errors):
            return _profile_page(call, _profile_values(call.customer), errors, status=403)
        if not _email_ok(values["email"]):
            errors.add("email", call.gettext("Enter an e-mail address such as name@example.com."))
        if not values["current_password"]:
            errors.add("current_password", call.gettext("Enter your current password."))
        if not errors:
            try:
                call.services.customers.request_email_change(call.customer_id, values)
            except InvalidCredentials:
                errors.add("current_password", call.gettext("The current password is wrong."))
            except Conflict:
                errors.add("email", call.gettext("Another account has this e-mail address."))
            except RateLimited as exc:
                errors.add("_form", _try_later(call, exc))
            except ValidationFailed as exc:
                call.service_errors(
                    exc,
                    errors,
                    {"email": N_("This is your e-mail address already.")}
                    if "already" in str(exc).lower()
                    else None,
                )
        if errors:
            return _profile_page(
                call,
                _profile_values(call.customer),
                errors,
                status=429 if "_form" in errors else 400,
                email_values={"email": values["email"]},
            )
        return call.redirect("/settings/profile", done="email_sent")

    @page("GET", CONFIRM_URL, client=True)
    def web_settings_email_confirm_page(self, call: PageCall):
        token = call.request.args.get("token", "")
        pending = call.services.customers.pending_email_change(call.customer_id)
        return _confirm_page(call, token, pending, FormErrors())

    @page("POST", CONFIRM_URL, client=True)
    def web_settings_email_confirm(self, call: PageCall):
        values, errors = call.form("token")
        if call.principal.get("user_id"):
            errors.add("_form", call.gettext("Only the account's owner changes its e-mail."))
        elif not _acting_refusal(call, errors):
            try:
                call.services.customers.confirm_email_change(call.customer_id, values)
                return call.redirect("/settings/profile", done="email_changed")
            except ValidationFailed:
                errors.add("_form", _link_not_valid(call))
            except Conflict:
                errors.add("_form", call.gettext("Another account has this e-mail address."))
        pending = call.services.customers.pending_email_change(call.customer_id)
        return _confirm_page(call, values["token"], pending, errors, status=400)

    # -- password ------------------------------------------------------------------------------

    @page("GET", "/settings/password", client=True)
    def web_settings_password(self, call: PageCall):
        done = call.request.args.get("done") == "changed"
        return _password_page(call, FormErrors(), changed=done)

    @page("POST", "/settings/password", client=True)
    def web_settings_password_save(self, call: PageCall):
        values, errors = call.form("current_password", "new_password", "confirm_password")
        if call.principal.get("user_id"):
            return _password_page(call, errors, status=403)
        if _acting_refusal(call, errors):
            return _password_page(call, errors, status=403)
        password = values["new_password"]
        if not values["current_password"]:
            errors.add("current_password", call.gettext("Enter your current password."))
        if len(password) < PASSWORD_MIN:
            errors.add(
                "new_password", call.gettext("At least %(min)d characters.", min=PASSWORD_MIN)
            )
        elif len(password) > PASSWORD_MAX:
            errors.add(
                "new_password", call.gettext("At most %(max)d characters.", max=PASSWORD_MAX)
            )
        if values["confirm_password"] != password:
            errors.add("confirm_password", call.gettext("The two passwords differ."))
        if errors:
            return _password_page(call, errors, status=400)
        try:
            call.services.customers.change_password(
                call.customer_id,
                {"current_password": values["current_password"], "new_password": password},
                call.token,
            )
        except InvalidCredentials:
            errors.add("current_password", call.gettext("The current password is wrong."))
            return _password_page(call, errors, status=400)
        except RateLimited as exc:
            errors.add("_form", _try_later(call, exc))
            return _password_page(call, errors, status=429)
        except ValidationFailed:
            errors.add("new_password", call.gettext("Choose another password."))
            return _password_page(call, errors, status=400)
        return call.redirect("/settings/password", done="changed")

    # -- the account's users -------------------------------------------------------------------

    @page("GET", "/settings/users", client=True, permissions=("full",))
    def web_settings_users(self, call: PageCall):
        notice = {
            "added": call.gettext("The user is added: give them their username and password."),
            "removed": call.gettext("The user is removed and can no longer log in."),
        }.get(call.request.args.get("done", ""))
        values = {"username": "", "name": "", "email": "", "permissions": []}
        return _users_page(call, values, FormErrors(), notice=notice)

    @page("POST", "/settings/users", client=True, permissions=("full",))
    def web_settings_users_add(self, call: PageCall):
        values, errors = call.form("username", "name", "email", "password", "confirm_password")
        permissions = [p for p in call.request.form.getlist("permissions") if p in USER_PERMISSIONS]
        values["permissions"] = permissions
        if _acting_refusal(call, errors):
            return _users_page(call, values, errors, status=403)
        if not USERNAME.match(values["username"]):
            errors.add(
                "username",
                call.gettext("3 to 64 letters, digits and . _ @ + - only."),
            )
        if not values["name"]:
            errors.add("name", call.gettext("Enter the user's name."))
        elif len(values["name"]) > 200:
            errors.add("name", call.gettext("At most %(max)d characters.", max=200))
        if not _email_ok(values["email"]):
            errors.add("email", call.gettext("Enter an e-mail address such as name@example.com."))
        password = values["password"]
        if len(password) < PASSWORD_MIN:
            errors.add("password", call.gettext("At least %(min)d characters.", min=PASSWORD_MIN))
        elif len(password) > PASSWORD_MAX:
            errors.add("password", call.gettext("At most %(max)d characters.", max=PASSWORD_MAX))
        if values["confirm_password"] != password:
            errors.add("confirm_password", call.gettext("The two passwords differ."))
        if not permissions:
            errors.add("permissions", call.gettext("Choose at least one permission."))
        if errors:
            return _users_page(call, values, errors, status=400)
        payload = {k: values[k] for k in ("username", "name", "email", "password")}
        payload["permissions"] = permissions
        try:
            call.services.customers.add_user(call.customer_id, payload)
        except Conflict:
            errors.add("username", call.gettext("This username is taken."))
            return _users_page(call, values, errors, status=409)
        except ValidationFailed as exc:
            call.service_errors(exc, errors)
            return _users_page(call, values, errors, status=400)
        return call.redirect("/settings/users", done="added")

    @page("GET", "/settings/users/<uuid:user_id>/remove", client=True, permissions=("full",))
    def web_settings_user_remove_page(self, call: PageCall):
        user = call.services.customers.get_user(call.customer_id, str(call.path["user_id"]))
        return call.render("client/settings_user_remove.html", user=user)

    @page("POST", "/settings/users/<uuid:user_id>/remove", client=True, permissions=("full",))
    def web_settings_user_remove(self, call: PageCall):
        user_id = str(call.path["user_id"])
        try:
            call.services.customers.remove_user(call.customer_id, user_id)
        except NotFound:
            pass  # removed already (a second click): the list says so
        return call.redirect("/settings/users", done="removed")

    # -- payers --------------------------------------------------------------------------------

    @page("GET", "/settings/payers", client=True, permissions=("billing",))
    def web_settings_payers(self, call: PageCall):
        added = call.request.args.get("done") == "added"
        values = {k: "" for k in PAYER_FIELDS}
        values["kind"] = "company"
        values["country"] = call.customer.get("country") or ""
        return _payers_page(call, values, FormErrors(), added=added)

    @page("POST", "/settings/payers", client=True, permissions=("billing",))
    def web_settings_payers_add(self, call: PageCall):
        values, errors = call.form(
            "kind", "name", "tax_id", "registration_number", "country", "email"
        )
        values["address"] = _address(call, errors, "address", 500)
        if values["kind"] not in PAYER_KINDS:
            errors.add("kind", call.gettext("Choose who pays."))
        if not values["name"]:
            errors.add("name", call.gettext("Enter the payer's name."))
        elif len(values["name"]) > 200:
            errors.add("name", call.gettext("At most %(max)d characters.", max=200))
        for name in ("tax_id", "registration_number"):
            if len(values[name]) > 50:
                errors.add(name, call.gettext("At most %(max)d characters.", max=50))
        if not values["address"] and "address" not in errors:
            errors.add("address", call.gettext("Enter the payer's address."))
        if values["country"] not in countries():
            errors.add("country", call.gettext("Choose a country."))
        if values["email"] and not _email_ok(values["email"]):
            errors.add("email", call.gettext("Enter an e-mail address such as name@example.com."))
        if errors:
            return _payers_page(call, values, errors, status=400)
        payload = {k: values[k] or None for k in PAYER_FIELDS}
        try:
            call.services.customers.add_payer(call.customer_id, payload)
        except ValidationFailed as exc:
            call.service_errors(exc, errors)
            return _payers_page(call, values, errors, status=400)
        return call.redirect("/settings/payers", done="added")

    # -- notifications -------------------------------------------------------------------------

    @page("GET", "/settings/notifications", client=True, permissions=("full",))
    def web_settings_notifications(self, call: PageCall):
        chosen = call.services.customers.get_notification_settings(call.customer_id)
        saved = call.request.args.get("done") == "saved"
        return call.render(
            "client/settings_notifications.html",
            chosen=chosen,
            kinds=NOTIFICATION_LABELS,
            saved=saved,
        )

    @page("POST", "/settings/notifications", client=True, permissions=("full",))
    def web_settings_notifications_save(self, call: PageCall):
        ticked = set(call.request.form.getlist("notifications"))
        chosen = {kind: kind in ticked for kind, _, _ in NOTIFICATION_LABELS}
        call.services.customers.set_notification_settings(call.customer_id, chosen)
        return call.redirect("/settings/notifications", done="saved")

    # -- language and style --------------------------------------------------------------------

    @page("GET", "/settings/preferences", client=True)
    def web_settings_preferences(self, call: PageCall):
        saved = call.request.args.get("done") == "saved"
        values = {"language": call.customer.get("language"), "theme": call.personal.get("theme")}
        return _preferences_page(call, values, FormErrors(), saved=saved)

    @page("POST", "/settings/preferences", client=True)
    def web_settings_preferences_save(self, call: PageCall):
        values, errors = call.form("language", "theme")
        may_language = call.may("full")
        if may_language and values["language"] not in i18n.LANGUAGES:
            errors.add("language", call.gettext("Choose a language."))
        if values["theme"] not in THEMES:
            errors.add("theme", call.gettext("Choose a style."))
        if errors:
            return _preferences_page(call, values, errors, status=400)
        if may_language and values["language"] != call.customer.get("language"):
            call.services.customers.edit_profile(call.customer_id, {"language": values["language"]})
        if values["theme"] != call.personal.get("theme"):
            call.services.customers.set_preferences(
                call.customer_id, call.principal.get("user_id"), {"theme": values["theme"]}
            )
        return call.redirect("/settings/preferences", done="saved")

    # -- favourite pages -----------------------------------------------------------------------

    @page("GET", "/settings/favourites", client=True)
    def web_settings_favourites(self, call: PageCall):
        return call.render("client/settings_favourites.html", errors=FormErrors())

    @page("POST", "/settings/favourites", client=True)
    def web_settings_favourites_save(self, call: PageCall):
        values, errors = call.form("path", "label", "action")
        path, label = values["path"], " ".join(values["label"].split())[:100]
        favourites = [dict(f) for f in call.personal.get("favourites") or []]
        if not is_client_area_path(path):
            errors.add("_form", call.gettext("Only pages of the client area can be pinned."))
        elif values["action"] == "unpin":
            favourites = [f for f in favourites if f["path"] != path]
        elif any(f["path"] == path for f in favourites):
            pass  # pinned already (a second click)
        elif len(favourites) >= MAX_FAVOURITES:
            errors.add(
                "_form",
                call.gettext(
                    "You have %(max)d favourite pages already: unpin one first.",
                    max=MAX_FAVOURITES,
                ),
            )
        elif not label:
            errors.add("_form", call.gettext("This page cannot be pinned."))
        else:
            favourites.append({"path": path, "label": label})
        if errors:
            return call.render("client/settings_favourites.html", status=400, errors=errors)
        call._personal = call.services.customers.set_favourites(
            call.customer_id, call.principal.get("user_id"), {"pages": favourites}
        )
        back = call.request.form.get("back", "")
        return call.redirect("/settings/favourites" if back == "favourites" else path)


# -- what the pages show -----------------------------------------------------------------------

PAYER_FIELDS = ("kind", "name", "tax_id", "registration_number", "address", "country", "email")

# (kind, its label, what it is about), as the notifications page lists them
NOTIFICATION_LABELS = [
    ("invoice_issued", N_("New invoices"), N_("An invoice or a credit note is issued.")),
    ("payment_received", N_("Payments received"), N_("A payment reached your account.")),
    ("invoice_due", N_("Invoices due soon"), N_("A reminder before an invoice is due.")),
    ("invoice_overdue", N_("Overdue invoices"), N_("An invoice was not paid in time.")),
    ("service_suspended", N_("Services suspended"), N_("A service of yours was suspended.")),
    (
        "service_unsuspended",
        N_("Services back on"),
        N_("A suspended service of yours works again."),
    ),
    ("ticket_reply", N_("Support replies"), N_("Staff answered one of your tickets.")),
    ("news", N_("News"), N_("News and offers from us.")),
]


def _profile_values(customer: dict) -> dict:
    return {
        "contact_person": customer.get("contact_person") or "",
        "phone": customer.get("phone") or "",
        "address": customer.get("address") or "",
        "version": str(customer.get("version") or ""),
    }


def _profile_page(
    call: PageCall,
    values: dict,
    errors: FormErrors,
    status: int = 200,
    notice: str | None = None,
    email_values: dict | None = None,
):
    owner = not call.principal.get("user_id")
    pending = call.services.customers.pending_email_change(call.customer_id) if owner else None
    return call.render(
        "client/settings_profile.html",
        status=status,
        values=values,
        errors=errors,
        notice=notice,
        may_edit=call.may("full"),
        owner=owner,
        country_names=dict(country_options(call.language)),
        pending=pending,
        email_values=email_values or {"email": ""},
    )


def _confirm_page(
    call: PageCall, token: str, pending: dict | None, errors: FormErrors, status: int = 200
):
    if not token:
        errors.add("_form", _link_not_valid(call))
        status = 400 if status == 200 else status
    return call.render(
        "client/settings_email_confirm.html",
        status=status,
        token=token,
        pending=pending,
        errors=errors,
    )


def _link_not_valid(call: PageCall) -> str:
    return call.gettext(
        "This link is not valid any more: it was used already, it expired, a newer one was "
        "sent, or it is incomplete. Ask for the change again."
    )


def _password_page(call: PageCall, errors: FormErrors, status: int = 200, changed=False):
    return call.render(
        "client/settings_password.html",
        status=status,
        errors=errors,
        owner=not call.principal.get("user_id"),
        changed=changed,
        minimum=PASSWORD_MIN,
    )


def _users_page(call: PageCall, values: dict, errors: FormErrors, status: int = 200, notice=None):
    page_number, size = call.page_args(50)
    users = call.services.customers.list_users(call.customer_id, page_number, size)
    return call.render(
        "client/settings_users.html",
        status=status,
        users=users,
        values=values,
        errors=errors,
        notice=notice,
        minimum=PASSWORD_MIN,
    )


def _payers_page(call: PageCall, values: dict, errors: FormErrors, status=200, added=False):
    page_number, size = call.page_args(50)
    payers = call.services.customers.list_payers(call.customer_id, page_number, size)
    return call.render(
        "client/settings_payers.html",
        status=status,
        payers=payers,
        values=values,
        errors=errors,
        added=added,
        countries=country_options(call.language),
        country_names=dict(country_options(call.language)),
    )


def _preferences_page(call: PageCall, values: dict, errors: FormErrors, status=200, saved=False):
    return call.render(
        "client/settings_preferences.html",
        status=status,
        values=values,
        errors=errors,
        saved=saved,
        may_language=call.may("full"),
    )
