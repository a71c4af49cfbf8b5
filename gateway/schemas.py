"""Request and response shapes of the HTTP API (validation and the OpenAPI document)."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, post_load, validate

from contracts.customers import (
    CUSTOMER_KINDS,
    LANGUAGES,
    STAFF_ROLES,
    CompanyNamed,
    RegisterCustomer,
)
from contracts.envelope import ActorSchema
from contracts.fields import (
    Amount,
    Body,
    Country,
    Currency,
    Email,
    Json,
    Text,
    Total,
    text_problem,
)
from contracts.helpdesk import Broadcast
from contracts.orders import CYCLES, OrderItem, Provisioning


class ErrorBody(Schema):
    code = Text(required=True)
    message = Body(required=True)
    fields = fields.Dict(keys=Text(), values=fields.List(Body()))


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBody, required=True)


class MoneySchema(Schema):
    """Money as the services answer it (a balance may be negative)."""

    amount = Total(required=True)
    currency = Currency(required=True)


class PriceSchema(Schema):
    """A price given: 0 to MAX_AMOUNT minor units in an ISO 4217 currency."""

    amount = Amount(required=True)
    currency = Currency(required=True)


class HealthSchema(Schema):
    status = Text(validate=validate.OneOf(["ok", "unavailable"]))
    services = fields.Dict(keys=Text(), values=Text())


class LoginRequest(Schema):
    """Once two-factor authentication is on for the account, `otp` (or `recovery_code`)
    too: without it the answer is 401 `two_factor_required`; a wrong or used code is
    401 `invalid_credentials` (fields: `otp`) and counts as a wrong password."""

    username = Text(required=True, validate=validate.Length(min=1, max=254))
    password = Text(required=True, validate=validate.Length(min=1, max=1024))
    otp = Text(
        max_length=64,
        metadata={
            "description": "the authenticator app's current code (six digits), or a one-time "
            "recovery code"
        },
    )
    recovery_code = Text(
        max_length=64, metadata={"description": "a one-time recovery code, instead of `otp`"}
    )


class LoginResponse(Schema):
    """A session: its token, and whose it is (a client's user also has `user_id`)."""

    token = Text(required=True)
    kind = Text(required=True, validate=validate.OneOf(["client", "staff"]))
    customer_id = fields.UUID()
    staff_id = fields.UUID()
    user_id = fields.UUID()
    two_factor_setup_required = fields.Boolean(
        metadata={
            "description": "staff: two-factor authentication is mandatory for staff and this "
            "member has not set it up: do it first (/api/v1/auth/2fa/enrol)"
        }
    )


class Impersonator(Schema):
    staff_id = fields.UUID()
    name = Text()
    role = Text()
    two_factor_setup_required = fields.Boolean(
        metadata={
            "description": "two-factor authentication is mandatory for staff and this "
            "member has not set it up: the client's routes answer 403 "
            "`two_factor_setup_required` until they have"
        }
    )


class MeSchema(Schema):
    kind = Text(required=True, validate=validate.OneOf(["client", "staff"]))
    staff_id = fields.UUID()
    customer_id = fields.UUID()
    user_id = fields.UUID(metadata={"description": "a user of the customer's account"})
    role = Text()
    name = Text()
    username = Text()
    permissions = fields.List(
        Text(), metadata={"description": "a client's: `full`, or those of its user"}
    )
    impersonator = fields.Nested(Impersonator)
    two_factor_setup_required = fields.Boolean(
        metadata={
            "description": "staff: two-factor authentication is mandatory and not set up "
            "yet: until it is, every route but `/api/v1/auth/*`, `/api/v1/me` and "
            "`/api/v1/staff/account*` answers 403 `two_factor_setup_required`"
        }
    )
    csrf_token = Text(metadata={"description": "with a session cookie: send it as X-CSRF-Token"})


class StaffRegisterCustomer(RegisterCustomer):
    """POST /api/v1/staff/customers. The registration address is the caller's."""

    class Meta:
        exclude = ("registration_ip",)


class Credentials(Schema):
    username = Text()
    password = Text()


class CustomerSchema(Schema):
    id = fields.UUID()
    number = fields.Integer()
    kind = Text(validate=validate.OneOf(CUSTOMER_KINDS))
    name = Text()
    email = Email()
    username = Text()
    country = Country()
    contact_person = Text()
    company_name = Text(allow_none=True)
    language = Text(validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(allow_none=True)
    currency = Currency()
    registered_at = fields.DateTime()
    registration_ip = Text(allow_none=True)
    phone = Text(allow_none=True)
    address = Body(allow_none=True)
    verified_phone = Text(allow_none=True)
    note = Body(allow_none=True)
    attitude = Text()
    referral_source = Text(allow_none=True)
    referrer_id = fields.UUID(allow_none=True)
    affiliate_program = fields.UUID(
        allow_none=True, metadata={"description": "the affiliate program's id"}
    )
    group_ids = fields.List(fields.UUID())
    version = fields.Integer()
    credentials = fields.Nested(
        Credentials, metadata={"description": "only when generated; shown once"}
    )


class AccountEntry(Schema):
    id = Text()
    kind = Text()
    amount = fields.Nested(MoneySchema)
    at = fields.DateTime()
    balance_after = fields.Nested(MoneySchema)
    reference = Text(allow_none=True)
    reason = Body(allow_none=True)
    actor = fields.Nested(ActorSchema, allow_none=True)


class AccountSchema(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    currency = Currency()
    balance = fields.Nested(MoneySchema)
    entries = fields.List(
        fields.Nested(AccountEntry), metadata={"description": "one page, oldest first"}
    )
    total = fields.Integer(metadata={"description": "entries in all (up to `at`)"})
    page = fields.Integer()
    page_size = fields.Integer()
    at = fields.DateTime(allow_none=True)
    version = fields.Integer()
    opened_at = fields.DateTime()


class ParkedEvent(Schema):
    id = fields.Integer()
    service = Text()
    upstream = Text()
    position = fields.Integer(allow_none=True)
    type = Text(allow_none=True)
    error = Body()
    attempts = fields.Integer()
    parked_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    resolution = Text(allow_none=True)
    envelope = fields.Dict(keys=Text(), values=Json())


class ParkedList(Schema):
    items = fields.List(fields.Nested(ParkedEvent))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class OrderCustomer(CompanyNamed, Schema):
    """Who orders: a new e-mail creates the account; an existing one needs its password.
    A company needs `company_name`."""

    email = Email(required=True)
    password = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=1024))
    kind = Text(required=True, validate=validate.OneOf(CUSTOMER_KINDS))
    contact_person = Text(required=True, validate=validate.Length(min=1, max=200))
    country = Country(required=True)
    company_name = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=200),
        metadata={"description": "required for a company"},
    )
    language = Text(load_default="en", validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(load_default=None, allow_none=True)
    referral_source = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=200),
        metadata={"description": "how the customer heard of us (a new account keeps it)"},
    )
    referral_code = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=32),
        metadata={
            "description": "the referral code of the customer who referred this one (a new"
            " account is referred by it; no such code: 400)"
        },
    )


class OrderItemRequest(OrderItem):
    """An item as the orders service takes it over RPC (ids as text)."""

    @post_load
    def _as_json(self, data, **kwargs):
        data["product_id"] = str(data["product_id"])
        data["addons"] = [str(a) for a in data["addons"]]
        return data


class OrderRequest(Schema):
    customer = fields.Nested(OrderCustomer, required=True)
    items = fields.List(
        fields.Nested(OrderItemRequest),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={
            "description": '[{"product_id", "billing_cycle", "addons"?: [addon_id, ...]}]:'
            " priced from the catalog; an unknown product, cycle or add-on is a 400 naming"
            " items.<n> or items.<n>.addons.<m>"
        },
    )
    promo_code = Text(load_default=None, allow_none=True, max_length=100)


class OrderAnswer(Schema):
    order_id = fields.UUID()
    customer_id = fields.UUID()
    invoice_id = fields.UUID()
    credentials = fields.Nested(Credentials)


class MoneyOrList(fields.Field):
    """A price: one money object, or a list of them (one per currency)."""

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else [value]
        out = {}
        for item in items:
            loaded = PriceSchema().load(item) if isinstance(item, dict) else None
            if loaded is None:
                raise ValidationError('A price is {"amount": <minor units>, "currency": ...}.')
            out[loaded["currency"]] = loaded["amount"]
        return out


class Texts(fields.Field):
    """A text (English), or texts per language ({"en": ..., "fr": ...}): one line each,
    or (`multiline`) several."""

    def __init__(self, *, multiline: bool = False, **kwargs):
        kind = "several lines" if multiline else "one line"
        kwargs.setdefault(
            "metadata",
            {
                "oneOf": [
                    {"type": "string", "maxLength": 2000},
                    {
                        "type": "object",
                        "properties": {
                            language: {"type": "string", "maxLength": 2000}
                            for language in LANGUAGES
                        },
                        "additionalProperties": False,
                        "minProperties": 1,
                    },
                ],
                "description": f"text ({kind}), or per language",
            },
        )
        super().__init__(**kwargs)
        self.multiline = multiline

    def _deserialize(self, value, attr, data, **kwargs):
        texts = value if isinstance(value, dict) else {"en": value}
        if not texts:
            raise ValidationError("Give the text in at least one language.")
        for language, text in texts.items():
            if language not in LANGUAGES:
                raise ValidationError(f"Languages are {', '.join(LANGUAGES)}.")
            if not isinstance(text, str) or not 1 <= len(text) <= 2000:
                raise ValidationError("A text of 1 to 2000 characters.")
            problem = text_problem(text, self.multiline)
            if problem:
                raise ValidationError(problem)
        return value


class AddonRequest(Schema):
    """An add-on of a product: name as text or per language; its own prices per cycle (one
    money object or a list of them) and setup fee. Send `id` to keep an existing add-on."""

    id = fields.UUID(load_default=None, allow_none=True)
    name = Texts(required=True)
    prices = fields.Dict(
        keys=Text(validate=validate.OneOf(CYCLES)), values=MoneyOrList(), required=True
    )
    setup_fee = MoneyOrList(load_default=None)


class ProductRequest(Schema):
    """A product, as API.md spells it: names and descriptions as text (English) or per
    language ({"en": ..., "fr": ...}); each price one money object or a list of them."""

    name = Texts(required=True)
    description = Texts(load_default=None, allow_none=True, multiline=True)
    prices = fields.Dict(
        keys=Text(validate=validate.OneOf(CYCLES)), values=MoneyOrList(), required=True
    )
    setup_fee = MoneyOrList(load_default=None)
    project_id = fields.UUID(load_default=None, allow_none=True)
    on_sale = fields.Boolean(load_default=True)
    provisioning = fields.Nested(
        Provisioning,
        load_default=None,
        metadata={"description": '{"kind": "manual"} or {"kind": "webhook", "url": ...}'},
    )
    addons = fields.List(fields.Nested(AddonRequest), load_default=None)


# -- answers -------------------------------------------------------------------------------


class Binary:
    """An answer that is a file, not JSON: the media types it may come as."""

    def __init__(self, *media_types: str):
        self.media_types = media_types


PDF = Binary("application/pdf")
# a ticket's file: one of the types served as they are, else a plain byte stream
DOWNLOAD = Binary(
    "text/plain",
    "image/png",
    "image/gif",
    "image/jpeg",
    "image/bmp",
    "application/pdf",
    "application/octet-stream",
)
RAW_MAIL = Binary("message/rfc822")


class Count(fields.Integer):
    """How many there are (of a list's items, of entries): not money."""


class DecimalText(Text):
    """A decimal number as text ("10.00"), exact."""

    def __init__(self, **kw):
        kw.setdefault("metadata", {})
        kw["metadata"] = {"pattern": r"^-?[0-9]+(\.[0-9]+)?$", **kw["metadata"]}
        super().__init__(**kw)


class TextOrTexts(fields.Field):
    """A text in the language asked for, or (no language asked) the texts per language."""

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "metadata",
            {
                "oneOf": [
                    {"type": "string"},
                    {"type": "object", "additionalProperties": {"type": "string"}},
                ]
            },
        )
        super().__init__(**kwargs)


class _Page(Schema):
    """A page of a list: `items`, how many there are in all, which page of what size."""

    total = Count()
    page = fields.Integer()
    page_size = fields.Integer()


class ReadModelRow(Schema):
    """One read model of one service: where it is in the service's log, and the events it
    skipped (parked, until staff retry them). A service that did not answer is one row
    with status `unavailable` and no model."""

    service = Text()
    name = Text(allow_none=True, metadata={"description": "the read model"})
    status = Text(validate=validate.OneOf(["ok", "unavailable"]))
    position = fields.Integer(allow_none=True, metadata={"description": "last event applied"})
    head = fields.Integer(allow_none=True, metadata={"description": "last event in the log"})
    lag = fields.Integer(allow_none=True, metadata={"description": "head - position"})
    skipped = fields.Integer(allow_none=True, metadata={"description": "parked, not applied"})
    skipped_positions = fields.List(fields.Integer())


class ReadModelList(_Page):
    items = fields.List(fields.Nested(ReadModelRow))


class Status(Schema):
    """An action's outcome in a word."""

    status = Text(required=True)


class TwoFactorEnrolment(Schema):
    """A new TOTP secret (RFC 6238), not in force until a code of it is confirmed. Shown
    to the account holder only; never kept where a repeat would show it again."""

    secret = Text(required=True, metadata={"description": "base32, for typing into the app"})
    otpauth_uri = Text(required=True, metadata={"description": "otpauth://totp/... address"})
    qr_code = Text(
        required=True,
        metadata={"description": "the otpauth address as a QR code: an SVG data: URI"},
    )
    digits = fields.Integer(required=True)
    period = fields.Integer(required=True, metadata={"description": "seconds per code"})
    algorithm = Text(required=True)


class TwoFactorStatus(Schema):
    enabled = fields.Boolean(required=True)
    pending = fields.Boolean(
        required=True, metadata={"description": "enrolled, waiting for a code to confirm"}
    )
    recovery_codes_left = fields.Integer(required=True)
    enabled_at = fields.AwareDateTime(allow_none=True)


class TwoFactorEnabled(Schema):
    enabled = fields.Boolean(required=True)
    recovery_codes = fields.List(
        Text(),
        required=True,
        metadata={
            "description": "one-time codes for when the phone is not at hand: shown "
            "this once, only their hashes are kept"
        },
    )


class TwoFactorOff(Schema):
    enabled = fields.Boolean(required=True)


class TwoFactorResetDone(Schema):
    customer_id = fields.UUID(required=True)
    user_id = fields.UUID(allow_none=True)
    enabled = fields.Boolean(required=True)


class PasswordResetDone(Schema):
    status = Text(required=True, validate=validate.OneOf(["changed"]))
    kind = Text(validate=validate.OneOf(["customer", "user", "staff"]))


class Deletion(Schema):
    id = fields.UUID(required=True)
    deleted = fields.Boolean(required=True)


class Erasure(Schema):
    """A deleted customer's personal data erased: done in the customers service when
    answered, in `following` services moments later (on the CustomerErased event)."""

    customer_id = fields.UUID(required=True)
    erased_at = fields.DateTime(required=True)
    actor = fields.Nested(ActorSchema, allow_none=True)
    reason = Text(required=True)
    erased = fields.List(
        Text(),
        metadata={"description": "what the customers service erased (read as `[erased]` now)"},
    )
    following = fields.List(
        Text(),
        metadata={"description": "the services that erase theirs on the CustomerErased event"},
    )


class Removal(Schema):
    id = fields.UUID(required=True)
    removed = fields.Boolean(required=True)


class OpenApiDocument(Schema):
    """This document (OpenAPI 3)."""

    class Meta:
        unknown = INCLUDE

    openapi = Text(required=True)
    info = fields.Dict(keys=Text(), values=Json())
    paths = fields.Dict(keys=Text(), values=Json())
    components = fields.Dict(keys=Text(), values=Json())


# -- customers, staff, a client's own account ----------------------------------------------


class CustomerRow(Schema):
    """A customer as the staff list shows it."""

    id = fields.UUID()
    number = fields.Integer()
    kind = Text(validate=validate.OneOf(CUSTOMER_KINDS))
    name = Text()
    username = Text()
    email = Email()
    country = Country()
    language = Text(validate=validate.OneOf(LANGUAGES))
    project_id = fields.UUID(allow_none=True)
    group_ids = fields.List(fields.UUID())
    attitude = Text()
    registered_at = fields.DateTime()


class CustomerList(_Page):
    items = fields.List(fields.Nested(CustomerRow))


class ProfileSchema(Schema):
    """What a client sees of itself (no staff notes, attitude or registration address)."""

    id = fields.UUID()
    number = fields.Integer()
    kind = Text(validate=validate.OneOf(CUSTOMER_KINDS))
    name = Text()
    email = Email()
    username = Text()
    country = Country()
    contact_person = Text()
    company_name = Text(allow_none=True)
    language = Text(validate=validate.OneOf(LANGUAGES))
    phone = Text(allow_none=True)
    address = Body(allow_none=True)
    currency = Currency()
    registered_at = fields.DateTime()
    version = fields.Integer()


class NotificationSettingsAnswer(Schema):
    """Which notifications the customer gets."""

    invoice_issued = fields.Boolean()
    payment_received = fields.Boolean()
    invoice_due = fields.Boolean()
    invoice_overdue = fields.Boolean()
    service_suspended = fields.Boolean()
    service_unsuspended = fields.Boolean()
    ticket_reply = fields.Boolean()
    news = fields.Boolean()


class Impersonation(Schema):
    event = Text(validate=validate.OneOf(["started", "ended"]))
    staff_id = fields.UUID()
    customer_id = fields.UUID()
    at = fields.DateTime()
    position = fields.Integer()


class ImpersonationList(_Page):
    items = fields.List(fields.Nested(Impersonation))


class Group(Schema):
    id = fields.UUID()
    name = Text()
    description = Body()


class GroupList(_Page):
    items = fields.List(fields.Nested(Group))


class SellerAnswer(Schema):
    legal_name = Text()
    address = Body(allow_none=True)
    country = Country(allow_none=True)
    tax_id = Text(allow_none=True)
    email = Email(allow_none=True)


class Project(Schema):
    id = fields.UUID()
    name = Text()
    sender_email = Email(allow_none=True)
    sender_name = Text(allow_none=True)
    seller = fields.Nested(SellerAnswer)
    allow_credit = fields.Boolean()
    renew_days_before = fields.Integer(allow_none=True)
    suspend_after_days = fields.Integer(allow_none=True)
    terminate_after_days = fields.Integer(allow_none=True)


class ProjectList(_Page):
    items = fields.List(fields.Nested(Project))


class Discount(Schema):
    id = fields.UUID()
    name = Text()
    kind = Text(validate=validate.OneOf(["percentage", "fixed"]))
    percent = DecimalText(allow_none=True)
    amount = fields.Nested(MoneySchema, allow_none=True)
    customer_id = fields.UUID(allow_none=True)
    group_id = fields.UUID(allow_none=True)
    product_ids = fields.List(fields.UUID())
    valid_from = fields.DateTime(allow_none=True)
    valid_to = fields.DateTime(allow_none=True)


class DiscountList(_Page):
    items = fields.List(fields.Nested(Discount))


class StaffMember(Schema):
    id = fields.UUID()
    username = Text()
    name = Text()
    email = Email(allow_none=True)
    role = Text(validate=validate.OneOf(STAFF_ROLES))
    language = Text(validate=validate.OneOf(LANGUAGES))
    active = fields.Boolean()
    notifications = fields.Dict(keys=Text(), values=fields.Boolean())
    credentials = fields.Nested(
        Credentials, metadata={"description": "only when generated; shown once"}
    )


class StaffList(_Page):
    items = fields.List(fields.Nested(StaffMember))


class StaffAccount(StaffMember):
    """A staff member's own account."""

    two_factor = fields.Boolean(metadata={"description": "two-factor authentication is on"})
    two_factor_required = fields.Boolean(
        metadata={
            "description": "the staff policy makes two-factor authentication mandatory: "
            "while it does, `POST /api/v1/auth/2fa/disable` answers 409"
        }
    )
    two_factor_setup_required = fields.Boolean(
        metadata={"description": "the staff policy asks for it and it is not set up yet"}
    )


class ResetLinkSent(Schema):
    """A password reset link was mailed (to `email`): the account's own, as a forgotten
    password gives; staff never see or set it."""

    status = Text(required=True)
    email = Email(required=True)


class CustomerUser(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    username = Text()
    email = Email(allow_none=True)
    name = Text()
    permissions = fields.List(Text())
    credentials = fields.Nested(
        Credentials, metadata={"description": "only when generated; shown once"}
    )


class CustomerUserList(_Page):
    items = fields.List(fields.Nested(CustomerUser))


class Payer(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    kind = Text()
    name = Text()
    tax_id = Text(allow_none=True)
    registration_number = Text(allow_none=True)
    address = Body()
    country = Country()
    email = Email(allow_none=True)


class PayerList(_Page):
    items = fields.List(fields.Nested(Payer))


# -- billing --------------------------------------------------------------------------------


class LineDiscount(Schema):
    """The discount a line got: which one, and how much money it took off."""

    name = Text()
    amount = fields.Nested(MoneySchema)


class DocumentLine(Schema):
    """A line of an invoice or a credit note."""

    class Meta:
        unknown = INCLUDE

    description = Body()
    product_id = fields.UUID(allow_none=True)
    quantity = fields.Integer()
    unit_price = fields.Nested(MoneySchema)
    period = Text(allow_none=True, metadata={"description": "the period, as words for people"})
    period_start = fields.Date(
        allow_none=True, metadata={"description": "the first day the line covers (ISO date)"}
    )
    period_end = fields.Date(
        allow_none=True,
        metadata={"description": "the last day the line covers, inclusive (ISO date)"},
    )
    discount = fields.Nested(LineDiscount, allow_none=True)
    total = fields.Nested(MoneySchema)


class TaxAnswer(Schema):
    class Meta:
        unknown = INCLUDE

    amount = fields.Nested(MoneySchema)


class InvoiceSchema(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    number = Text()
    status = Text()
    purpose = Text()
    lines = fields.List(fields.Nested(DocumentLine))
    subtotal = fields.Nested(MoneySchema)
    tax = fields.Nested(TaxAnswer, allow_none=True)
    total = fields.Nested(MoneySchema)
    issued_at = fields.DateTime()
    due_date = fields.Date()
    paid_at = fields.DateTime(allow_none=True)
    overdue = fields.Boolean()
    buyer = fields.Dict(keys=Text(), values=Json())
    seller = fields.Dict(keys=Text(), values=Json())
    version = fields.Integer()


class RefundRecord(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    invoice_id = fields.UUID()
    invoice_number = Text()
    credit_note_id = fields.UUID()
    credit_note_number = Text()
    amount = fields.Nested(MoneySchema)
    to = Text()
    processor = Text(allow_none=True)
    status = Text()
    attempt = fields.Integer()
    processor_refund_id = Text(allow_none=True)
    error = Body(allow_none=True)
    reason = Body()
    requested_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)


class CreditNoteSchema(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    number = Text()
    invoice_id = fields.UUID()
    invoice_number = Text()
    refund_id = fields.UUID()
    to = Text()
    reason = Body()
    lines = fields.List(fields.Nested(DocumentLine))
    subtotal = fields.Nested(MoneySchema)
    tax = fields.Nested(TaxAnswer, allow_none=True)
    total = fields.Nested(MoneySchema)
    issued_at = fields.DateTime()
    buyer = fields.Dict(keys=Text(), values=Json())
    seller = fields.Dict(keys=Text(), values=Json())


class PaymentSchema(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    amount = fields.Nested(MoneySchema)
    method = Text()
    reference = Text()
    invoice_id = fields.UUID(allow_none=True)
    received_at = fields.DateTime()


class InvoiceRow(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    number = Text()
    status = Text()
    purpose = Text()
    total = fields.Nested(MoneySchema)
    issued_at = fields.DateTime()
    due_date = fields.Date()


class InvoiceList(_Page):
    items = fields.List(fields.Nested(InvoiceRow))


class PaymentRow(PaymentSchema):
    """A payment as the lists show it."""


class PaymentList(_Page):
    items = fields.List(fields.Nested(PaymentRow))


class CommissionRow(Schema):
    id = fields.UUID()
    customer_id = fields.UUID(metadata={"description": "the referrer, who earns it"})
    referred_id = fields.UUID()
    invoice_id = fields.UUID()
    program = Text()
    amount = fields.Nested(MoneySchema)
    status = Text()
    earned_at = fields.DateTime()
    matures_at = fields.DateTime()


class CommissionList(_Page):
    items = fields.List(fields.Nested(CommissionRow))


class ReferredCustomer(Schema):
    """A customer the client referred: nothing personal, its number and when it came."""

    number = fields.Integer()
    registered_at = fields.DateTime()


class ReferredList(_Page):
    items = fields.List(fields.Nested(ReferredCustomer))


class AffiliateCommission(Schema):
    id = fields.UUID()
    referred_number = fields.Integer(
        allow_none=True, metadata={"description": "the number of the customer who paid"}
    )
    program = Text()
    amount = fields.Nested(MoneySchema)
    status = Text(
        validate=validate.OneOf(["pending", "credited"]),
        metadata={"description": "pending until `matures_at`, then credited to the account"},
    )
    earned_at = fields.DateTime()
    matures_at = fields.DateTime()


class AffiliateCommissionList(_Page):
    items = fields.List(fields.Nested(AffiliateCommission))


class AffiliateAnswer(Schema):
    code = Text(metadata={"description": "your referral code (made the first time it is asked)"})
    link = Text(metadata={"description": "the link that brings a new customer with your code"})
    referred = fields.Nested(ReferredList)
    commissions = fields.Nested(AffiliateCommissionList)


class ExpenseRow(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    kind = Text()
    amount = fields.Nested(MoneySchema)
    reference = Text(allow_none=True)
    at = fields.DateTime()


class ExpenseList(_Page):
    items = fields.List(fields.Nested(ExpenseRow))


class UnmatchedPayment(Schema):
    id = fields.UUID()
    customer_id = fields.UUID(allow_none=True)
    processor = Text()
    event_id = Text()
    reference = Text()
    amount = fields.Nested(MoneySchema)
    invoice_ref = Text(allow_none=True)
    received_at = fields.DateTime()


class UnmatchedPaymentList(_Page):
    items = fields.List(fields.Nested(UnmatchedPayment))


class CreditNoteRow(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    number = Text()
    invoice_id = fields.UUID()
    invoice_number = Text()
    refund_id = fields.UUID()
    to = Text()
    total = fields.Nested(MoneySchema)
    issued_at = fields.DateTime()


class CreditNoteList(_Page):
    items = fields.List(fields.Nested(CreditNoteRow))


class RefundRow(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    invoice_id = fields.UUID()
    invoice_number = Text()
    credit_note_number = Text()
    amount = fields.Nested(MoneySchema)
    to = Text()
    processor = Text(allow_none=True)
    status = Text()
    attempt = fields.Integer()
    processor_refund_id = Text(allow_none=True)
    error = Body(allow_none=True)
    requested_at = fields.DateTime()


class RefundList(_Page):
    items = fields.List(fields.Nested(RefundRow))


class ProgramSchema(Schema):
    id = fields.UUID()
    name = Text()
    percent = DecimalText()
    maturity_days = fields.Integer()


class ProgramList(_Page):
    items = fields.List(fields.Nested(ProgramSchema))


class TaxRule(Schema):
    id = fields.UUID()
    name = Text()
    country = Country()
    project_id = fields.UUID(allow_none=True)
    rate = DecimalText()
    inclusive = fields.Boolean()
    valid_from = fields.DateTime(allow_none=True)
    valid_to = fields.DateTime(allow_none=True)


class TaxRuleList(_Page):
    items = fields.List(fields.Nested(TaxRule))


class CheckoutAnswer(Schema):
    """Where to send the client's browser: the processor's hosted payment page."""

    redirect_url = Text(metadata={"description": "the processor's payment page"})
    processor = Text()
    session_id = Text(metadata={"description": "the processor's own id of the page"})
    expires_at = fields.Integer(
        allow_none=True, metadata={"description": "when the page stops taking payment (unix)"}
    )
    invoice_id = fields.UUID()


class WebhookAnswer(Schema):
    """What became of a processor's notification (`duplicate` when told before)."""

    received = fields.Boolean()
    event_id = Text()
    outcome = Text()
    invoice_id = fields.UUID()
    payment_id = fields.UUID()
    unmatched_id = fields.UUID()
    refunds = fields.List(Json())
    duplicate = fields.Boolean()


# -- orders ---------------------------------------------------------------------------------


class ProductAddonAnswer(Schema):
    id = fields.UUID()
    name = TextOrTexts()
    prices = fields.Dict(keys=Text(), values=fields.Nested(MoneySchema))
    setup_fee = fields.Nested(MoneySchema)
    all_setup_fees = fields.List(fields.Nested(MoneySchema))
    all_prices = fields.Dict(keys=Text(), values=fields.List(fields.Nested(MoneySchema)))


class ProductSchema(Schema):
    """`prices` and `setup_fee` in the currency asked for (else the product's first),
    `all_prices` and `all_setup_fees` in every currency; texts in the language asked for,
    else per language."""

    id = fields.UUID()
    name = TextOrTexts()
    description = TextOrTexts(allow_none=True)
    prices = fields.Dict(keys=Text(), values=fields.Nested(MoneySchema))
    setup_fee = fields.Nested(MoneySchema)
    all_setup_fees = fields.List(fields.Nested(MoneySchema))
    all_prices = fields.Dict(keys=Text(), values=fields.List(fields.Nested(MoneySchema)))
    project_id = fields.UUID(allow_none=True)
    on_sale = fields.Boolean()
    provisioning = fields.Dict(keys=Text(), values=Json())
    addons = fields.List(fields.Nested(ProductAddonAnswer))
    version = fields.Integer()


class ProductList(_Page):
    items = fields.List(fields.Nested(ProductSchema))


class Promo(Schema):
    id = fields.UUID()
    code = Text()
    kind = Text(validate=validate.OneOf(["percentage", "fixed"]))
    percent = DecimalText(allow_none=True)
    amount = fields.Nested(MoneySchema, allow_none=True)
    product_ids = fields.List(fields.UUID())
    max_uses = fields.Integer(allow_none=True)
    uses = Count(metadata={"description": "orders it was used on (and orders being placed)"})
    expires_at = fields.DateTime(allow_none=True)
    active = fields.Boolean(metadata={"description": "false once staff deactivated it"})
    state = Text(
        validate=validate.OneOf(["active", "expired", "used_up", "deactivated"]),
        metadata={"description": "deactivated, else expired, else used_up, else active (usable)"},
    )


class PromoList(_Page):
    items = fields.List(fields.Nested(Promo))


class PromoOrder(Schema):
    order_id = fields.UUID()
    customer_id = fields.UUID()
    invoice_id = fields.UUID()
    placed_at = fields.DateTime()


class PromoChanges(Schema):
    """The fields a change gave new values (only those)."""

    kind = Text()
    percent = DecimalText(allow_none=True)
    amount = fields.Nested(MoneySchema, allow_none=True)
    product_ids = fields.List(fields.UUID())
    expires_at = fields.DateTime(allow_none=True)
    max_uses = fields.Integer(allow_none=True)


class PromoEvent(Schema):
    type = Text(validate=validate.OneOf(["Created", "Changed", "Deactivated", "Activated"]))
    occurred_at = fields.DateTime()
    actor = fields.Nested(ActorSchema, allow_none=True)
    on_behalf_of = fields.Nested(ActorSchema, allow_none=True)
    changes = fields.Nested(PromoChanges)


class PromoDetail(Promo):
    """One promo code for staff: the orders placed with it (the newest, from a list that
    may lag a moment) and its history, newest first, each step with who took it."""

    orders = fields.List(fields.Nested(PromoOrder))
    orders_total = Count(metadata={"description": "orders placed with it in all"})
    history = fields.List(fields.Nested(PromoEvent))


class ServiceAddon(Schema):
    id = fields.UUID()
    name = Text()
    price = fields.Nested(MoneySchema)


class ServiceProvisioning(Schema):
    kind = Text()
    state = Text()
    attempts = fields.Integer()
    outcome = Body(allow_none=True)


class ServiceSchema(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    order_id = fields.UUID()
    product_id = fields.UUID()
    name = Text()
    billing_cycle = Text()
    price = fields.Nested(MoneySchema)
    addons = fields.List(fields.Nested(ServiceAddon))
    project_id = fields.UUID(allow_none=True)
    status = Text()
    next_due_date = fields.Date(allow_none=True)
    provisioning = fields.Nested(ServiceProvisioning)


class ServiceList(_Page):
    items = fields.List(fields.Nested(ServiceSchema))


class OrderItemAddon(Schema):
    id = fields.UUID()
    name = Text()
    price = fields.Nested(MoneySchema)
    setup_fee = fields.Nested(MoneySchema)


class OrderItemAnswer(Schema):
    """An ordered item as it was priced."""

    product_id = fields.UUID()
    name = Text()
    billing_cycle = Text()
    price = fields.Nested(MoneySchema)
    setup_fee = fields.Nested(MoneySchema)
    project_id = fields.UUID(allow_none=True)
    addons = fields.List(fields.Nested(OrderItemAddon))


class OrderSchema(Schema):
    id = fields.UUID()
    customer_id = fields.UUID()
    status = Text()
    invoice_id = fields.UUID()
    items = fields.List(fields.Nested(OrderItemAnswer))
    total = fields.Nested(MoneySchema)
    placed_at = fields.DateTime()


class OrderList(_Page):
    items = fields.List(fields.Nested(OrderSchema))


class ClientOrderRequest(Schema):
    """A logged-in client's order: its account's details are not asked again."""

    items = fields.List(
        fields.Nested(OrderItemRequest),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={
            "description": '[{"product_id", "billing_cycle", "addons"?: [addon_id, ...]}]:'
            " priced from the catalog in the customer's currency; an unknown product, cycle"
            " or add-on is a 400 naming items.<n> or items.<n>.addons.<m>"
        },
    )
    promo_code = Text(load_default=None, allow_none=True, max_length=100)


class ClientOrderAnswer(OrderSchema):
    """The order placed, with its invoice as billing issued it (to pay)."""

    invoice = fields.Nested(InvoiceSchema)


class RenewalAnswer(Schema):
    """An early renewal: the service, and the renewal invoice of its next period."""

    service = fields.Nested(ServiceSchema)
    invoice = fields.Nested(InvoiceSchema)
    issued = fields.Boolean(
        metadata={"description": "issued by this request (false: the unpaid one issued before)"}
    )


# -- helpdesk -------------------------------------------------------------------------------


class DepartmentFieldAnswer(Schema):
    name = Text()
    label = Text()
    required = fields.Boolean()


class BusinessHoursAnswer(Schema):
    days = fields.List(fields.Integer())
    opens = Text()
    closes = Text()
    timezone = Text()


class ClientDepartment(Schema):
    id = fields.UUID()
    name = Text()
    fields_ = fields.List(fields.Nested(DepartmentFieldAnswer), data_key="fields")
    business_hours = fields.Nested(BusinessHoursAnswer, allow_none=True)


class ClientDepartmentList(_Page):
    items = fields.List(fields.Nested(ClientDepartment))


class Department(ClientDepartment):
    client_visible = fields.Boolean()
    staff_ids = fields.List(fields.UUID())
    addresses = fields.List(Email())
    accept_guests = fields.Boolean()
    version = fields.Integer()


class DepartmentList(_Page):
    items = fields.List(fields.Nested(Department))


class HelpdeskSettingsAnswer(Schema):
    allowed_extensions = fields.List(Text())
    max_file_bytes = fields.Integer()
    max_message_bytes = fields.Integer()
    accept_guest_mail = fields.Boolean()
    penalty_threshold = fields.Integer()


TICKET_STATES = ["open", "archived"]
TICKET_PROGRESS = ["open", "answered", "customer_reply", "closed"]


class _TicketRowBase(Schema):
    id = fields.UUID()
    tracking_number = Text()
    department_id = fields.UUID()
    subject = Text()
    priority = Text()
    opened_at = fields.DateTime()
    updated_at = fields.DateTime()


class _ClientTicketState(Schema):
    """How a client sees where a ticket stands: `status` is what `?status=` filters on."""

    status = Text(
        validate=validate.OneOf(TICKET_STATES),
        metadata={"description": "open or archived (the client moves it between them)"},
    )
    progress = Text(
        validate=validate.OneOf(TICKET_PROGRESS),
        metadata={"description": "open, answered (by staff), customer_reply or closed"},
    )


class TicketRow(_TicketRowBase, _ClientTicketState):
    """A ticket as a client's list shows it."""


class TicketRowList(_Page):
    items = fields.List(fields.Nested(TicketRow))


class StaffTicketRow(_TicketRowBase):
    status = Text(validate=validate.OneOf(TICKET_PROGRESS))
    state = Text(validate=validate.OneOf(TICKET_STATES))
    customer_id = fields.UUID(allow_none=True)
    guest_email = Email(allow_none=True)
    assigned_to = fields.UUID(allow_none=True)
    merged_into = fields.UUID(allow_none=True)


class StaffTicketRowList(_Page):
    items = fields.List(fields.Nested(StaffTicketRow))


class AttachmentAnswer(Schema):
    id = Text()
    filename = Text()
    content_type = Text()
    size = fields.Integer()


class TicketMessage(Schema):
    id = Text()
    author_kind = Text()
    author_name = Text(allow_none=True)
    body = Body()
    attachments = fields.List(fields.Nested(AttachmentAnswer))
    at = fields.DateTime()


class StaffTicketMessage(TicketMessage):
    internal = fields.Boolean()
    author_id = Text(allow_none=True)
    mail_message_id = Text(allow_none=True)
    merged_from = Text(allow_none=True)


class AbuseAnswer(Schema):
    deadline = fields.DateTime()
    action = Text()
    state = Text(allow_none=True)


class StaffAbuseAnswer(AbuseAnswer):
    penalty_points = fields.Integer()
    comment = Body()


class _TicketBase(Schema):
    id = fields.UUID()
    tracking_number = Text()
    department_id = fields.UUID()
    department_name = Text()
    subject = Text()
    priority = Text()
    fields_ = fields.Dict(keys=Text(), values=Json(), data_key="fields")
    forbid_replies = fields.Boolean()
    opened_at = fields.DateTime()
    updated_at = fields.DateTime()
    messages = fields.List(fields.Nested(TicketMessage))
    version = fields.Integer()
    abuse = fields.Nested(AbuseAnswer)


class TicketSchema(_TicketBase, _ClientTicketState):
    """A ticket as its client sees it (never an internal note)."""


class StaffTicket(_TicketBase):
    """A ticket with every message and internal note."""

    status = Text(validate=validate.OneOf(TICKET_PROGRESS))
    state = Text(validate=validate.OneOf(TICKET_STATES))
    messages = fields.List(fields.Nested(StaffTicketMessage))
    abuse = fields.Nested(StaffAbuseAnswer)
    customer_id = fields.UUID(allow_none=True)
    guest_email = Email(allow_none=True)
    assigned_to = fields.UUID(allow_none=True)
    language = Text(allow_none=True)
    via = Text(allow_none=True)
    merged_into = fields.UUID(allow_none=True)
    merged_tracking_numbers = fields.List(Text())
    assign_on_reply_to = Text(allow_none=True)


class Standing(Schema):
    customer_id = fields.UUID()
    penalty_points = fields.Integer()
    threshold_passed = fields.Boolean()


class ReplyTemplateAnswer(Schema):
    id = fields.UUID()
    name = Text()
    bodies = fields.Dict(keys=Text(), values=Body())
    department_id = fields.UUID(allow_none=True)


class ReplyTemplateList(_Page):
    items = fields.List(fields.Nested(ReplyTemplateAnswer))


class BroadcastList(_Page):
    items = fields.List(fields.Nested(Broadcast))


# -- mail ----------------------------------------------------------------------------------


class Notification(Schema):
    id = fields.Integer()
    kind = Text()
    customer_id = fields.UUID(allow_none=True)
    recipient = Text(allow_none=True)
    language = Text()
    message_id = Text()
    in_reply_to = Text(allow_none=True)
    status = Text()
    reason = Text(allow_none=True)
    subject = Text(allow_none=True)
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    last_error = Text(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class NotificationList(_Page):
    items = fields.List(fields.Nested(Notification))


class MailTemplate(Schema):
    kind = Text()
    language = Text()
    subject = Text()
    body = Body()
    customized = fields.Boolean()


class MailTemplateList(_Page):
    items = fields.List(fields.Nested(MailTemplate))


class _IncomingMail(Schema):
    """What every mail the mail gateway took in shows: when, from whom, to which address."""

    id = fields.Integer()
    received_at = fields.DateTime()
    sender = Text()
    recipient = Text()


class HeldMail(_IncomingMail):
    """`status`: held (waiting for staff), released (handed to the helpdesk: the ticket it
    went to) or discarded (`note`: why); `handled_by` and `handled_at`: who decided, when."""

    reason = Text()
    detail = Text()
    subject = Text()
    size = fields.Integer()
    status = Text()
    handled_at = fields.DateTime(allow_none=True)
    handled_by = fields.Nested(ActorSchema, allow_none=True)
    note = Text(allow_none=True)
    ticket_id = fields.UUID(allow_none=True)
    tracking_number = Text(allow_none=True)


class HeldMailList(_Page):
    items = fields.List(fields.Nested(HeldMail))


class HeldHeader(Schema):
    name = Text()
    value = Text()


class HeldAttachment(Schema):
    filename = Text()
    content_type = Text()
    size = fields.Integer()


class HeldContent(Schema):
    """A kept message read as text: nothing of it is markup. `problem`: why it cannot be
    read (then `body` is null)."""

    headers = fields.List(fields.Nested(HeldHeader))
    body = Body(allow_none=True)
    attachments = fields.List(fields.Nested(HeldAttachment))
    problem = Text(allow_none=True)


class HeldMessage(HeldMail):
    content = fields.Nested(HeldContent)


class TemplatePreview(Schema):
    """What a template's text gives on sample values."""

    subject = Text()
    body = Body()


class ReceivedMail(_IncomingMail):
    message_id = Text()
    outcome = Text()
    reason = Text(allow_none=True)
    ticket_id = fields.UUID(allow_none=True)
    tracking_number = Text(allow_none=True)


class ReceivedMailList(_Page):
    items = fields.List(fields.Nested(ReceivedMail))


# -- a client's settings: e-mail change, style, favourite pages --------------------------------


class EmailChangePending(Schema):
    """The change waits for the link mailed to the new address; until it is opened the
    account keeps its address."""

    status = Text(required=True, metadata={"description": "pending"})
    email = Email(required=True, metadata={"description": "the new address, once confirmed"})
    expires_at = fields.DateTime(required=True, metadata={"description": "the link's end"})


class PreferencesAnswer(Schema):
    """The person's own style of the pages (each user of a client has its own)."""

    theme = Text(
        required=True,
        validate=validate.OneOf(("auto", "light", "dark")),
        metadata={"description": "auto: as the browser prefers"},
    )


class FavouriteAnswer(Schema):
    path = Text(required=True)
    label = Text(required=True)


class FavouritesAnswer(Schema):
    """The person's pinned pages, in menu order (each user of a client has its own)."""

    pages = fields.List(fields.Nested(FavouriteAnswer), required=True)
