"""Customers and access: registration, staff, login sessions."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import secrets
from datetime import timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts import customers as contract
from contracts.errors import (
    Conflict,
    Forbidden,
    InvalidCredentials,
    NotFound,
    PasswordRequired,
    RateLimited,
    TwoFactorSetupRequired,
    Unauthorized,
    ValidationFailed,
)
from contracts.fields import invalid
from services.customers import staff_customers
from services.customers.credentials import TABLES as CREDENTIALS_TABLES
from services.customers.credentials import PasswordCommands
from services.customers.domain import (
    Customer,
    CustomerEmail,
    CustomerGroup,
    CustomerUser,
    Discount,
    DiscountsOf,
    LoginName,
    Payer,
    PeopleEmail,
    Project,
    StaffMember,
    StaffPolicy,
)
from services.customers.email_change import TABLE as EMAIL_CHANGES_TABLE
from services.customers.email_change import claim_email
from services.customers.erasure import PERSONAL
from services.customers.mail_requests import TABLE as MAIL_REQUESTS_TABLE
from services.customers.mail_requests import request_statement
from services.customers.session_ends import SessionsEnd, end_sessions
from services.customers.staff_accounts import StaffAccountCommands
from services.customers.two_factor import SCHEMA as TWO_FACTOR_TABLES
from services.customers.two_factor import TwoFactorCommands
from services.infra import clock, context
from services.infra.application import HostledgerApplication
from services.infra.clock import isoformat
from services.infra.paging import MAX_PAGE_SIZE, page_window
from services.infra.passwords import generate_password
from services.infra.personal_data import SUBJECT, PersonalData
from services.infra.settings import settings

log = logging.getLogger(__name__)

# what a staff member is told of, unless they choose otherwise
STAFF_NOTIFICATIONS = {"new_ticket": True, "ticket_reply": True, "abuse_deadline": True}

SESSION_LIFETIME = {"staff": timedelta(hours=12), "client": timedelta(days=7)}

SCHEMA = (
    "CREATE SEQUENCE IF NOT EXISTS customer_number_seq START 1001",
    """
    CREATE TABLE IF NOT EXISTS sessions (
        token_hash text PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('staff', 'client')),
        staff_id uuid,
        customer_id uuid,
        impersonator_id uuid,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS sessions_customer ON sessions (customer_id)",
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS user_id uuid",
    # an impersonation session belongs to the staff session it was started from: it ends
    # when that one ends; `parent_token_sealed` is that session's token, readable only
    # with the impersonation token itself (so /auth/return gives the same session back)
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS parent_token_hash text",
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS parent_token_sealed text",
    "CREATE INDEX IF NOT EXISTS sessions_parent ON sessions (parent_token_hash)",
    "CREATE INDEX IF NOT EXISTS sessions_staff ON sessions (staff_id)",
    "CREATE INDEX IF NOT EXISTS sessions_impersonator ON sessions (impersonator_id)",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id)",
    # attempts counted per key (an account and an address, an account, an address) in a
    # fixed window from the first one; counted by one atomic upsert per key
    """
    CREATE TABLE IF NOT EXISTS login_attempts (
        key text PRIMARY KEY,
        failures integer NOT NULL,
        window_start timestamptz NOT NULL
    )
    """,
    "DROP TABLE IF EXISTS auth_failures",
    # password reset links: only the token's hash is kept; used once, then void
    """
    CREATE TABLE IF NOT EXISTS password_resets (
        token_hash text PRIMARY KEY,
        owner_kind text NOT NULL,
        owner_id uuid NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS password_resets_owner ON password_resets (owner_id)",
    *MAIL_REQUESTS_TABLE,
    *TWO_FACTOR_TABLES,
    *EMAIL_CHANGES_TABLE,
    *CREDENTIALS_TABLES,
)

# Failed logins allowed per window. `pair`: one account from one address (the owner
# elsewhere keeps logging in); `account`: one account from everywhere (slows a guess
# spread over many addresses); `addr`: one address at any account. Password resets
# asked per address and mails sent per account have their own budgets.
RATE_WINDOW = timedelta(minutes=15)
RATE_LIMITS = {"pair": 10, "account": 100, "addr": 50, "reset_addr": 10, "reset_mail": 3}
RESET_LIFETIME = timedelta(hours=1)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _pad(key: str, length: int) -> bytes:
    return hashlib.shake_256(b"hostledger-return:" + key.encode()).digest(length)


def _seal(secret: str, key: str) -> str:
    """`secret` readable only with `key` (a random token used for nothing else)."""
    data = secret.encode()
    return bytes(a ^ b for a, b in zip(data, _pad(key, len(data)), strict=True)).hex()


def _unseal(sealed: str, key: str) -> str:
    data = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(data, _pad(key, len(data)), strict=True)).decode()


class Customers(TwoFactorCommands, StaffAccountCommands, PasswordCommands, HostledgerApplication):
    name = "customers"
    service = "customers"
    publications = {
        Customer.Registered: contract.CustomerRegistered,
        Customer.Edited: contract.CustomerUpdated,
        Customer.Corrected: contract.CustomerUpdated,
        Customer.Deleted: contract.CustomerDeleted,
        Customer.PasswordChanged: contract.PasswordChanged,
        StaffMember.Registered: contract.StaffRegistered,
        Project.Created: contract.ProjectCreated,
        Project.Updated: contract.ProjectUpdated,
        Project.Removed: contract.ProjectRemoved,
        # what billing prices invoices with (its discount book)
        Discount.Created: contract.DiscountGiven,
        Discount.Changed: contract.DiscountChanged,
        Discount.Ended: contract.DiscountEnded,
        PersonalData.Erased: contract.CustomerErased,
        # what every gateway's session cache follows (session_ends.py)
        SessionsEnd.Recorded: contract.SessionsEnded,
        StaffMember.Edited: contract.StaffUpdated,
        StaffMember.Disabled: contract.StaffUpdated,
        StaffMember.TwoFactorEnabled: contract.StaffUpdated,
        StaffMember.TwoFactorDisabled: contract.StaffUpdated,
        StaffMember.TwoFactorReset: contract.StaffUpdated,
        StaffPolicy.TwoFactorRequirementChanged: contract.StaffPolicyChanged,
    }
    schema_statements = SCHEMA
    # names, e-mails, phones, addresses: sealed with each customer's key (erasure.py)
    personal = PERSONAL

    # -- customers ------------------------------------------------------------------------

    def register_customer(
        self,
        data: dict,
        idempotency_key: str | None = None,
        request: dict | None = None,
        mail_credentials: str | None = None,
    ) -> dict:
        """Register a customer; `credentials` carries the generated password, once: a
        request repeated with the same Idempotency-Key answers the customer without it.
        With `mail_credentials` (the reason, `order`), a generated password is also mailed
        to the customer: the request for that mail is recorded with the registration."""
        earlier = self.idempotent_answer("customer", idempotency_key, request or {})
        if earlier is not None:
            return earlier
        if data.get("project_id"):
            self._refer(data["project_id"], Project, "project", "project_id")
        password = data.get("password")
        generated = password is None
        if generated:
            password = generate_password()
        number = self._next_customer_number()
        username = data.get("username") or f"c{number}"
        customer = Customer(
            number=number,
            kind=data["kind"],
            email=data["email"].strip(),
            username=username,
            country=data["country"],
            contact_person=data["contact_person"].strip(),
            company_name=(data.get("company_name") or "").strip() or None,
            language=data.get("language") or "en",
            project_id=data.get("project_id"),
            currency=data.get("currency") or "EUR",
            registered_at=clock.now(),
            registration_ip=data.get("registration_ip"),
        )
        referral = {}  # who referred the customer, how it heard of us: saved with it
        if data.get("referrer_id"):
            referral["referrer_id"] = data["referrer_id"]
            referral["referral_source"] = f"referral code {data['referral_code']}"
        if data.get("referral_source"):
            referral["referral_source"] = data["referral_source"]
        if referral:
            customer.edit(referral)
        password_set = self.password_statement(customer, password)
        login = LoginName(name=username, owner_kind="client", owner_id=customer.id)
        email = claim_email(self, customer.email, customer.id)
        answer = self.customer_view(customer)
        key = self.idempotency_record(
            "customer", idempotency_key, request or {}, answer, customer_id=customer.id
        )
        mail = [password_set]
        if generated and mail_credentials:
            details = {"username": username, "reason": mail_credentials}
            mail.append(request_statement("account_credentials", customer.id, details, password))
        try:
            self.save(customer, login, email, key, also=mail)
        except IntegrityError:
            earlier = self.idempotent_answer("customer", idempotency_key, request or {})
            if earlier is not None:
                return earlier  # the same request, made twice at once
            self._raise_taken(username, customer.email)
        if generated:
            answer["credentials"] = {"username": username, "password": password}
        return answer

    def _raise_taken(self, username: str, email: str) -> None:
        fields = {}
        if self._exists(LoginName.id_for(username)):
            fields["username"] = ["This username is taken."]
        if self._exists(CustomerEmail.id_for(email)):
            fields["email"] = ["An account with this e-mail already exists."]
        raise Conflict(
            "A customer with this " + " and ".join(sorted(fields) or ["identity"]) + " exists.",
            fields=fields or None,
        )

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _next_customer_number(self) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT nextval('customer_number_seq') AS n")
            return curs.fetchone()["n"]

    def get_customer(self, customer_id: UUID) -> Customer:
        try:
            customer = self.repository.get(customer_id)
        except AggregateNotFoundError:
            raise NotFound("No such customer.") from None
        if not isinstance(customer, Customer) or customer.deleted:
            raise NotFound("No such customer.")
        return customer

    def customer_and_notification_settings(self, customer_id: UUID) -> dict:
        """{"customer": customer_view, "notification_settings"}: both read from one version
        of the customer (what the mail gateway needs for each notice it queues). NotFound
        as get_customer."""
        customer = self.get_customer(customer_id)
        return {
            "customer": self.customer_view(customer),
            "notification_settings": dict(customer.notification_settings),
        }

    @staticmethod
    def customer_view(c: Customer) -> dict:
        return {
            "id": str(c.id),
            "number": c.number,
            "kind": c.kind,
            "name": c.name,
            "email": c.email,
            "username": c.username,
            "country": c.country,
            "contact_person": c.contact_person,
            "company_name": c.company_name,
            "language": c.language,
            "project_id": str(c.project_id) if c.project_id else None,
            "currency": c.currency,
            "registered_at": isoformat(c.registered_at),
            "registration_ip": c.registration_ip,
            "phone": c.phone,
            "address": c.address,
            "verified_phone": c.verified_phone,
            "note": c.note,
            "attitude": c.attitude,
            "referral_source": c.referral_source,
            "referrer_id": str(c.referrer_id) if c.referrer_id else None,
            # an id; a name recorded before programs were referenced by id reads as its id
            "affiliate_program": contract.affiliate_program_ref(c.affiliate_program),
            "group_ids": [str(g) for g in c.group_ids],
            "version": c.version,
        }

    # -- staff ----------------------------------------------------------------------------

    def register_staff(
        self,
        username: str,
        name: str,
        role: str,
        password: str | None = None,
        email: str | None = None,
        language: str = "en",
        notify: dict | None = None,
    ) -> tuple[StaffMember, str | None]:
        generated = None
        if password is None:
            password = generated = generate_password()
        member = StaffMember(
            username=username,
            name=name,
            email=email,
            role=role,
            language=language,
            notify=dict(STAFF_NOTIFICATIONS, **(notify or {})),
        )
        self._save_claiming(username, "staff", member, email, password)
        return member, generated

    def _save_claiming(
        self, username: str, kind: str, owner, email: str | None, password: str
    ) -> None:
        """Save `owner` with the claim on its login name, its place in the index of its
        e-mail and its password's hash, atomically; 409 when the name is taken."""
        login = LoginName(name=username, owner_kind=kind, owner_id=owner.id)
        people = None
        if email:
            people = self._people_email(email)
            (people.add_staff if kind == "staff" else people.add_user)(owner.id)
            if kind == "user":
                # a new index entry's address is sealed with the key of the user's customer
                for pending in people.pending_events:
                    object.__setattr__(pending, SUBJECT, owner.customer_id)
        try:
            self.save(owner, login, people, also=[self.password_statement(owner, password)])
        except IntegrityError:
            if not self._exists(LoginName.id_for(username)):
                # someone with the same e-mail was added at the same moment
                raise Conflict("Someone else changed this at the same moment; try again.") from None
            raise Conflict(
                "This username is taken.", fields={"username": ["This username is taken."]}
            ) from None

    def _people_email(self, email: str) -> PeopleEmail:
        """The index of who has `email`; a new one (not saved yet) when there is none."""
        try:
            return self.repository.get(PeopleEmail.id_for(email))
        except AggregateNotFoundError:
            pass
        # staff and users added before the index existed are listed only by the read
        # models, which have long projected them: the new index starts with them
        address = PeopleEmail.key_text(email)
        staff_ids, user_ids = [], []
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT to_regclass('staff_list') IS NOT NULL AS staff,"
                " to_regclass('user_emails') IS NOT NULL AS users"
            )
            listed = curs.fetchone()
            if listed["staff"]:
                curs.execute(
                    "SELECT staff_id FROM staff_list WHERE lower(email) = %s ORDER BY staff_id",
                    (address,),
                )
                staff_ids = [r["staff_id"] for r in curs.fetchall()]
            if listed["users"]:
                curs.execute(
                    "SELECT user_id FROM user_emails WHERE email = %s ORDER BY user_id",
                    (address,),
                )
                user_ids = [r["user_id"] for r in curs.fetchall()]
        return PeopleEmail(email=address, staff_ids=staff_ids, user_ids=user_ids)

    def staff_exists(self) -> bool:
        from eventsourcing.utils import get_topic

        return bool(
            self.recorder.select_notifications(1, 1, topics=[get_topic(StaffMember.Registered)])
        )

    def ensure_first_admin(self, username: str, password: str | None) -> dict | None:
        """Create the first administrator when no staff exist; None when some do."""
        if self.staff_exists():
            return None
        try:
            member, generated = self.register_staff(
                username=username, name="Administrator", role="admin", password=password
            )
        except Conflict:
            return None  # another instance created it meanwhile
        return {"staff_id": str(member.id), "username": username, "password": generated}

    @staticmethod
    def staff_view(m: StaffMember) -> dict:
        return {
            "id": str(m.id),
            "username": m.username,
            "name": m.name,
            "email": m.email,
            "role": m.role,
            "language": m.language,
            "active": m.active,
            "notifications": dict(m.notify),
        }

    # -- editing ----------------------------------------------------------------------------

    def edit_customer(self, customer_id: UUID, changes: dict) -> Customer:
        """Staff edit; `version`, when given, must be the current one (else 409).
        Corrections of what the customer registered with (contract.CORRECTIONS) are
        recorded apart, with their `reason`, in the same save."""
        customer = self.get_customer(customer_id)
        self._check_version(customer, changes.pop("version", None))
        reason = changes.pop("reason", None)
        corrections = {k: changes.pop(k) for k in contract.CORRECTIONS if k in changes}
        indexes = staff_customers.correct(self, customer, corrections, reason)
        if "referrer_id" in changes and changes["referrer_id"] is not None:
            if changes["referrer_id"] == customer.id:
                raise ValidationFailed(
                    "A customer cannot refer itself.", {"referrer_id": ["Not this customer."]}
                )
            referrer = self._refer(changes["referrer_id"], Customer, "customer", "referrer_id")
            if referrer.deleted:
                raise invalid("referrer_id", "No such customer.")
        for i, group_id in enumerate(changes.get("group_ids") or ()):
            self._refer(group_id, CustomerGroup, "group", f"group_ids.{i}")
        return self._apply_edit(customer, changes, indexes)

    def edit_profile(self, customer_id: UUID, changes: dict) -> Customer:
        customer = self.get_customer(customer_id)
        self._check_version(customer, changes.pop("version", None))
        return self._apply_edit(customer, changes)

    def _apply_edit(self, customer: Customer, changes: dict, also: list = ()) -> Customer:
        """Record what changes (with `also`, aggregates changed with it: one save)."""
        current = self.customer_view(customer)
        changed = {
            k: v
            for k, v in changes.items()
            if _plain(v) != current.get(k, _plain(getattr(customer, k, None)))
        }
        if changed:
            customer.edit(changed)
        if customer.pending_events:
            try:
                self.save(customer, *also)
            except IntegrityError:
                raise Conflict("Someone else changed this at the same moment; try again.") from None
        return customer

    @staticmethod
    def _check_version(customer: Customer, version: int | None) -> None:
        if version is not None and version != customer.version:
            raise Conflict(
                f"The customer changed since you read it (version {customer.version}, "
                f"you sent {version}). Read it again.",
                fields={"version": [f"Current version is {customer.version}."]},
            )

    def change_password(self, customer_id: UUID, current: str, new: str, keep_token: str | None):
        customer = self.get_customer(customer_id)
        _refuse_while_acting("change the client's password")
        # guessing the current password counts like a login, from the session's own budget
        keys = {"pair": f"pair:{customer.id}|password-change", "account": f"account:{customer.id}"}
        self._reserve(keys)
        if not self.password_matches(customer, current):
            raise InvalidCredentials("The current password is wrong.")
        self._give_back(keys)
        customer.change_password()
        self.save(customer, also=[self.password_statement(customer, new)])
        self.end_sessions(customer_id=customer.id, except_token=keep_token, reason="password")

    def set_notification_settings(self, customer_id: UUID, settings: dict) -> dict:
        customer = self.get_customer(customer_id)
        if any(customer.notification_settings.get(k) != v for k, v in settings.items()):
            customer.set_notification_settings(settings)
            self.save(customer)
        return dict(customer.notification_settings)

    def service_started(self, customer_id: UUID, service_id: UUID, product_id: UUID) -> None:
        customer = self.get_customer_or_none(customer_id)
        sid = str(service_id)
        if customer is None or sid in customer.active_services:
            return
        if sid in customer.ended_services:
            return  # its end was applied first (this start was parked, then retried)
        customer.service_started(service_id=service_id, product_id=product_id)
        self.save(customer)

    def service_ended(self, customer_id: UUID, service_id: UUID, product_id: UUID) -> None:
        """Recorded even when its start was not applied here yet (parked): that start,
        applied later, then changes nothing."""
        customer = self.get_customer_or_none(customer_id)
        if customer is not None and str(service_id) not in customer.ended_services:
            customer.service_ended(
                service_id=service_id,
                product_id=product_id,
                was_active=str(service_id) in customer.active_services,
            )
            self.save(customer)

    def delete_customer(self, customer_id: UUID, forced: bool, reason: str | None) -> None:
        customer = self.get_customer(customer_id)
        if customer.active_services and not forced:
            raise Conflict(
                f"The customer has {len(customer.active_services)} active service(s); "
                "terminate them first or have an administrator force the deletion."
            )
        customer.delete(forced=forced, reason=reason)
        self.save(customer)
        self.end_sessions(customer_id=customer.id, reason="customer_deleted")

    # -- groups, projects, discounts ----------------------------------------------------------

    def create_group(self, data: dict) -> CustomerGroup:
        group = CustomerGroup(name=data["name"], description=data.get("description", ""))
        self.save(group)
        return group

    def create_project(self, data: dict) -> Project:
        seller = dict(data.get("seller") or {})
        seller.setdefault("legal_name", data["name"])
        seller.setdefault("email", data["sender_email"])
        project = Project(
            name=data["name"],
            sender_email=data["sender_email"],
            sender_name=data.get("sender_name") or data["name"],
            seller=seller,
            allow_credit=data["allow_credit"],
            renew_days_before=data.get("renew_days_before"),
            suspend_after_days=data.get("suspend_after_days"),
            terminate_after_days=data.get("terminate_after_days"),
        )
        self.save(project)
        return project

    def change_project(self, project_id: UUID, changes: dict) -> Project:
        """Staff rename a project, change its mails' sender, or its renewal and dunning
        days (only those given); each kind of change its own event, saved at once. An
        empty sender name is the project's name."""
        try:
            project = self.repository.get(project_id)
        except AggregateNotFoundError:
            project = None
        if not isinstance(project, Project) or project.removed:
            raise NotFound("No such project.")
        changes = dict(changes)
        details = {k: changes.pop(k) for k in Project.DETAILS if k in changes}
        if "name" in details:
            details["name"] = details["name"].strip()
            if not details["name"]:
                raise invalid("name", "A project needs a name.")
        if "sender_email" in details:
            details["sender_email"] = details["sender_email"].strip()
        if "sender_name" in details:
            details["sender_name"] = (details["sender_name"] or "").strip() or details.get(
                "name", project.name
            )
        details = {k: v for k, v in details.items() if v != getattr(project, k)}
        terms = {k: getattr(project, k) for k in Project.RENEWAL_TERMS} | changes
        suspend, terminate = terms["suspend_after_days"], terms["terminate_after_days"]
        if suspend is not None and terminate is not None and terminate < suspend:
            raise ValidationFailed(
                "Termination cannot come before suspension.",
                {"terminate_after_days": ["Termination cannot come before suspension."]},
            )
        if details:
            project.change(details)
        project.change_renewal_terms(changes)
        if project.pending_events:
            try:
                self.save(project)
            except IntegrityError:
                raise Conflict("Someone else changed this at the same moment; try again.") from None
        return project

    def create_discount(self, data: dict) -> Discount:
        errors: dict = {}
        money = data.get("amount")  # {"amount", "currency"}
        if data["kind"] == "percentage":
            if data.get("percent") is None:
                errors["percent"] = ["A percentage discount needs its percent."]
            if money is not None:
                errors["amount"] = ["Only for a fixed discount."]
        else:
            if money is None:
                errors["amount"] = ["A fixed discount needs its amount (money)."]
            if data.get("percent") is not None:
                errors["percent"] = ["Only for a percentage discount."]
        if (data.get("customer_id") is None) == (data.get("group_id") is None):
            errors["customer_id"] = ["Give either a customer or a group."]
        if (
            data.get("valid_from")
            and data.get("valid_to")
            and data["valid_to"] <= data["valid_from"]
        ):
            errors["valid_to"] = ["Must be after valid_from."]
        if errors:
            raise ValidationFailed("The discount is not consistent.", errors)
        if data.get("customer_id"):
            found = self._refer(data["customer_id"], Customer, "customer", "customer_id")
            if found.deleted:
                raise invalid("customer_id", "No such customer.")
            if money is not None and money["currency"] != found.currency:
                raise invalid("amount.currency", f"Not the customer's currency ({found.currency}).")
        if data.get("group_id"):
            self._refer(data["group_id"], CustomerGroup, "group", "group_id")
        discount = Discount(
            name=data["name"],
            kind=data["kind"],
            percent=str(data["percent"]) if data.get("percent") is not None else None,
            amount=money["amount"] if money else None,
            currency=money["currency"] if money else None,
            customer_id=data.get("customer_id"),
            group_id=data.get("group_id"),
            product_ids=list(data.get("product_ids") or []),
            valid_from=data.get("valid_from"),
            valid_to=data.get("valid_to"),
        )
        index = self._discounts_of(discount.customer_id or discount.group_id)
        index.add(discount_id=discount.id)
        try:
            self.save(discount, index)
        except IntegrityError:
            raise Conflict("Someone else changed this at the same moment; try again.") from None
        return discount

    def discounts_for(self, customer_id: UUID) -> list[Discount]:
        """The customer's discounts valid now (its own and its groups'), found through
        their indexes in the event store: an invoice issued a moment after a discount
        was given has it."""
        customer = self.get_customer(customer_id)
        now = clock.now()
        ids = []
        for owner_id in (customer.id, *customer.group_ids):
            ids += self._discounts_of(owner_id).discount_ids
        found = []
        for discount in (self.repository.get(i) for i in dict.fromkeys(ids)):
            if discount.customer_id != customer.id and discount.group_id not in customer.group_ids:
                continue
            if discount.valid_from and now < discount.valid_from:
                continue
            if discount.valid_to and now >= discount.valid_to:
                continue
            found.append(discount)
        return found

    def discount_book(self) -> dict:
        """Every discount (as published, with its version) and every customer in a group
        (its groups, with the customer's version): what billing's discount book starts
        from when it was kept before discounts were published."""
        with self.datastore.transaction() as curs:
            curs.execute("SELECT to_regclass('directory') IS NOT NULL AS listed")
            ids, members = [], []
            if curs.fetchone()["listed"]:
                curs.execute("SELECT id FROM directory WHERE kind = 'discount' ORDER BY id")
                ids = [r["id"] for r in curs.fetchall()]
            curs.execute("SELECT to_regclass('customer_list') IS NOT NULL AS listed")
            if curs.fetchone()["listed"]:
                curs.execute(
                    "SELECT customer_id FROM customer_list WHERE cardinality(group_ids) > 0"
                )
                members = [r["customer_id"] for r in curs.fetchall()]
        discounts = []
        for i in ids:
            d = self.repository.get(i)
            discounts.append(dict(discount_view(d), version=d.version))
        groups = []
        for i in members:
            c = self.repository.get(i)
            groups.append(
                {
                    "customer_id": str(c.id),
                    "group_ids": [str(g) for g in c.group_ids],
                    "version": c.version,
                }
            )
        return {"discounts": discounts, "groups": groups}

    def _discounts_of(self, owner_id: UUID) -> DiscountsOf:
        """The index of a customer's or a group's discounts; a new one (not saved yet)
        when there is none."""
        try:
            return self.repository.get(DiscountsOf.id_for(owner_id))
        except AggregateNotFoundError:
            pass
        # discounts given before the index existed are listed only by the directory,
        # which has long projected them: the new index starts with them
        older = []
        with self.datastore.transaction() as curs:
            curs.execute("SELECT to_regclass('directory') IS NOT NULL AS listed")
            if curs.fetchone()["listed"]:
                curs.execute(
                    "SELECT id FROM directory WHERE kind = 'discount'"
                    " AND (customer_id = %s OR customer_id IS NULL) ORDER BY created_at, id",
                    (owner_id,),
                )
                older = [r["id"] for r in curs.fetchall()]
        older = [
            d.id
            for d in (self.repository.get(i) for i in older)
            if owner_id in (d.customer_id, d.group_id)
        ]
        return DiscountsOf(owner_id=owner_id, discount_ids=older)

    def _refer(self, aggregate_id: UUID, cls: type, what: str, field: str):
        """The `cls` an id in a request names; a 400 naming `field` when there is none."""
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, cls) or getattr(aggregate, "removed", False):
            raise invalid(field, f"No such {what}.")
        return aggregate

    def _get(self, aggregate_id: UUID, cls: type, what: str):
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            aggregate = None
        if not isinstance(aggregate, cls):
            raise NotFound(f"No such {what}.")
        return aggregate

    # -- a customer's users and payers ----------------------------------------------------------

    def add_user(self, customer_id: UUID, data: dict) -> tuple[CustomerUser, str | None]:
        self.get_customer(customer_id)
        _refuse_while_acting("create users for the client")
        password = data.get("password")
        generated = None
        if password is None:
            password = generated = generate_password()
        user = CustomerUser(
            customer_id=customer_id,
            username=data["username"],
            email=data["email"],
            name=data["name"],
            permissions=sorted(set(data["permissions"])),
        )
        self._save_claiming(data["username"], "user", user, data["email"], password)
        return user, generated

    def remove_user(self, customer_id: UUID, user_id: UUID) -> None:
        user = self._get(user_id, CustomerUser, "user")
        if user.customer_id != customer_id or user.removed:
            raise NotFound("No such user.")
        user.remove()
        self.save(user)
        self.end_sessions(user_id=user.id, reason="user_removed")

    def add_payer(self, customer_id: UUID, data: dict) -> Payer:
        self.get_customer(customer_id)
        details = {
            k: data.get(k) for k in ("tax_id", "registration_number", "address", "country", "email")
        }
        payer = Payer(
            customer_id=customer_id, kind=data["kind"], name=data["name"], details=details
        )
        self.save(payer)
        return payer

    # -- staff ---------------------------------------------------------------------------------

    def get_staff(self, staff_id: UUID) -> StaffMember:
        return self._get(staff_id, StaffMember, "staff member")

    def _other_active_admins(self, staff_id: UUID) -> int:
        """Read from the event store (every StaffMember.Registered), never from the staff
        list: one registered a moment ago counts."""
        from eventsourcing.utils import get_topic

        topics, ids, start = [get_topic(StaffMember.Registered)], [], 1
        while batch := self.recorder.select_notifications(start, 1000, topics=topics):
            ids += [n.originator_id for n in batch]
            start = batch[-1].id + 1
        count = 0
        for member_id in ids:
            if member_id == staff_id:
                continue
            member = self.get_staff(member_id)
            count += member.active and member.role == "admin"
        return count

    def edit_staff(self, staff_id: UUID, changes: dict) -> StaffMember:
        """An administrator changes a member's role, name, language or notification
        preferences (only what is given). The last active administrator keeps the role."""
        member = self.get_staff(staff_id)
        wanted = {}
        for key in ("role", "name", "language"):
            if key in changes and changes[key] != getattr(member, key):
                wanted[key] = changes[key]
        if changes.get("notifications"):
            notify = dict(member.notify, **changes["notifications"])
            if notify != member.notify:
                wanted["notify"] = notify
        if not wanted:
            return member
        if member.role == "admin" and wanted.get("role", "admin") != "admin" and member.active:
            if not self._other_active_admins(member.id):
                raise Conflict(
                    "This is the last active administrator: make another one first.",
                    {"role": ["The last active administrator keeps this role."]},
                )
        member.edit(wanted)
        self.save(member)
        return member

    def disable_staff(self, staff_id: UUID, reason: str | None = None) -> StaffMember:
        """The member can no longer log in; every session of theirs, and every client
        panel they are in, ends at once. The last active administrator cannot be disabled."""
        member = self.get_staff(staff_id)
        if member.active:
            if member.role == "admin" and not self._other_active_admins(member.id):
                raise Conflict("This is the last active administrator: make another one first.")
            member.disable(reason=reason)
            self.save(member)
        self.end_staff_sessions(member.id)
        return member

    # -- sessions ------------------------------------------------------------------------------

    def login(
        self,
        username: str,
        password: str,
        address: str | None = None,
        otp: str | None = None,
        recovery_code: str | None = None,
        challenge: bool = False,
    ) -> dict:
        """A new session for a client, a client's user or staff.

        Each attempt is counted before the password is checked, atomically, against the
        account from this address, the account from everywhere, and this address: 429
        (with when to try again) once one has no attempt left; a right password gives
        its attempt back. The username and the e-mail of one account share its budget.
        An account with two-factor authentication on needs its code too (`otp`, or a
        recovery code): without one, 401 two_factor_required (with `challenge`, carrying
        one for the web's second step); a wrong one counts as a wrong password
        (two_factor.py).
        """
        owner = self._find_login(username)
        account = str(owner.id) if owner is not None else "name:" + username.strip().lower()
        keys = self._login_keys(account, address)
        self._reserve(keys)
        if not self.password_matches(owner, password):
            raise InvalidCredentials("The username or password is wrong.")
        if isinstance(owner, StaffMember) and not owner.active:
            raise InvalidCredentials("The username or password is wrong.")
        if owner.two_factor:
            self._second_factor(owner, keys, otp, recovery_code, challenge)
        self._give_back(keys)
        session = self._session_for(owner)
        if isinstance(owner, StaffMember) and self.two_factor_setup_required(owner):
            session["two_factor_setup_required"] = True  # staff_accounts.py: the policy
        return session

    def customer_for_order(self, email: str, password: str | None, address: str | None):
        """The account an order's e-mail belongs to (its password required), or None for a
        new e-mail. Wrong passwords count toward the account's login limits."""
        try:
            index = self.repository.get(CustomerEmail.id_for(email))
        except AggregateNotFoundError:
            return None
        if index.customer_id is None:
            return None  # an address its customer let go (email_change.py)
        customer = self.get_customer_or_none(index.customer_id)
        if customer is None:
            raise Conflict(
                "This e-mail belonged to a deleted account; use another one.",
                {"email": ["Belonged to a deleted account."]},
            )
        if not password:
            raise PasswordRequired(
                "This e-mail already has an account: give its password to order with it."
            )
        keys = self._login_keys(str(customer.id), address)
        self._reserve(keys)
        if not self.password_matches(customer, password):
            raise InvalidCredentials("The password of this account is wrong.")
        self._give_back(keys)
        return customer

    @staticmethod
    def _login_keys(account: str, address: str | None) -> dict[str, str]:
        keys = {"pair": f"pair:{account}|{address or '-'}", "account": f"account:{account}"}
        if address and not _exempt(address):
            keys["addr"] = f"addr:{address}"
        return keys

    def order_form_attempt(self, email: str, address: str | None) -> None:
        """Count one use of the public order form by this address and for this e-mail:
        429 (with when to try again) past HOSTLEDGER_ORDER_FORM_LIMIT per address or
        HOSTLEDGER_ORDER_FORM_EMAIL_LIMIT per e-mail in the window."""
        keys = {"order_email": f"order-email:{email.strip().lower()}"}
        if address and not _exempt(address):
            keys["order_addr"] = f"order-addr:{address}"
        self._reserve(keys, "orders from this address or for this e-mail")

    def _reserve(self, keys: dict[str, str], what: str = "failed logins") -> None:
        """Count one attempt on every key in one transaction; when a key has none left,
        nothing is counted and RateLimited says when to try again."""
        now = clock.now()
        expired = now - RATE_WINDOW
        with self.datastore.transaction(commit=True) as curs:
            for kind, key in sorted(keys.items(), key=lambda item: item[1]):
                curs.execute(
                    "INSERT INTO login_attempts AS a (key, failures, window_start)"
                    " VALUES (%(key)s, 1, %(now)s) ON CONFLICT (key) DO UPDATE SET"
                    " failures = CASE WHEN a.window_start <= %(expired)s THEN 1"
                    "  ELSE a.failures + 1 END,"
                    " window_start = CASE WHEN a.window_start <= %(expired)s THEN %(now)s"
                    "  ELSE a.window_start END"
                    " WHERE a.window_start <= %(expired)s OR a.failures < %(limit)s"
                    " RETURNING failures",
                    {"key": key, "now": now, "expired": expired, "limit": _limit(kind)},
                )
                if curs.fetchone() is None:
                    curs.execute("SELECT window_start FROM login_attempts WHERE key = %s", (key,))
                    row = curs.fetchone()
                    ends = (row["window_start"] if row else now) + RATE_WINDOW
                    wait = max(1, math.ceil((ends - now).total_seconds()))
                    log.warning("rate limit reached for %s", key.split("|", 1)[0])
                    raise RateLimited(
                        f"Too many {what}. Try again in {math.ceil(wait / 60)} minute(s).",
                        retry_after=wait,
                    )

    def _give_back(self, keys: dict[str, str]) -> None:
        """A right password: its attempt does not count."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE login_attempts SET failures = greatest(failures - 1, 0)"
                " WHERE key = ANY(%s)",
                (sorted(keys.values()),),
            )
            curs.execute(
                "DELETE FROM login_attempts WHERE window_start < %s",
                (clock.now() - RATE_WINDOW,),
            )

    def _find_login(self, username: str):
        name = username.strip()
        for index_id in (LoginName.id_for(name), CustomerEmail.id_for(name)):
            try:
                index = self.repository.get(index_id)
            except AggregateNotFoundError:
                continue
            owner_id = getattr(index, "owner_id", None) or getattr(index, "customer_id", None)
            if owner_id is None:
                continue  # an address its customer let go (email_change.py)
            try:
                owner = self.repository.get(owner_id)
            except AggregateNotFoundError:
                continue
            if isinstance(owner, Customer) and owner.deleted:
                return None
            if isinstance(owner, CustomerUser):
                if owner.removed or self.get_customer_or_none(owner.customer_id) is None:
                    return None
            return owner
        return None

    def get_customer_or_none(self, customer_id: UUID) -> Customer | None:
        try:
            return self.get_customer(customer_id)
        except NotFound:
            return None

    def _open_session(
        self,
        kind: str,
        staff_id=None,
        customer_id=None,
        impersonator_id=None,
        user_id=None,
        parent_token: str | None = None,
        parent_expires=None,
    ):
        token = secrets.token_urlsafe(32)
        now = clock.now()
        expires = now + SESSION_LIFETIME[kind]
        if parent_expires is not None:
            expires = min(expires, parent_expires)
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO sessions (token_hash, kind, staff_id, customer_id, impersonator_id,"
                " user_id, created_at, expires_at, parent_token_hash, parent_token_sealed)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    _token_hash(token),
                    kind,
                    staff_id,
                    customer_id,
                    impersonator_id,
                    user_id,
                    now,
                    expires,
                    _token_hash(parent_token) if parent_token else None,
                    _seal(parent_token, token) if parent_token else None,
                ),
            )
        answer = {"token": token, "kind": kind}
        if customer_id:
            answer["customer_id"] = str(customer_id)
        if staff_id:
            answer["staff_id"] = str(staff_id)
        if user_id:
            answer["user_id"] = str(user_id)
        return answer

    def _session_row(self, token: str) -> dict:
        """The live session of `token`; an impersonation session lives only while the
        staff session it came from does."""
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT s.kind, s.staff_id, s.customer_id, s.impersonator_id, s.user_id,"
                " s.expires_at, s.revoked_at, s.parent_token_hash, s.parent_token_sealed,"
                " p.expires_at AS parent_expires_at, p.revoked_at AS parent_revoked_at"
                " FROM sessions s LEFT JOIN sessions p ON p.token_hash = s.parent_token_hash"
                " WHERE s.token_hash = %s",
                (_token_hash(token),),
            )
            row = curs.fetchone()
        now = clock.now()
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
            raise Unauthorized("The session has ended or the token is not valid.")
        if row["impersonator_id"] and (
            row["parent_expires_at"] is None
            or row["parent_revoked_at"] is not None
            or row["parent_expires_at"] <= now
        ):
            raise Unauthorized("The staff session this client session was started from has ended.")
        return row

    def resolve_session(self, token: str) -> dict:
        """Who holds this token: kind, ids and (staff) role. Unauthorized when not valid."""
        return self._principal(self._session_row(token))

    def session_entry(self, token: str) -> dict:
        """`resolve_session`'s answer as `principal`, with what a gateway needs to keep it
        for a moment (gateway/session_cache.py): `expires_at`, when it ends at the latest
        (an impersonation session never outlives the staff session it came from), and
        `parent_token_hash`, that staff session's (its logout ends this one too)."""
        row = self._session_row(token)
        ends = row["expires_at"]
        if row["parent_expires_at"] is not None:
            ends = min(ends, row["parent_expires_at"])
        return {
            "principal": self._principal(row),
            "expires_at": isoformat(ends),
            "parent_token_hash": row["parent_token_hash"],
        }

    def _principal(self, row: dict) -> dict:
        principal = {"kind": row["kind"]}
        try:
            if row["staff_id"]:
                member = self.get_staff(row["staff_id"])
                if not member.active:
                    raise Unauthorized("This staff account is disabled.")
                principal.update(
                    staff_id=str(member.id),
                    role=member.role,
                    name=member.name,
                    username=member.username,
                )
                if self.two_factor_setup_required(member):
                    principal["two_factor_setup_required"] = True
            if row["customer_id"]:
                customer = self.get_customer(row["customer_id"])
                principal.update(
                    customer_id=str(customer.id),
                    username=customer.username,
                    name=customer.name,
                    permissions=["full"],
                )
            if row["user_id"]:
                user = self._get(row["user_id"], CustomerUser, "user")
                if user.removed:
                    raise Unauthorized("This user was removed.")
                principal.update(
                    user_id=str(user.id),
                    username=user.username,
                    name=user.name,
                    permissions=list(user.permissions),
                )
            if row["impersonator_id"]:
                member = self.get_staff(row["impersonator_id"])
                if not member.active:
                    raise Unauthorized("This staff account is disabled.")
                principal["impersonator"] = {
                    "staff_id": str(member.id),
                    "name": member.name,
                    "role": member.role,
                }
                if self.two_factor_setup_required(member):
                    # the staff policy holds in a client's area too (gateway: refused)
                    principal["impersonator"]["two_factor_setup_required"] = True
        except NotFound:
            raise Unauthorized("The session's account no longer exists.") from None
        return principal

    def logout(self, token: str) -> None:
        """End this session and, for a staff session, the client sessions started from it."""
        digest = _token_hash(token)
        end_sessions(
            self,
            "token_hash = %s OR parent_token_hash = %s",
            (digest, digest),
            "logout",
            token_hashes=[digest],
        )

    def end_sessions(
        self, customer_id=None, user_id=None, except_token: str | None = None, reason: str = ""
    ):
        column, value = ("user_id", user_id) if user_id else ("customer_id", customer_id)
        end_sessions(
            self,
            f"{column} = %s AND token_hash <> %s",
            (value, _token_hash(except_token) if except_token else ""),
            reason,
            **{column: value},
        )

    def end_staff_sessions(self, staff_id: UUID, reason: str = "staff_disabled") -> int:
        """Every session of the staff member, and every client panel they are in, at once."""
        ended = end_sessions(
            self,
            "staff_id = %s OR impersonator_id = %s",
            (staff_id, staff_id),
            reason,
            staff_id=staff_id,
        )
        return len(ended)

    # -- password reset ---------------------------------------------------------------------------

    def request_password_reset(
        self, username: str | None, email: str | None, address: str | None
    ) -> list[dict]:
        """Reset links for the account named by `username` (or its e-mail) or for every
        account of `email`: each link's mail is recorded as a mail request with the link
        (mail_requests.py), and its recipient answered ([{"recipient": {...}}]). Empty
        when there is none, so the caller answers the same either way. 429 when this
        address asked too often; an account gets a few mails per window, the rest are
        dropped silently."""
        if address and not _exempt(address):
            self._reserve({"reset_addr": f"reset-addr:{address}"}, "password reset requests")
        owners = []
        if username:
            found = self._find_login(username)
            if found is not None:
                owners.append(found)
        if email:
            people = people_with_email(self, email)
            if people["customer"] is not None:
                who = people["customer"]
                owners.append(
                    self._get(UUID(who["user_id"]), CustomerUser, "user")
                    if who["user_id"]
                    else self.get_customer(UUID(who["customer_id"]))
                )
            if people["staff"] is not None:
                owners.append(self.get_staff(UUID(people["staff"]["staff_id"])))
        mails = []
        for owner in owners:
            recipient = self._reset_recipient(owner)
            if recipient is None:
                continue
            try:
                self._reserve({"reset_mail": f"reset-mail:{owner.id}"}, "reset mails")
            except RateLimited:
                continue
            self._record_reset_mail(owner, recipient)
            mails.append({"recipient": recipient})
        return mails

    def _record_reset_mail(self, owner, recipient: dict) -> None:
        """A new single-use reset link for `owner`, and the request for its mail, at once."""
        token = secrets.token_urlsafe(32)
        now = clock.now()
        mail = request_statement(
            "password_reset", recipient.get("customer_id"), {"recipient": recipient}, token
        )
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO password_resets (token_hash, owner_kind, owner_id, created_at,"
                " expires_at) VALUES (%s, %s, %s, %s, %s)",
                (_token_hash(token), recipient["kind"], owner.id, now, now + RESET_LIFETIME),
            )
            curs.execute(*mail)

    def _reset_recipient(self, owner) -> dict | None:
        """Where an account's reset link goes (None: nowhere it could be sent)."""
        base = {"expires_minutes": int(RESET_LIFETIME.total_seconds() // 60)}
        if isinstance(owner, StaffMember):
            if not owner.active or not owner.email:
                return None
            return dict(
                base,
                kind="staff",
                email=owner.email,
                name=owner.name,
                language=owner.language,
                customer_id=None,
            )
        if isinstance(owner, CustomerUser):
            customer = self.get_customer_or_none(owner.customer_id)
            if customer is None or owner.removed:
                return None
            return dict(
                base,
                kind="user",
                email=owner.email,
                name=owner.name,
                language=customer.language,
                customer_id=str(customer.id),
            )
        if isinstance(owner, Customer) and not owner.deleted:
            return dict(
                base,
                kind="client",
                email=owner.email,
                name=owner.contact_person,
                language=owner.language,
                customer_id=str(owner.id),
            )
        return None

    def confirm_password_reset(self, token: str, new_password: str) -> dict:
        """Set the password a reset link was sent for; the link works once, within its
        lifetime; every session of the account ends and its login limits start afresh."""
        now = clock.now()
        invalid = ValidationFailed(
            "This reset link is not valid: it was used already, it expired, or it never "
            "existed. Ask for a new one.",
            {"token": ["Not valid (used, expired or unknown)."]},
        )
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE password_resets SET used_at = %s WHERE token_hash = %s"
                " AND used_at IS NULL AND expires_at > %s RETURNING owner_kind, owner_id",
                (now, _token_hash(token), now),
            )
            row = curs.fetchone()
            if row is not None:
                curs.execute(
                    "UPDATE password_resets SET used_at = %s WHERE owner_id = %s"
                    " AND used_at IS NULL",
                    (now, row["owner_id"]),
                )
        if row is None:
            raise invalid
        owner_id = row["owner_id"]
        if row["owner_kind"] == "staff":
            member = self.get_staff(owner_id)
            if not member.active:
                raise invalid
            member.change_password()
            self.save(member, also=[self.password_statement(member, new_password)])
            self.end_staff_sessions(member.id, reason="password_reset")
        elif row["owner_kind"] == "user":
            user = self._get(owner_id, CustomerUser, "user")
            if user.removed:
                raise invalid
            user.change_password()
            self.save(user, also=[self.password_statement(user, new_password)])
            self.end_sessions(user_id=user.id, reason="password_reset")
        else:
            customer = self.get_customer_or_none(owner_id)
            if customer is None:
                raise invalid
            customer.change_password()
            self.save(customer, also=[self.password_statement(customer, new_password)])
            self.end_sessions(customer_id=customer.id, reason="password_reset")
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "DELETE FROM login_attempts WHERE key = %s OR key LIKE %s",
                (f"account:{owner_id}", f"pair:{owner_id}|%"),
            )
        return {"status": "changed", "kind": row["owner_kind"]}

    # -- impersonation ---------------------------------------------------------------------------

    def impersonate(self, staff_id: UUID, customer_id: UUID, staff_token: str) -> dict:
        """A client session for `customer_id`, marked as `staff_id` acting; an audited event.
        It belongs to the staff session `staff_token`: it ends when that one ends, and
        never lives longer."""
        parent = self._session_row(staff_token)
        if parent["kind"] != "staff" or parent["staff_id"] != staff_id:
            raise Forbidden("Only a staff member's own session may enter a client's panel.")
        member = self.get_staff(staff_id)
        if not member.active:
            raise Unauthorized("This staff account is disabled.")
        if member.role not in ("admin", "support"):
            raise Forbidden("Only administrators and support staff may enter a client's panel.")
        if self.two_factor_setup_required(member):
            raise TwoFactorSetupRequired(TwoFactorSetupRequired.STAFF)
        customer = self.get_customer(customer_id)
        member.start_impersonation(customer_id=customer.id)
        self.save(member)
        return self._open_session(
            "client",
            customer_id=customer.id,
            impersonator_id=member.id,
            parent_token=staff_token,
            parent_expires=parent["expires_at"],
        )

    def end_impersonation(self, token: str) -> dict:
        """Leave the client's panel: the staff session it was entered from, the same token,
        while that session lives (else 401: log in again)."""
        row = self._session_row(token)
        if not row["impersonator_id"]:
            raise Conflict("This session is not a staff member acting as a client.")
        digest = _token_hash(token)
        ended = end_sessions(
            self, "token_hash = %s", (digest,), "impersonation_ended", token_hashes=[digest]
        )
        if not ended:
            raise Unauthorized("The session has ended or the token is not valid.")
        staff_token = _unseal(row["parent_token_sealed"], token)
        back = self._session_row(staff_token)  # still alive: checked a moment ago, again
        return {"token": staff_token, "kind": "staff", "staff_id": str(back["staff_id"])}


def _limit(kind: str) -> int:
    cfg = settings()
    if kind == "order_addr":
        return cfg.order_form_limit
    if kind == "order_email":
        return cfg.order_form_email_limit
    return RATE_LIMITS[kind]


def _exempt(address: str) -> bool:
    """An address no per-address limit applies to (HOSTLEDGER_RATE_LIMIT_EXEMPT)."""
    networks = settings().rate_limit_exempt
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _refuse_while_acting(what: str) -> None:
    """Staff acting in a client's panel may look and help, not take the account over."""
    on_behalf_of = context.current.on_behalf_of
    if on_behalf_of is not None and on_behalf_of.kind == "staff":
        raise Forbidden(f"While acting in a client's panel, staff cannot {what}.")


def _plain(value):
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- views and lists (module level: plain functions of the application's state) -------------


def group_view(g: CustomerGroup) -> dict:
    return {"id": str(g.id), "name": g.name, "description": g.description}


def project_view(p: Project) -> dict:
    return {
        "id": str(p.id),
        "name": p.name,
        "sender_email": p.sender_email,
        "sender_name": p.sender_name,
        "seller": dict(p.seller),
        "allow_credit": p.allow_credit,
        "renew_days_before": p.renew_days_before,
        "suspend_after_days": p.suspend_after_days,
        "terminate_after_days": p.terminate_after_days,
    }


def discount_view(d: Discount) -> dict:
    return {
        "id": str(d.id),
        "name": d.name,
        "kind": d.kind,
        "percent": d.percent,
        "amount": {"amount": d.amount, "currency": d.currency} if d.amount is not None else None,
        "customer_id": str(d.customer_id) if d.customer_id else None,
        "group_id": str(d.group_id) if d.group_id else None,
        "product_ids": [str(p) for p in d.product_ids],
        "valid_from": isoformat(d.valid_from) if d.valid_from else None,
        "valid_to": isoformat(d.valid_to) if d.valid_to else None,
    }


def user_view(u: CustomerUser) -> dict:
    return {
        "id": str(u.id),
        "customer_id": str(u.customer_id),
        "username": u.username,
        "email": u.email,
        "name": u.name,
        "permissions": list(u.permissions),
    }


def payer_view(p: Payer) -> dict:
    return {
        "id": str(p.id),
        "customer_id": str(p.customer_id),
        "kind": p.kind,
        "name": p.name,
        **p.details,
    }


VIEWS = {
    "group": group_view,
    "project": project_view,
    "discount": discount_view,
    "user": user_view,
    "payer": payer_view,
}


def list_directory(
    app: Customers, kind: str, customer_id: UUID | None = None, page: int = 1, page_size: int = 50
) -> dict:
    limit, offset = page_window(page, page_size)
    where, params = "kind = %s AND NOT removed", [kind]
    if customer_id is not None:
        where += " AND customer_id = %s"
        params.append(customer_id)
    with app.datastore.transaction() as curs:
        curs.execute(f"SELECT count(*) AS n FROM directory WHERE {where}", params)
        total = curs.fetchone()["n"]
        curs.execute(
            f"SELECT id FROM directory WHERE {where} ORDER BY created_at, id LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        ids = [r["id"] for r in curs.fetchall()]
    view = VIEWS.get(kind) or (lambda m: app.staff_view(m))
    return {
        "items": [view(app.repository.get(i)) for i in ids],
        "total": total,
        "page": page,
        "page_size": page_size,
    }


def whole_directory(app: Customers, kind: str) -> list[dict]:
    """Every entry of a kind, read a page at a time."""
    items: list[dict] = []
    page = 1
    while True:
        answer = list_directory(app, kind, None, page, MAX_PAGE_SIZE)
        items += answer["items"]
        if page * MAX_PAGE_SIZE >= answer["total"] or not answer["items"]:
            return items
        page += 1


# each filter of the staff customer list, as a condition on the customer_list table
CUSTOMER_FILTERS = {
    "customer_id": "customer_id = %s",
    "number": "number = %s",
    "name": "search LIKE %s",
    "project_id": "project_id = %s",
    "language": "language = %s",
    "group_id": "group_ids @> ARRAY[%s]::uuid[]",
    "active_product_id": "active_product_ids @> ARRAY[%s]::uuid[]",
    "registered_from": "registered_at >= %s",
    "registered_to": "registered_at <= %s",
}


def _like(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def every_customer(app: Customers, language: str | None, after: int, limit: int) -> dict:
    """Every customer not deleted (in `language` when given), from the event store: a
    page of those registered after log position `after`, and the position to go on from
    (None at the end). What a message to all customers is sent to: never short of a
    customer registered a moment ago, nor of all of them while the list is rebuilt."""
    from eventsourcing.utils import get_topic

    topics = [get_topic(Customer.Registered)]
    batch = app.recorder.select_notifications(after + 1, limit, topics=topics)
    found = customers_at_once(app, [n.originator_id for n in batch])
    items = []
    for n in batch:
        customer = found.get(n.originator_id)
        if customer is None or (language and customer.language != language):
            continue
        items.append({"id": str(customer.id), "language": customer.language, "name": customer.name})
    return {"items": items, "next": batch[-1].id if len(batch) == limit else None}


def customers_at_once(app: Customers, ids: list[UUID]) -> dict[UUID, Customer]:
    """The customers of `ids` that exist and are not deleted, as `get_customer` gives them,
    each rebuilt from its events: all their events read with one query and their keys with
    one (`get_customer` takes two or three round trips per customer)."""
    from eventsourcing.persistence import StoredEvent

    if not ids:
        return {}
    app.personal_keys.prepare_many(ids, create=False)
    with app.datastore.transaction() as curs:
        curs.execute(
            "SELECT originator_id, originator_version, topic, state"
            f" FROM {app.recorder.events_table_name} WHERE originator_id = ANY(%s::uuid[])"
            " ORDER BY originator_id, originator_version",
            ([str(i) for i in ids],),
        )
        rows = curs.fetchall()
    rebuilt: dict = {}
    for row in rows:
        stored = StoredEvent(
            originator_id=row["originator_id"],
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )
        event = app.mapper.to_domain_event(stored)
        rebuilt[row["originator_id"]] = event.mutate(rebuilt.get(row["originator_id"]))
    return {i: c for i, c in rebuilt.items() if isinstance(c, Customer) and not c.deleted}


# the list's orders (contract.CUSTOMER_SORTS), each ending on the unique number
CUSTOMER_ORDERS = {
    "number": "number",
    "-number": "number DESC",
    "name": "lower(name), number",
    "-name": "lower(name) DESC, number DESC",
    "registered_at": "registered_at, number",
    "-registered_at": "registered_at DESC, number DESC",
}


def list_customers(app: Customers, filters: dict) -> dict:
    where, params = ["NOT deleted"], []
    for key, condition in CUSTOMER_FILTERS.items():
        if key in filters:
            where.append(condition)
            params.append(_like(filters[key]) if key == "name" else filters[key])
    page, size = filters.get("page", 1), filters.get("page_size", 50)
    limit, offset = page_window(page, size)
    clause = " AND ".join(where)
    order = CUSTOMER_ORDERS[filters.get("sort") or "-number"]
    with app.datastore.transaction() as curs:
        curs.execute(f"SELECT count(*) AS n FROM customer_list WHERE {clause}", params)
        total = curs.fetchone()["n"]
        curs.execute(
            "SELECT customer_id, number, kind, name, username, email, country, language,"
            f" project_id, group_ids, attitude, registered_at FROM customer_list WHERE {clause}"
            f" ORDER BY {order} LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        rows = curs.fetchall()
    items = [
        {
            "id": str(r["customer_id"]),
            "number": r["number"],
            "kind": r["kind"],
            "name": r["name"],
            "username": r["username"],
            "email": r["email"],
            "country": r["country"],
            "language": r["language"],
            "project_id": str(r["project_id"]) if r["project_id"] else None,
            "group_ids": [str(g) for g in r["group_ids"]],
            "attitude": r["attitude"],
            "registered_at": isoformat(r["registered_at"]),
        }
        for r in rows
    ]
    return {"items": items, "total": total, "page": page, "page_size": size}


# -- the helpdesk's questions: who wrote this e-mail, whom to notify --------------------------


def people_with_email(app: Customers, email: str) -> dict:
    """Who owns `email`: the customer (by its own address or one of its users') and the
    staff member, each None when there is none. The helpdesk matches mail senders with it."""
    address = email.strip().lower()
    answer: dict = {"customer": None, "staff": None}
    try:
        index = app.repository.get(CustomerEmail.id_for(address))
        customer = index.customer_id and app.get_customer_or_none(index.customer_id)
    except AggregateNotFoundError:
        customer = None
    if customer is not None:
        answer["customer"] = {
            "customer_id": str(customer.id),
            "user_id": None,
            "name": customer.contact_person,
            "language": customer.language,
        }
    # from the index of the address in the event store (its staff and users)
    people = app._people_email(address)
    for staff_id in sorted(people.staff_ids):
        member = app.get_staff(staff_id)
        if member.email and member.email.strip().lower() == address:
            if member.active:
                answer["staff"] = {"staff_id": str(member.id), "name": member.name}
            break
    user_ids = sorted(people.user_ids) if answer["customer"] is None else []
    for user_id in user_ids:
        user = app.repository.get(user_id)
        if user.email.strip().lower() == address and not user.removed:
            owner = app.get_customer_or_none(user.customer_id)
            if owner is not None:
                answer["customer"] = {
                    "customer_id": str(owner.id),
                    "user_id": str(user.id),
                    "name": user.name,
                    "language": owner.language,
                }
                break
    return answer
