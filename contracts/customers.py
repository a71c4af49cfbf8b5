"""What the customers service publishes and accepts."""

from __future__ import annotations

import re
from uuid import NAMESPACE_URL, UUID, uuid5

from marshmallow import Schema, ValidationError, fields, pre_dump, validate, validates_schema

from contracts.fields import (
    Amount,
    Body,
    Country,
    Currency,
    Email,
    Json,
    Money,
    Page,
    PageSize,
    RecordedEmail,
    Text,
)
from contracts.registry import integration_event

CUSTOMER_KINDS = ("individual", "company", "sole_proprietor")
LANGUAGES = ("en", "ru", "fr")
# auditor: reads and audit only (every staff GET, nothing that changes anything)
STAFF_ROLES = ("admin", "support", "billing", "auditor")
STAFF_NOTIFICATION_KINDS = ("new_ticket", "ticket_reply", "abuse_deadline")

# a company is registered under its company name; an individual and a sole proprietor
# under the contact person's own name (the name shown: display name, company, contact)
COMPANY_NAME_NEEDED = "A company needs its company name."


def needs_company_name(kind: str | None, company_name: str | None) -> bool:
    """A customer (or its correction) of `kind` with this company name lacks one."""
    return kind == "company" and not (company_name or "").strip()


class CompanyNamed:
    """Mixed into a schema with `kind` and `company_name`: a company without a company
    name is refused, naming `company_name` (the rule corrections follow too)."""

    @validates_schema
    def _company_needs_its_name(self, data, **kwargs):
        if needs_company_name(data.get("kind"), data.get("company_name")):
            raise ValidationError(COMPANY_NAME_NEEDED, "company_name")


@integration_event("customers", "CustomerRegistered")
class CustomerRegistered(Schema):
    id_field = "customer_id"

    customer_id = fields.UUID(required=True)
    number = fields.Integer(required=True)
    kind = Text(required=True, validate=validate.OneOf(CUSTOMER_KINDS))
    email = RecordedEmail(required=True)  # `[erased]` once the customer is erased
    username = Text(required=True)
    country = Country(required=True)
    contact_person = Text(required=True)
    company_name = Text(load_default=None, allow_none=True)
    language = Text(required=True, validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(load_default=None, allow_none=True)
    currency = Currency(required=True)
    registered_at = fields.AwareDateTime(required=True, format="iso")


@integration_event("customers", "StaffRegistered")
class StaffRegistered(Schema):
    id_field = "staff_id"

    staff_id = fields.UUID(required=True)
    username = Text(required=True)
    name = Text(required=True)
    email = Email(load_default=None, allow_none=True)
    role = Text(required=True, validate=validate.OneOf(STAFF_ROLES))
    language = Text(required=True)


# ---- RPC payloads -------------------------------------------------------------------------


class RegisterCustomer(CompanyNamed, Schema):
    """`customers.register_customer`: what staff (or the order form) give to register. A
    company needs `company_name`; an individual or a sole proprietor may leave it out."""

    kind = Text(required=True, validate=validate.OneOf(CUSTOMER_KINDS))
    email = Email(required=True, validate=validate.Length(max=254))
    country = Country(required=True)
    contact_person = Text(required=True, validate=validate.Length(min=1, max=200))
    company_name = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=200),
        metadata={"description": "required for a company"},
    )
    project_id = fields.UUID(load_default=None, allow_none=True)
    language = Text(load_default="en", validate=validate.OneOf(LANGUAGES))
    currency = Currency(load_default="EUR")
    username = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9._@+-]{3,64}$",
            error="3 to 64 letters, digits and . _ @ + - only.",
        ),
    )
    password = Text(load_default=None, allow_none=True, validate=validate.Length(min=8, max=256))
    registration_ip = Text(load_default=None, allow_none=True, max_length=64)
    referral_code = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=32),
        metadata={"description": "a customer's referral code: the new customer is referred by it"},
    )
    referral_source = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=200),
        metadata={"description": "how the customer heard of us"},
    )


_OTP_DOC = (
    "the current code of the authenticator app (six digits), or a one-time recovery code; "
    "needed once two-factor authentication is on (else 401 two_factor_required)"
)
_RECOVERY_DOC = "a one-time recovery code, instead of `otp`"


def _otp(**kw):
    return Text(max_length=64, metadata={"description": _OTP_DOC}, **kw)


def _recovery(**kw):
    return Text(max_length=64, metadata={"description": _RECOVERY_DOC}, **kw)


class Login(Schema):
    username = Text(required=True, validate=validate.Length(min=1, max=254))
    password = Text(required=True, validate=validate.Length(min=1, max=1024))
    otp = _otp(load_default=None, allow_none=True)
    recovery_code = _recovery(load_default=None, allow_none=True)


# ---- two-factor authentication (TOTP) -------------------------------------------------------


class TwoFactorConfirm(Schema):
    """`POST /auth/2fa/confirm`: a current code of the secret enrolment answered."""

    otp = Text(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "the current code of the authenticator app (six digits)"},
    )


class TwoFactorCode(Schema):
    """A current code of the app (`otp`) or a recovery code (`recovery_code`, or in `otp`)."""

    otp = _otp(load_default=None, allow_none=True)
    recovery_code = _recovery(load_default=None, allow_none=True)

    @validates_schema
    def _one_of(self, data, **kwargs):
        if not data.get("otp") and not data.get("recovery_code"):
            raise ValidationError("Give the app's current code or a recovery code.", "otp")


class TwoFactorDisable(TwoFactorCode):
    """`POST /auth/2fa/disable`: the account's password and a code."""

    password = Text(required=True, validate=validate.Length(min=1, max=1024))


class TwoFactorReset(Schema):
    """`POST /staff/customers/{id}/2fa/reset`: why (recorded); `user_id` for one of the
    customer's users instead of the customer's own login."""

    reason = Body(required=True, validate=validate.Length(min=1, max=500))
    user_id = fields.UUID(load_default=None, allow_none=True)


ATTITUDES = ("normal", "good", "conflict")
USER_PERMISSIONS = ("billing", "support", "services", "full")
PAYER_KINDS = CUSTOMER_KINDS

_phone = validate.Regexp(r"^\+?[0-9 ()-]{5,32}$", error="A phone number: digits, spaces, + ( ) -.")


# what staff may correct of what a customer registered with, each time saying why
CORRECTIONS = ("email", "country", "kind", "contact_person", "company_name", "project_id")
_CORRECTION = "a correction: needs `reason`"


class EditCustomer(Schema):
    """`customers.edit_customer` (staff). Unknown or read-only fields are refused."""

    name = Text(validate=validate.Length(min=1, max=200))
    verified_phone = Text(allow_none=True, validate=_phone)
    note = Body(validate=validate.Length(max=10000))
    attitude = Text(validate=validate.OneOf(ATTITUDES))
    referral_source = Text(allow_none=True, validate=validate.Length(max=200))
    referrer_id = fields.UUID(allow_none=True)
    affiliate_program = fields.UUID(
        allow_none=True,
        metadata={"description": "an affiliate program's id (/api/v1/staff/affiliate-programs)"},
    )
    group_ids = fields.List(fields.UUID())
    language = Text(validate=validate.OneOf(LANGUAGES))
    version = fields.Integer(
        strict=True, metadata={"description": "the version you read; a newer one answers 409"}
    )
    # corrections of what the customer registered with: each needs `reason` (recorded)
    email = Email(validate=validate.Length(max=254), metadata={"description": _CORRECTION})
    country = Country(metadata={"description": _CORRECTION})
    kind = Text(validate=validate.OneOf(CUSTOMER_KINDS), metadata={"description": _CORRECTION})
    contact_person = Text(
        validate=validate.Length(min=1, max=200), metadata={"description": _CORRECTION}
    )
    company_name = Text(
        allow_none=True,
        validate=validate.Length(max=200),
        metadata={"description": _CORRECTION + "; a company needs one"},
    )
    project_id = fields.UUID(allow_none=True, metadata={"description": _CORRECTION})
    reason = Body(
        validate=validate.Length(min=1, max=500),
        metadata={"description": "why the corrections are made (required with any of them)"},
    )

    @validates_schema
    def _corrections_say_why(self, data, **kwargs):
        if set(CORRECTIONS) & set(data) and not (data.get("reason") or "").strip():
            raise ValidationError("Say why this is corrected.", "reason")


# Affiliate programs were named by text before they were referenced by id: a customer's
# `affiliate_program` recorded then is a program's name. Billing derives a program's id
# from its name (services/billing/domain.py, AffiliateProgram), so such a name reads as
# that id (tests/unit/test_affiliate_rules.py keeps the two equal).
_PROGRAM_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/billing")


def affiliate_program_ref(value) -> str | None:
    """A customer's `affiliate_program` as a program id: an id as it is, a name recorded
    before programs were referenced by id as the id of the program of that name."""
    if value is None or value == "":
        return None
    try:
        return str(UUID(str(value)))
    except ValueError:
        return str(uuid5(_PROGRAM_NS, f"affiliate-program:{str(value).strip().lower()}"))


class EditProfile(Schema):
    """`customers.edit_profile` (the client's own contact details)."""

    contact_person = Text(validate=validate.Length(min=1, max=200))
    phone = Text(allow_none=True, validate=_phone)
    address = Body(allow_none=True, validate=validate.Length(max=500))
    language = Text(validate=validate.OneOf(LANGUAGES))
    version = fields.Integer(strict=True)


class ChangePassword(Schema):
    current_password = Text(required=True, validate=validate.Length(min=1, max=1024))
    new_password = Text(required=True, validate=validate.Length(min=8, max=256))


class NotificationSettings(Schema):
    invoice_issued = fields.Boolean()
    payment_received = fields.Boolean()
    invoice_due = fields.Boolean()
    invoice_overdue = fields.Boolean()
    service_suspended = fields.Boolean()
    service_unsuspended = fields.Boolean()
    ticket_reply = fields.Boolean()
    news = fields.Boolean()


class CreateGroup(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=100))
    description = Body(load_default="", validate=validate.Length(max=1000))


class Seller(Schema):
    legal_name = Text(required=True, validate=validate.Length(min=1, max=200))
    address = Body(load_default=None, allow_none=True, validate=validate.Length(max=500))
    country = Country(load_default=None, allow_none=True)
    tax_id = Text(load_default=None, allow_none=True, validate=validate.Length(max=50))
    email = Email(load_default=None, allow_none=True)


def _days(most: int):
    return fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=0, max=most)
    )


class RenewalTerms(Schema):
    """A project's renewal and dunning days; null: the system default
    (HOSTLEDGER_RENEW_DAYS_BEFORE, _SUSPEND_AFTER_DAYS, _TERMINATE_AFTER_DAYS)."""

    renew_days_before = _days(365)  # the renewal invoice, this many days before the due date
    suspend_after_days = _days(365)  # unpaid this many days after the due date: suspended
    terminate_after_days = _days(3650)  # unpaid this many days after the due date: terminated

    @validates_schema
    def _terminate_after_suspend(self, data, **kwargs):
        suspend, terminate = data.get("suspend_after_days"), data.get("terminate_after_days")
        if suspend is not None and terminate is not None and terminate < suspend:
            raise ValidationError(
                "Termination cannot come before suspension.", "terminate_after_days"
            )


class CreateProject(RenewalTerms):
    name = Text(required=True, validate=validate.Length(min=1, max=100))
    sender_email = Email(required=True)
    sender_name = Text(load_default="", validate=validate.Length(max=100))
    seller = fields.Nested(Seller, load_default=None, allow_none=True)
    allow_credit = fields.Boolean(load_default=False)


class ChangeProject(RenewalTerms):
    """What staff change on a project (only the fields sent): its name, its mails' sender,
    its renewal and dunning days (null: the system default). Its seller details and
    whether its customers may owe stay as created: invoices are issued with them."""

    name = Text(validate=validate.Length(min=1, max=100))
    sender_email = Email(validate=validate.Length(max=254))
    sender_name = Text(
        validate=validate.Length(max=100),
        metadata={"description": "empty: the project's name"},
    )


@integration_event("customers", "ProjectCreated")
class ProjectCreated(RenewalTerms):
    id_field = "project_id"

    project_id = fields.UUID(required=True)
    name = Text(required=True)
    sender_email = Email(required=True)
    seller = fields.Nested(Seller, required=True)
    allow_credit = fields.Boolean(required=True)


@integration_event("customers", "ProjectUpdated")
class ProjectUpdated(RenewalTerms):
    """A project's renewal and dunning days as they are after a change (all three)."""

    id_field = "project_id"

    project_id = fields.UUID(required=True)


@integration_event("customers", "ProjectRemoved")
class ProjectRemoved(Schema):
    """Staff removed a project no customer or product refers to: it is no longer listed
    nor given to anything new; its history stays."""

    id_field = "project_id"

    project_id = fields.UUID(required=True)


@integration_event("customers", "DiscountGiven")
class DiscountGiven(Schema):
    """Staff gave a discount to a customer or to a group (the envelope's version orders
    its changes): billing keeps it for the invoices it prices from then on."""

    id_field = "discount_id"

    discount_id = fields.UUID(required=True)
    name = Text(required=True, max_length=100)
    kind = Text(required=True, validate=validate.OneOf(["percentage", "fixed"]))
    percent = Text(allow_none=True, max_length=20)
    amount = Amount(allow_none=True)
    currency = Currency(allow_none=True)
    customer_id = fields.UUID(allow_none=True)
    group_id = fields.UUID(allow_none=True)
    product_ids = fields.List(fields.UUID(), required=True)
    valid_from = fields.AwareDateTime(allow_none=True, format="iso")
    valid_to = fields.AwareDateTime(allow_none=True, format="iso")


@integration_event("customers", "DiscountChanged")
class DiscountChanged(Schema):
    """A discount's name and validity as they are after staff changed them."""

    id_field = "discount_id"

    discount_id = fields.UUID(required=True)
    name = Text(required=True, max_length=100)
    valid_from = fields.AwareDateTime(allow_none=True, format="iso")
    valid_to = fields.AwareDateTime(allow_none=True, format="iso")


@integration_event("customers", "DiscountEnded")
class DiscountEnded(Schema):
    """A discount is no longer given from `at` on."""

    id_field = "discount_id"

    discount_id = fields.UUID(required=True)
    at = fields.AwareDateTime(required=True, format="iso")


class CreateDiscount(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=100))
    kind = Text(required=True, validate=validate.OneOf(["percentage", "fixed"]))
    percent = fields.Decimal(
        as_string=True, validate=validate.Range(min=0, max=100, min_inclusive=False)
    )
    amount = fields.Nested(
        Money,
        metadata={"description": "a fixed discount's money (a customer's: in its currency)"},
    )
    customer_id = fields.UUID(load_default=None, allow_none=True)
    group_id = fields.UUID(load_default=None, allow_none=True)
    product_ids = fields.List(fields.UUID(), load_default=list)
    valid_from = fields.AwareDateTime(load_default=None, allow_none=True)
    valid_to = fields.AwareDateTime(load_default=None, allow_none=True)


class ChangeGroup(Schema):
    """What staff change on a customer group (only the fields sent)."""

    name = Text(validate=validate.Length(min=1, max=100))
    description = Body(validate=validate.Length(max=1000))


class ChangeDiscount(Schema):
    """What staff change on a discount (only the fields sent; null: no bound). Its amount
    and whom it is for stay: invoices already priced with it are explained by them."""

    name = Text(validate=validate.Length(min=1, max=100))
    valid_from = fields.AwareDateTime(allow_none=True)
    valid_to = fields.AwareDateTime(allow_none=True)

    @validates_schema
    def _in_order(self, data, **kwargs):
        start, end = data.get("valid_from"), data.get("valid_to")
        if start is not None and end is not None and end <= start:
            raise ValidationError("It must end after it starts.", "valid_to")


class AddUser(Schema):
    username = Text(
        required=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9._@+-]{3,64}$", error="3 to 64 letters, digits and . _ @ + - only."
        ),
    )
    email = Email(required=True)
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    permissions = fields.List(
        Text(validate=validate.OneOf(USER_PERMISSIONS)),
        required=True,
        validate=validate.Length(min=1),
    )
    password = Text(load_default=None, allow_none=True, validate=validate.Length(min=8, max=256))


class AddPayer(Schema):
    kind = Text(required=True, validate=validate.OneOf(PAYER_KINDS))
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    tax_id = Text(load_default=None, allow_none=True, validate=validate.Length(max=50))
    registration_number = Text(load_default=None, allow_none=True, max_length=50)
    address = Body(required=True, validate=validate.Length(min=1, max=500))
    country = Country(required=True)
    email = Email(load_default=None, allow_none=True)


class RegisterStaff(Schema):
    username = Text(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._@+-]{3,64}$"))
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    email = Email(load_default=None, allow_none=True)
    role = Text(required=True, validate=validate.OneOf(STAFF_ROLES))
    language = Text(load_default="en", validate=validate.OneOf(LANGUAGES))
    notifications = fields.Dict(
        keys=Text(validate=validate.OneOf(STAFF_NOTIFICATION_KINDS)),
        values=fields.Boolean(),
        load_default=None,
    )
    password = Text(load_default=None, allow_none=True, validate=validate.Length(min=8, max=256))
    invite = fields.Boolean(
        load_default=False,
        metadata={
            "description": "true: no password is made or given; the member gets a link by "
            "mail to set one (needs `email`, no `password`)"
        },
    )

    @validates_schema
    def _invite_needs_email(self, data, **kwargs):
        if data.get("invite"):
            if not data.get("email"):
                raise ValidationError("An invited member needs an e-mail address.", "email")
            if data.get("password"):
                raise ValidationError("An invited member sets their own password.", "password")


# the customer list's orders: by number, name or registration date, `-` for descending
CUSTOMER_SORTS = ("number", "-number", "name", "-name", "registered_at", "-registered_at")


class CustomerFilters(Schema):
    customer_id = fields.UUID()
    number = fields.Integer()
    name = Text(validate=validate.Length(min=1, max=200))
    project_id = fields.UUID()
    group_id = fields.UUID()
    active_product_id = fields.UUID()
    language = Text(validate=validate.OneOf(LANGUAGES))
    registered_from = fields.AwareDateTime()
    registered_to = fields.AwareDateTime()
    sort = Text(
        validate=validate.OneOf(CUSTOMER_SORTS),
        metadata={
            "description": "number, name or registered_at; a leading - for descending "
            "(default: -number, the newest first)"
        },
    )
    page = Page()
    page_size = PageSize()


@integration_event("customers", "CustomerUpdated")
class CustomerUpdated(Schema):
    id_field = "customer_id"

    customer_id = fields.UUID(required=True)
    changes = fields.Dict(keys=Text(max_length=100), values=Json(), required=True)


@integration_event("customers", "CustomerDeleted")
class CustomerDeleted(Schema):
    id_field = "customer_id"

    customer_id = fields.UUID(required=True)
    forced = fields.Boolean(required=True)


@integration_event("customers", "CustomerErased")
class CustomerErased(Schema):
    """A deleted customer's personal data was erased, by an administrator (the envelope's
    actor) for `reason`: every service destroys the customer's key and scrubs its tables.
    Published from the customers service's `PersonalData.Erased`, whose aggregate id is
    not the customer's: the payload names the customer."""

    customer_id = fields.UUID(required=True)
    reason = Text(required=True, max_length=1000)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class EraseCustomer(Schema):
    """`POST /staff/customers/{id}/erase`: why a deleted customer's personal data is
    erased (recorded with who did it, in every service)."""

    reason = Text(
        required=True,
        validate=[validate.Length(min=1, max=1000), _not_blank],
        metadata={"description": "why (recorded with who erased it and when): one line"},
    )


@integration_event("customers", "PasswordChanged")
class PasswordChanged(Schema):
    """A customer's password was changed: by the client (`client`), or by staff (`staff`,
    with `staff_id`), for instance acting in the client's panel. It never carries the
    password nor its hash: only the fields below are published."""

    id_field = "customer_id"

    customer_id = fields.UUID(required=True)
    changed_by = Text(required=True, validate=validate.OneOf(("client", "staff", "system")))
    staff_id = fields.UUID(load_default=None, allow_none=True)
    occurred_at = fields.AwareDateTime(required=True, format="iso")

    @pre_dump
    def _from_domain_event(self, state: dict, **kwargs) -> dict:
        # the domain event knows who acted (actor, on_behalf_of) and when (timestamp)
        actor = state.get("actor") or {}
        on_behalf_of = state.get("on_behalf_of") or {}
        staff = on_behalf_of if on_behalf_of.get("kind") == "staff" else actor
        if staff.get("kind") == "staff":
            changed_by, staff_id = "staff", staff.get("id")
        else:
            changed_by = "client" if actor.get("kind") == "client" else "system"
            staff_id = None
        return {
            "customer_id": state["customer_id"],
            "changed_by": changed_by,
            "staff_id": staff_id,
            "occurred_at": state.get("occurred_at") or state["timestamp"],
        }


# ---- staff accounts and password reset --------------------------------------------------


class EditStaff(Schema):
    """`customers.edit_staff` (administrators): only the fields sent change."""

    role = Text(validate=validate.OneOf(STAFF_ROLES))
    name = Text(validate=validate.Length(min=1, max=200))
    language = Text(validate=validate.OneOf(LANGUAGES))
    notifications = fields.Dict(
        keys=Text(validate=validate.OneOf(STAFF_NOTIFICATION_KINDS)),
        values=fields.Boolean(),
    )


class EditOwnStaffAccount(Schema):
    """`customers.edit_own_staff_account`: a staff member's own language and notification
    preferences (only the fields sent change)."""

    language = Text(validate=validate.OneOf(LANGUAGES))
    notifications = fields.Dict(
        keys=Text(validate=validate.OneOf(STAFF_NOTIFICATION_KINDS)),
        values=fields.Boolean(),
    )


class StaffPolicy(Schema):
    """The rules every staff member's login follows (administrators set them)."""

    two_factor_required = fields.Boolean(
        required=True,
        metadata={
            "description": "every staff member must use two-factor authentication: one "
            "without it who logs in sets it up first"
        },
    )


class DisableStaff(Schema):
    reason = Body(load_default=None, allow_none=True, validate=validate.Length(max=500))


class PasswordResetRequest(Schema):
    """`POST /auth/password-reset`: the account's e-mail or its username (one of them)."""

    email = Email(validate=validate.Length(max=254))
    username = Text(validate=validate.Length(min=1, max=254))

    @validates_schema
    def _one_of(self, data, **kwargs):
        if not data.get("email") and not data.get("username"):
            raise ValidationError("Give the account's e-mail or its username.", "email")


class PasswordResetConfirm(Schema):
    token = Text(required=True, validate=validate.Length(min=10, max=200))
    new_password = Text(required=True, validate=validate.Length(min=8, max=256))


# ---- a client's settings: e-mail change, style, favourite pages -------------------------


class RequestEmailChange(Schema):
    """`customers.request_email_change`: the new address, and the current password."""

    email = Email(required=True, validate=validate.Length(max=254))
    current_password = Text(required=True, validate=validate.Length(min=1, max=1024))


class ConfirmEmailChange(Schema):
    """`customers.confirm_email_change`: the token of the link mailed to the new address."""

    token = Text(required=True, validate=validate.Length(min=10, max=200))


THEMES = ("auto", "light", "dark")


class Preferences(Schema):
    """A person's own style of the pages: `auto` follows the browser."""

    theme = Text(required=True, validate=validate.OneOf(THEMES))


# the client area's sections (a favourite page is one of them or under one); the e-mail
# confirmation page is left out: its address carries a token
CLIENT_AREA_PATHS = (
    "/dashboard",
    "/services",
    "/order",
    "/finances",
    "/invoices",
    "/payments",
    "/expenses",
    "/credit-notes",
    "/add-funds",
    "/support",
    "/tickets",
    "/affiliate",
    "/settings",
    "/help",
)
NOT_FAVOURITES = ("/settings/email",)
MAX_FAVOURITES = 20
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]{0,199}$")


def is_client_area_path(path: str) -> bool:
    """A page of the client area a person may pin: a section or a page under one, with no
    query, no `..` and no `//`."""
    if not isinstance(path, str) or not _PATH.match(path) or "//" in path:
        return False
    if any(part in (".", "..") for part in path.split("/")):
        return False
    trimmed = path.rstrip("/") or "/"
    if any(trimmed == p or trimmed.startswith(p + "/") for p in NOT_FAVOURITES):
        return False
    return any(trimmed == p or trimmed.startswith(p + "/") for p in CLIENT_AREA_PATHS)


class Favourite(Schema):
    path = Text(
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "a page of the client area (/invoices, /tickets/<id>, ...)"},
    )
    label = Text(
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "the page's title, as the menu shows it"},
    )

    @validates_schema
    def _client_area(self, data, **kwargs):
        if "path" in data and not is_client_area_path(data["path"]):
            raise ValidationError("Not a page of the client area.", "path")


class Favourites(Schema):
    """`customers.set_favourites`: the pinned pages, in menu order (at most 20, each once)."""

    pages = fields.List(
        fields.Nested(Favourite),
        required=True,
        validate=validate.Length(max=MAX_FAVOURITES),
    )

    @validates_schema
    def _each_once(self, data, **kwargs):
        paths = [f["path"] for f in data.get("pages") or []]
        if len(paths) != len(set(paths)):
            raise ValidationError("Each page once.", "pages")


# ---- sessions: what every gateway instance follows to keep its session cache correct ----


@integration_event("customers", "SessionsEnded")
class SessionsEnded(Schema):
    """Sessions ended (a logout, a password change, a disabled staff member, a removed
    user, a deleted customer, an impersonation left): those whose token's SHA-256 is in
    `token_hashes` (and the client sessions entered from them), and every session of
    `staff_id` (as itself or acting in a client's panel), `customer_id` or `user_id`
    given. It never carries a token; a hash names only a session that has ended."""

    token_hashes = fields.List(Text(validate=validate.Regexp(r"^[0-9a-f]{64}$")), load_default=list)
    staff_id = fields.UUID(load_default=None, allow_none=True)
    customer_id = fields.UUID(load_default=None, allow_none=True)
    user_id = fields.UUID(load_default=None, allow_none=True)
    reason = Text(
        required=True,
        validate=validate.OneOf(
            (
                "logout",
                "password",
                "staff_disabled",
                "user_removed",
                "customer_deleted",
                "impersonation_ended",
                "password_reset",
            )
        ),
    )


@integration_event("customers", "StaffUpdated")
class StaffUpdated(Schema):
    """A staff member changed in a way a session shows: role, name, disabled, two-factor
    authentication on or off (the aggregate id; what changed stays in the service)."""

    id_field = "staff_id"

    staff_id = fields.UUID(required=True)


@integration_event("customers", "StaffPolicyChanged")
class StaffPolicyChanged(Schema):
    """The staff login policy changed: two-factor authentication `required` or not."""

    required = fields.Boolean(required=True)
