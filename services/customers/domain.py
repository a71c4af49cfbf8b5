"""Customers, staff members, and the indexes that keep usernames and e-mails unique.

Passwords: the events of an account (a customer, a customer's user, a staff member) say
that its password was set (`Registered`, `Added`) or changed (`PasswordChanged`, with who
did it in its actor), never the password nor its hash. The current hash is kept in the
`credentials` table (services/customers/credentials.py), written in the same transaction
as the event. Version 1 of these six events carried `password_hash`: stored ones still
do (stored events are never rewritten), and `upcast_v1_v2` drops it as they are read.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from services.infra.domain import Aggregate, KeyedIndex


class TwoFactorAccount(Aggregate):
    """An account one logs in to (a customer, a customer's user, a staff member), with
    two-factor authentication on or off. Its events say who turned it on or off and
    why; the shared secret and the recovery codes are never in them (the
    `two_factor` tables of services/customers/two_factor.py keep the secret and the
    codes' hashes)."""

    # accounts whose history has none of these events have it off
    two_factor = False

    @event("TwoFactorEnabled")
    def enable_two_factor(self, recovery_codes: int) -> None:
        """The account holder confirmed a code of the new secret; `recovery_codes`: how
        many one-time codes were handed out with it."""
        self.two_factor = True

    @event("TwoFactorDisabled")
    def disable_two_factor(self) -> None:
        """The account holder turned it off, with the password and a code."""
        self.two_factor = False

    @event("TwoFactorReset")
    def reset_two_factor(self, reason: str) -> None:
        """Staff turned it off for the account holder (a lost phone), saying why."""
        self.two_factor = False

    @event("RecoveryCodeUsed")
    def use_recovery_code(self, remaining: int) -> None:
        """A one-time recovery code stood in for the app's code; `remaining` are left."""


class Customer(TwoFactorAccount):
    # the name staff give the customer in lists and cards; None: the company name, else
    # the contact person (a class default: customers registered before it existed)
    display_name: str | None = None

    @event("Registered")
    def __init__(
        self,
        number: int,
        kind: str,
        email: str,
        username: str,
        country: str,
        contact_person: str,
        company_name: str | None,
        language: str,
        project_id: UUID | None,
        currency: str,
        registered_at: datetime,
        registration_ip: str | None,
    ):
        self.number = number
        self.kind = kind
        self.email = email
        self.username = username
        self.country = country
        self.contact_person = contact_person
        self.company_name = company_name
        self.language = language
        self.project_id = project_id
        self.currency = currency
        self.registered_at = registered_at
        self.registration_ip = registration_ip
        self.deleted = False
        self.verified_phone: str | None = None
        self.note = ""
        self.attitude = "normal"
        self.referral_source: str | None = None
        self.referrer_id: UUID | None = None
        self.affiliate_program: str | None = None
        self.group_ids: list[UUID] = []
        self.phone: str | None = None
        self.address: str | None = None
        self.notification_settings: dict[str, bool] = dict(DEFAULT_NOTIFICATIONS)
        self.active_services: dict[str, UUID] = {}  # service id -> product id
        # services ended: one whose start is applied after its end (that event parked,
        # then retried) does not count as active
        self.ended_services: list[str] = []

    @property
    def name(self) -> str:
        return self.display_name or self.company_name or self.contact_person

    @property
    def customer_id(self):
        """Whose key seals its events' personal fields: its own (services/customers/erasure.py)."""
        return self.id

    def check_not_deleted(self) -> None:
        if self.deleted:
            raise CustomerDeleted("This customer was deleted.")

    @event("Edited")
    def edit(self, changes: dict) -> None:
        """Staff edits and the client's own profile changes; `changes` holds only what changed."""
        self.check_not_deleted()
        for key, value in changes.items():
            # `name` is the display name: the legal name and the contact person stay
            setattr(self, "display_name" if key == "name" else key, value)

    @event("Corrected")
    def correct(self, changes: dict, reason: str) -> None:
        """Staff corrected what the customer registered with (e-mail, country, kind,
        contact person, company name, project), saying why; `changes` holds only what
        changed."""
        self.check_not_deleted()
        for key, value in changes.items():
            setattr(self, key, value)

    @event("PasswordChanged")
    def change_password(self) -> None:
        """The password was changed (its hash: the `credentials` table, saved with this)."""
        self.check_not_deleted()

    @event("NotificationSettingsChanged")
    def set_notification_settings(self, settings: dict) -> None:
        self.check_not_deleted()
        self.notification_settings = dict(self.notification_settings, **settings)

    @event("Deleted")
    def delete(self, forced: bool, reason: str | None) -> None:
        self.check_not_deleted()
        self.deleted = True

    @event("ServiceStarted")
    def service_started(self, service_id: UUID, product_id: UUID) -> None:
        self.active_services[str(service_id)] = product_id

    @event("ServiceEnded")
    def service_ended(self, service_id: UUID, product_id: UUID, was_active: bool = True) -> None:
        self.active_services.pop(str(service_id), None)
        self.ended_services.append(str(service_id))


NOTIFICATION_KINDS = (
    "invoice_issued",
    "payment_received",
    "invoice_due",
    "invoice_overdue",
    "service_suspended",
    "service_unsuspended",
    "ticket_reply",
    "news",
)
DEFAULT_NOTIFICATIONS = {kind: kind != "news" for kind in NOTIFICATION_KINDS}


class CustomerDeleted(Exception):
    pass


class CustomerGroup(Aggregate):
    @event("Created")
    def __init__(self, name: str, description: str):
        self.name = name
        self.description = description
        # removed by staff: no longer listed nor given to customers; its history stays
        self.removed = False

    @event("Changed")
    def change(self, name: str, description: str) -> None:
        self.name = name
        self.description = description

    @event("Removed")
    def remove(self) -> None:
        self.removed = True


class Project(Aggregate):
    """A brand: its own name, sender address, seller details printed on its invoices
    (which billing numbers in a series of its own), and whether its customers may owe."""

    # removed by staff once nothing refers to it: no longer listed nor given to anything
    # new; its history stays (a class default: projects made before it existed)
    removed = False

    @event("Created")
    def __init__(
        self,
        name: str,
        sender_email: str,
        sender_name: str,
        seller: dict,
        allow_credit: bool,
        renew_days_before: int | None = None,
        suspend_after_days: int | None = None,
        terminate_after_days: int | None = None,
    ):
        self.name = name
        self.sender_email = sender_email
        self.sender_name = sender_name
        self.seller = seller
        self.allow_credit = allow_credit
        # renewal and dunning days of its services; None: the system default
        self.renew_days_before = renew_days_before
        self.suspend_after_days = suspend_after_days
        self.terminate_after_days = terminate_after_days

    RENEWAL_TERMS = ("renew_days_before", "suspend_after_days", "terminate_after_days")
    # what staff may change besides the terms (seller and credit rule stay as created)
    DETAILS = ("name", "sender_email", "sender_name")

    @event("Changed")
    def change(self, changes: dict) -> None:
        """Staff renamed the project or changed its mails' sender; `changes` holds only
        what changed."""
        for key, value in changes.items():
            setattr(self, key, value)

    @event("Removed")
    def remove(self) -> None:
        self.removed = True

    def change_renewal_terms(self, changes: dict) -> bool:
        """Apply the terms given (None: back to the default); False when nothing changes."""
        terms = {k: changes.get(k, getattr(self, k)) for k in self.RENEWAL_TERMS}
        if all(terms[k] == getattr(self, k) for k in self.RENEWAL_TERMS):
            return False
        self._updated(**terms)
        return True

    @event("Updated")
    def _updated(
        self,
        renew_days_before: int | None,
        suspend_after_days: int | None,
        terminate_after_days: int | None,
    ) -> None:
        self.renew_days_before = renew_days_before
        self.suspend_after_days = suspend_after_days
        self.terminate_after_days = terminate_after_days


class Discount(Aggregate):
    @event("Created")
    def __init__(
        self,
        name: str,
        kind: str,
        percent: str | None,
        amount: int | None,
        currency: str | None,
        customer_id: UUID | None,
        group_id: UUID | None,
        product_ids: list[UUID],
        valid_from: datetime | None,
        valid_to: datetime | None,
    ):
        self.name = name
        self.kind = kind
        self.percent = percent
        self.amount = amount
        self.currency = currency
        self.customer_id = customer_id
        self.group_id = group_id
        self.product_ids = product_ids
        self.valid_from = valid_from
        self.valid_to = valid_to

    @event("Changed")
    def change(self, name: str, valid_from: datetime | None, valid_to: datetime | None) -> None:
        self.name = name
        self.valid_from = valid_from
        self.valid_to = valid_to

    @event("Ended")
    def end(self, at: datetime) -> None:
        """No longer given from `at` on; invoices already priced with it keep it."""
        self.valid_to = at


class CustomerUser(TwoFactorAccount):
    """One of a customer's own users, with what they may do."""

    @event("Added")
    def __init__(
        self,
        customer_id: UUID,
        username: str,
        email: str,
        name: str,
        permissions: list[str],
    ):
        self.customer_id = customer_id
        self.username = username
        self.email = email
        self.name = name
        self.permissions = permissions
        self.removed = False

    @event("Removed")
    def remove(self) -> None:
        self.removed = True

    @event("PasswordChanged")
    def change_password(self) -> None:
        """The password was changed (its hash: the `credentials` table, saved with this)."""


class Payer(Aggregate):
    """Who pays a customer's invoices, with the details printed on them."""

    @event("Added")
    def __init__(self, customer_id: UUID, kind: str, name: str, details: dict):
        self.customer_id = customer_id
        self.kind = kind
        self.name = name
        self.details = details


class StaffMember(TwoFactorAccount):
    @event("Registered")
    def __init__(
        self,
        username: str,
        name: str,
        email: str | None,
        role: str,
        language: str,
        notify: dict,
    ):
        self.username = username
        self.name = name
        self.email = email
        self.role = role
        self.language = language
        self.active = True
        self.notify = dict(notify)

    @event("Edited")
    def edit(self, changes: dict) -> None:
        """An administrator's change of role, name, language or notification preferences;
        `changes` holds only what changed (`notify`: the preferences as they now are)."""
        for key, value in changes.items():
            setattr(self, key, dict(value) if key == "notify" else value)

    @event("Disabled")
    def disable(self, reason: str | None) -> None:
        self.active = False

    @event("PasswordChanged")
    def change_password(self) -> None:
        """The password was changed (its hash: the `credentials` table, saved with this)."""

    @event("ImpersonationStarted")
    def start_impersonation(self, customer_id: UUID) -> None:
        pass

    @event("ImpersonationEnded")
    def end_impersonation(self, customer_id: UUID) -> None:
        pass


def drop_password_hash(state: dict) -> None:
    """Version 1 of an event that set a password, as stored, to version 2: without the
    hash it carried (moved to the `credentials` table: credentials.py)."""
    state.pop("password_hash", None)


# the events that set a password; version 1 carried its hash. The library makes these
# classes from the decorated methods; their names, and so their stored topics, stay.
PASSWORD_EVENTS = (
    Customer.Registered,
    Customer.PasswordChanged,
    CustomerUser.Added,
    CustomerUser.PasswordChanged,
    StaffMember.Registered,
    StaffMember.PasswordChanged,
)
for _event_class in PASSWORD_EVENTS:
    _event_class.class_version = 2
    _event_class.upcast_v1_v2 = staticmethod(drop_password_hash)
del _event_class


_INDEX_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/index")


class LoginName(KeyedIndex):
    """Index: one per username (any case). Saving a second one for a name fails."""

    id_namespace = _INDEX_NS
    id_prefix = "login"
    key_fields = ("name",)

    @classmethod
    def key_text(cls, name: str) -> str:
        return name.strip().lower()

    @event("Claimed")
    def __init__(self, name: str, owner_kind: str, owner_id: UUID):
        self.name = name
        self.owner_kind = owner_kind
        self.owner_id = owner_id


class CustomerEmail(KeyedIndex):
    """Index: one customer account per e-mail address."""

    id_namespace = _INDEX_NS
    id_prefix = "email"
    key_fields = ("email",)

    @classmethod
    def key_text(cls, email: str) -> str:
        return email.strip().lower()

    @event("Claimed")
    def __init__(self, email: str, customer_id: UUID):
        self.email = email
        self.customer_id = customer_id

    # a customer that changed its address lets the old one go (customer_id None: no
    # account has it); another customer, or the same one later, claims it again
    @event("Released")
    def release(self) -> None:
        self.customer_id = None

    @event("Reclaimed")
    def reclaim(self, customer_id: UUID) -> None:
        self.customer_id = customer_id


class DiscountsOf(KeyedIndex):
    """Index: the discounts given to one customer or one group (`owner_id`), saved with
    each discount, so an invoice is priced with all of them even while the lists lag."""

    id_namespace = _INDEX_NS
    id_prefix = "discounts"
    key_fields = ("owner_id",)

    @event("Started")
    def __init__(self, owner_id: UUID, discount_ids: list[UUID]):
        self.owner_id = owner_id
        self.discount_ids = list(discount_ids)

    @event("DiscountAdded")
    def add(self, discount_id: UUID) -> None:
        self.discount_ids = [*self.discount_ids, discount_id]


class PeopleEmail(KeyedIndex):
    """Index: the staff members and customers' users with an e-mail address (any case),
    saved with each of them, so who wrote a mail (or asked for a password reset) is found
    in the event store. Customers' own addresses are CustomerEmail's."""

    id_namespace = _INDEX_NS
    id_prefix = "people-email"
    key_fields = ("email",)

    @classmethod
    def key_text(cls, email: str) -> str:
        return email.strip().lower()

    @event("Started")
    def __init__(self, email: str, staff_ids: list[UUID], user_ids: list[UUID]):
        self.email = email
        self.staff_ids = list(staff_ids)
        self.user_ids = list(user_ids)

    @event("StaffAdded")
    def add_staff(self, staff_id: UUID) -> None:
        self.staff_ids = [*self.staff_ids, staff_id]

    @event("UserAdded")
    def add_user(self, user_id: UUID) -> None:
        self.user_ids = [*self.user_ids, user_id]


class StaffPolicy(KeyedIndex):
    """The rules every staff member's login follows: one, made the first time an
    administrator changes one. Its events say who changed what, and when."""

    id_namespace = _INDEX_NS
    id_prefix = "staff-policy"
    key_fields = ("name",)

    @event("Created")
    def __init__(self, name: str):
        self.two_factor_required = False

    @event("TwoFactorRequirementChanged")
    def require_two_factor(self, required: bool) -> None:
        """On: a staff member without two-factor authentication must set it up before
        anything else; off: each chooses."""
        self.two_factor_required = required
