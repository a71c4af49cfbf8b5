"""The customers service: customers, staff, and who may log in."""

from __future__ import annotations

import logging
from uuid import UUID

from eventsourcing.utils import get_topic
from nameko.rpc import RpcProxy

from contracts import customers as contract
from contracts.envelope import IntegrationEvent
from contracts.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from contracts.fields import invalid
from services.customers import application as queries
from services.customers import (
    audit,
    directory,
    email_change,
    erasure,
    personal,
    referrals,
    staff_accounts,
    staff_customers,
)
from services.customers.application import Customers
from services.customers.background import MailRequests
from services.customers.domain import CustomerUser, StaffMember
from services.customers.readmodels import CustomerList, Directory, StaffList, UserEmails
from services.infra import context
from services.infra.clock import isoformat
from services.infra.consumer import handles
from services.infra.rpc import ask, load, rpc
from services.infra.service import ServiceBase
from services.infra.store import EventStore

log = logging.getLogger(__name__)

APPLICATION = Customers
READ_MODELS = (
    CustomerList,
    StaffList,
    Directory,
    UserEmails,
    referrals.ReferralList,
    audit.CustomersAuditIndex,
)


def _uuid(value, what: str = "customer") -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise NotFound(f"No such {what}.") from None


def _token(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationFailed("A token is required.", {"token": ["Missing."]})
    return value


class CustomersStore(EventStore):
    """The customers' event store; at each start, it first moves the password hashes that
    events recorded before they were kept apart into the credentials table
    (services/customers/credentials.py)."""

    def setup(self):
        super().setup()
        self.app.move_recorded_hashes()


class CustomersService(
    audit.AuditReadRpcs,
    directory.DirectoryRpcs,
    staff_customers.StaffCustomerRpcs,
    referrals.ReferralRpcs,
    staff_accounts.StaffAccountRpcs,
    ServiceBase,
):
    name = "customers"
    app = CustomersStore(APPLICATION, read_models=READ_MODELS)
    billing = RpcProxy("billing")
    orders = RpcProxy("orders")
    mail_requests = MailRequests()

    # -- customers --------------------------------------------------------------------------

    @rpc
    def register_customer(
        self,
        payload: dict,
        idempotency_key: str | None = None,
        mail_credentials: str | None = None,
    ) -> dict:
        """Register a customer (staff or the order form). Answers the customer and, when the
        password was generated, `credentials` (shown once). With `mail_credentials` (the
        reason: `order`), a generated password is mailed too: recorded with the
        registration, handed to the mail gateway, retried until it takes it."""
        data = load(contract.RegisterCustomer, payload)
        if data.get("referral_code"):  # who referred the new customer (400 when unknown)
            data["referrer_id"] = referrals.referrer_of(self.app, data["referral_code"])
        # what identifies the request; a given password stays out of the (stored) hash
        request = {k: v for k, v in payload.items() if k not in ("registration_ip", "password")}
        answer = self.app.register_customer(data, idempotency_key, request, mail_credentials)
        if mail_credentials:
            self.mail_requests.wake()
        return answer

    @rpc
    def registration_for(self, idempotency_key: str, payload: dict) -> dict | None:
        """The customer an earlier registration with this Idempotency-Key made (without its
        credentials); None when the key is new, 409 when it came with another request."""
        request = {k: v for k, v in payload.items() if k not in ("registration_ip", "password")}
        return self.app.idempotent_answer("customer", idempotency_key, request)

    # -- the gateway's Idempotency-Key answers (see services/infra/application.py) ---------

    @rpc
    def claim_request_key(self, key: str, request_hash: str, stale_seconds: float) -> dict:
        return self.app.claim_request_key(key, request_hash, stale_seconds)

    @rpc
    def finish_request_key(
        self, key: str, request_hash: str, status: int, answer, customer_id: str | None = None
    ) -> None:
        self.app.finish_request_key(key, request_hash, status, answer, customer_id)

    @rpc
    def release_request_key(self, key: str, request_hash: str) -> None:
        self.app.release_request_key(key, request_hash)

    @rpc
    def get_customer(self, customer_id: str) -> dict:
        return self.app.customer_view(self.app.get_customer(_uuid(customer_id)))

    @rpc
    def list_customers(self, filters: dict) -> dict:
        """The staff customer list (a read model: may lag a write by a moment)."""
        return queries.list_customers(self.app, load(contract.CustomerFilters, filters))

    @rpc
    def every_customer(self, language: str | None = None, after: int = 0, limit: int = 500):
        """Every customer not deleted (in `language` when given), from the event store, a
        page at a time: {"items": [{id, language, name}], "next": position or None}."""
        return queries.every_customer(
            self.app, language, max(int(after), 0), min(max(int(limit), 1), 1000)
        )

    @rpc
    def edit_customer(self, customer_id: str, changes: dict) -> dict:
        data = load(contract.EditCustomer, changes)
        program = data.get("affiliate_program")
        if program and str(program) not in {p["id"] for p in self.billing.programs()}:
            # billing keeps the affiliate programs; a customer names one by its id
            raise invalid("affiliate_program", "No such affiliate program.")
        return self.app.customer_view(self.app.edit_customer(_uuid(customer_id), data))

    @rpc
    def delete_customer(
        self, customer_id: str, force: bool = False, reason: str | None = None
    ) -> None:
        """Delete; refused (409) while the personal account is not at zero, unless an
        administrator forces it. History stays; the customer can no longer log in."""
        customer = self.app.get_customer(_uuid(customer_id))
        if force:
            self._require_admin()
        else:
            try:
                account = self.billing.get_account(str(customer.id), customer.currency)
            except NotFound:
                account = None
            if account and account["balance"]["amount"] != 0:
                raise Conflict(
                    "The customer's personal account is not at zero "
                    f"({account['balance']['amount']} {account['balance']['currency']} in minor "
                    "units); settle it first or have an administrator force the deletion."
                )
        self.app.delete_customer(customer.id, forced=bool(force), reason=reason or None)

    @rpc
    def erase_customer(self, customer_id: str, reason: str) -> dict:
        """An administrator erases a deleted customer's personal data (erasure.py): here
        at once, in the other services on the CustomerErased event this records. 404
        unknown, 409 not deleted, 400 without a reason; a repeat answers the first."""
        actor = context.current.actor
        if actor is None or actor.kind != "staff":
            raise Forbidden("Only an administrator may erase a customer's personal data.")
        member = self.app.get_staff(_uuid(actor.id, "staff member"))
        if member.role != "admin" or not member.active:
            raise Forbidden("Only an administrator may erase a customer's personal data.")
        return erasure.erase_customer_rpc(self.app, customer_id, reason)

    def _require_admin(self) -> None:
        actor = context.current.actor
        if actor is None or actor.kind != "staff":
            raise Forbidden("Only an administrator may force this.")
        member = self.app.get_staff(_uuid(actor.id, "staff member"))
        if member.role != "admin":
            raise Forbidden("Only an administrator may force this.")

    @handles("orders", "ServiceActivated")
    def service_started(self, event: IntegrationEvent) -> None:
        """Feeds the "active product" filter and the deletion rule."""
        p = event.payload
        self.app.service_started(p["customer_id"], p["service_id"], p["product_id"])

    @handles("orders", "ServiceTerminated")
    def service_ended(self, event: IntegrationEvent) -> None:
        p = event.payload
        self.app.service_ended(p["customer_id"], p["service_id"], p["product_id"])

    @handles("orders", "ServiceCancelled")
    def service_cancelled(self, event: IntegrationEvent) -> None:
        p = event.payload
        self.app.service_ended(p["customer_id"], p["service_id"], p["product_id"])

    # -- the client's own account ----------------------------------------------------------

    @rpc
    def edit_profile(self, customer_id: str, changes: dict) -> dict:
        data = load(contract.EditProfile, changes)
        return self.app.customer_view(self.app.edit_profile(_uuid(customer_id), data))

    @rpc
    def change_password(self, customer_id: str, payload: dict, keep_token: str | None) -> None:
        """The new password works at once; every other session of the customer ends."""
        data = load(contract.ChangePassword, payload)
        self.app.change_password(
            _uuid(customer_id), data["current_password"], data["new_password"], keep_token
        )

    @rpc
    def get_notification_settings(self, customer_id: str) -> dict:
        return dict(self.app.get_customer(_uuid(customer_id)).notification_settings)

    @rpc
    def get_customer_and_notification_settings(self, customer_id: str) -> dict:
        """{"customer": as get_customer answers it, "notification_settings": as
        get_notification_settings does}, from one version of the customer: one question
        for each notice the mail gateway queues. 404 as get_customer."""
        return self.app.customer_and_notification_settings(_uuid(customer_id))

    @rpc
    def set_notification_settings(self, customer_id: str, settings: dict) -> dict:
        data = load(contract.NotificationSettings, settings)
        return self.app.set_notification_settings(_uuid(customer_id), data)

    @rpc
    def add_user(self, customer_id: str, payload: dict) -> dict:
        user, generated = self.app.add_user(_uuid(customer_id), load(contract.AddUser, payload))
        answer = queries.user_view(user)
        if generated:
            answer["credentials"] = {"username": user.username, "password": generated}
        return answer

    @rpc
    def list_users(self, customer_id: str, page: int = 1, page_size: int = 50) -> dict:
        return queries.list_directory(self.app, "user", _uuid(customer_id), page, page_size)

    @rpc
    def remove_user(self, customer_id: str, user_id: str) -> None:
        self.app.remove_user(_uuid(customer_id), _uuid(user_id, "user"))

    @rpc
    def add_payer(self, customer_id: str, payload: dict) -> dict:
        return queries.payer_view(
            self.app.add_payer(_uuid(customer_id), load(contract.AddPayer, payload))
        )

    @rpc
    def list_payers(self, customer_id: str, page: int = 1, page_size: int = 50) -> dict:
        return queries.list_directory(self.app, "payer", _uuid(customer_id), page, page_size)

    # -- the client's settings: e-mail change (email_change.py), one user, style and
    # favourite pages (personal.py)

    @rpc
    def request_email_change(self, customer_id: str, payload: dict) -> dict:
        """Mail a link to the new address; the address changes only once it is opened."""
        data = load(contract.RequestEmailChange, payload)
        answer = email_change.request_email_change(
            self.app, _uuid(customer_id), data["email"], data["current_password"]
        )
        self.mail_requests.wake()
        return answer

    @rpc
    def pending_email_change(self, customer_id: str) -> dict | None:
        return email_change.pending_email_change(self.app, _uuid(customer_id))

    @rpc
    def confirm_email_change(self, customer_id: str, payload: dict) -> dict:
        data = load(contract.ConfirmEmailChange, payload)
        customer = email_change.confirm_email_change(self.app, _uuid(customer_id), data["token"])
        self.mail_requests.wake()
        return self.app.customer_view(customer)

    @rpc
    def get_user(self, customer_id: str, user_id: str) -> dict:
        """One of the customer's users (404 for another customer's or a removed one)."""
        user = self.app._get(_uuid(user_id, "user"), CustomerUser, "user")
        if user.customer_id != _uuid(customer_id) or user.removed:
            raise NotFound("No such user.")
        return queries.user_view(user)

    @rpc
    def personal_settings(self, customer_id: str, user_id: str | None = None) -> dict:
        """{"theme", "favourites"} of the customer's owner, or of one of its users."""
        return personal.personal_settings(
            self.app, _uuid(customer_id), _uuid(user_id, "user") if user_id else None
        )

    @rpc
    def set_preferences(self, customer_id: str, user_id: str | None, payload: dict) -> dict:
        data = load(contract.Preferences, payload)
        return personal.choose_theme(
            self.app,
            _uuid(customer_id),
            _uuid(user_id, "user") if user_id else None,
            data["theme"],
        )

    @rpc
    def set_favourites(self, customer_id: str, user_id: str | None, payload: dict) -> dict:
        data = load(contract.Favourites, payload)
        return personal.set_favourites(
            self.app,
            _uuid(customer_id),
            _uuid(user_id, "user") if user_id else None,
            data["pages"],
        )

    # -- groups, projects, discounts, staff -------------------------------------------------------

    @rpc
    def create(self, kind: str, payload: dict) -> dict:
        """`kind`: group, project or discount."""
        schema, command = {
            "group": (contract.CreateGroup, self.app.create_group),
            "project": (contract.CreateProject, self.app.create_project),
            "discount": (contract.CreateDiscount, self.app.create_discount),
        }.get(kind, (None, None))
        if schema is None:
            raise ValidationFailed(f"Nothing of kind {kind!r} can be created here.")
        data = load(schema, payload)
        if kind == "discount" and data["product_ids"]:
            # the orders service keeps the catalog: it says which products exist
            ids = [str(i) for i in data["product_ids"]]
            unknown = set(ask(self.orders, "unknown_products", sorted(set(ids))))
            errors = {
                f"product_ids.{n}": ["No such product."] for n, i in enumerate(ids) if i in unknown
            }
            if errors:
                raise ValidationFailed("No such product.", errors)
        return queries.VIEWS[kind](command(data))

    @rpc
    def change_project(self, project_id: str, payload: dict) -> dict:
        """Staff rename a project, change its mails' sender or its renewal and dunning days
        (the fields sent; null days: the system default). A change of days publishes
        ProjectUpdated."""
        changes = load(contract.ChangeProject, payload, partial=True)
        return queries.project_view(self.app.change_project(_uuid(project_id, "project"), changes))

    @rpc
    def list_kind(
        self, kind: str, page: int = 1, page_size: int = 50, customer_id: str | None = None
    ) -> dict:
        """Groups, projects, discounts or staff; with `customer_id`, those of that customer
        (its groups, its project, the discounts for it or its groups), a deleted one's
        too: they stay as they were when it was deleted."""
        if kind not in ("group", "project", "discount", "staff"):
            raise ValidationFailed(f"Nothing of kind {kind!r} is listed here.")
        if customer_id is None:
            return queries.list_directory(self.app, kind, None, page, page_size)
        customer = staff_customers.customer_of(self.app, _uuid(customer_id))
        everything = queries.whole_directory(self.app, kind)
        groups = {str(g) for g in customer.group_ids}
        keep = {
            "group": lambda i: i["id"] in groups,
            "project": lambda i: i["id"] == str(customer.project_id),
            "discount": lambda i: i["customer_id"] == str(customer.id) or i["group_id"] in groups,
            "staff": lambda i: False,
        }[kind]
        items = [i for i in everything if keep(i)]
        return {
            "items": items[(page - 1) * page_size : page * page_size],
            "total": len(items),
            "page": page,
            "page_size": page_size,
        }

    @rpc
    def discounts_for(self, customer_id: str) -> list[dict]:
        """The customer's discounts valid now: its own and its groups'."""
        return [queries.discount_view(d) for d in self.app.discounts_for(_uuid(customer_id))]

    @rpc
    def discount_book(self) -> dict:
        """Every discount and every customer's groups, with their versions: where billing's
        discount book starts when it was kept before discounts were published."""
        return self.app.discount_book()

    @rpc
    def register_staff(self, payload: dict) -> dict:
        data = load(contract.RegisterStaff, payload)
        if data["invite"]:
            member = self.app.invite_staff(data)
            self.mail_requests.wake()
            return self.app.staff_view(member)
        member, generated = self.app.register_staff(
            username=data["username"],
            name=data["name"],
            role=data["role"],
            password=data.get("password"),
            email=data.get("email"),
            language=data["language"],
            notify=data.get("notifications"),
        )
        answer = self.app.staff_view(member)
        if generated:
            answer["credentials"] = {"username": member.username, "password": generated}
        return answer

    # -- sessions -----------------------------------------------------------------------------

    @rpc
    def login(self, payload: dict, address: str | None = None, challenge: bool = False) -> dict:
        """A session; 401 two_factor_required when the account's code is needed too (with
        `challenge`: carrying one for `login_second_step`, the web's second step)."""
        data = load(contract.Login, payload)
        return self.app.login(
            data["username"],
            data["password"],
            address,
            otp=data.get("otp"),
            recovery_code=data.get("recovery_code"),
            challenge=bool(challenge),
        )

    # -- two-factor authentication (two_factor.py) ----------------------------------------------

    @rpc
    def login_second_step(self, challenge: str, payload: dict, address: str | None = None):
        """The web's second step of a login: the challenge, and the code."""
        if not isinstance(challenge, str) or not challenge:
            raise Unauthorized("This login has expired: give the password again.")
        data = load(contract.TwoFactorCode, payload)
        return self.app.login_second_step(
            challenge, data.get("otp"), data.get("recovery_code"), address
        )

    @rpc
    def two_factor_status(self, token: str, with_secret: bool = False) -> dict:
        return self.app.two_factor_status(_token(token), bool(with_secret))

    @rpc
    def enrol_two_factor(self, token: str) -> dict:
        return self.app.enrol_two_factor(_token(token))

    @rpc
    def confirm_two_factor(self, token: str, payload: dict) -> dict:
        data = load(contract.TwoFactorConfirm, payload)
        return self.app.confirm_two_factor(_token(token), data["otp"])

    @rpc
    def disable_two_factor(self, token: str, payload: dict) -> dict:
        data = load(contract.TwoFactorDisable, payload)
        return self.app.disable_two_factor(
            _token(token), data["password"], data.get("otp"), data.get("recovery_code")
        )

    @rpc
    def reset_two_factor(self, customer_id: str, payload: dict) -> dict:
        """Staff (administrators, support) turn a client's two-factor authentication off."""
        data = load(contract.TwoFactorReset, payload)
        return self.app.reset_two_factor(_uuid(customer_id), data["reason"], data["user_id"])

    @rpc
    def customer_for_order(self, email: str, password: str | None, address: str | None):
        """The existing account of an order's e-mail (401 password_required or
        invalid_credentials), or None when the e-mail is new."""
        customer = self.app.customer_for_order(email, password, address)
        return self.app.customer_view(customer) if customer else None

    @rpc
    def order_form_attempt(self, email: str, address: str | None = None) -> None:
        """Count a use of the public order form (429 past its limits)."""
        self.app.order_form_attempt(str(email), address)

    @rpc
    def resolve_session(self, token: str) -> dict:
        if not isinstance(token, str) or not token:
            raise ValidationFailed("A token is required.", {"token": ["Missing."]})
        return self.app.resolve_session(token)

    @rpc
    def page_session(self, token: str) -> dict:
        """What a web page needs of its session, in one call: {"principal" (as
        resolve_session answers), "customer" and "personal" (the person's style and
        favourites: personal_settings) for a client, else None and {}}."""
        principal = self.resolve_session(token)
        answer = {"principal": principal, "customer": None, "personal": {}}
        if principal["kind"] == "client":
            answer["customer"] = self.get_customer(principal["customer_id"])
            answer["personal"] = self.personal_settings(
                principal["customer_id"], principal.get("user_id")
            )
        return answer

    @rpc
    def session_entry(self, token: str) -> dict:
        """resolve_session's answer with its end and parent session, for a gateway's
        session cache (gateway/session_cache.py)."""
        if not isinstance(token, str) or not token:
            raise ValidationFailed("A token is required.", {"token": ["Missing."]})
        return self.app.session_entry(token)

    @rpc
    def logout(self, token: str) -> None:
        self.app.logout(token)

    @rpc
    def impersonate(self, staff_id: str, customer_id: str, staff_token: str) -> dict:
        """A client session for the customer, bound to the staff session `staff_token`."""
        if not isinstance(staff_token, str) or not staff_token:
            raise ValidationFailed("The staff session is required.", {"token": ["Missing."]})
        return self.app.impersonate(
            _uuid(staff_id, "staff member"), _uuid(customer_id), staff_token
        )

    @rpc
    def end_impersonation(self, token: str) -> dict:
        return self.app.end_impersonation(token)

    @rpc
    def impersonations(self, customer_id: str | None = None) -> list[dict]:
        """Every start and end of staff acting as a client, from the event log, oldest first."""
        topics = [
            get_topic(StaffMember.ImpersonationStarted),
            get_topic(StaffMember.ImpersonationEnded),
        ]
        wanted = _uuid(customer_id) if customer_id else None
        out, start = [], 1
        while batch := self.app.recorder.select_notifications(start, 1000, topics=topics):
            for n in batch:
                e = self.app.mapper.to_domain_event(n)
                if wanted is None or e.customer_id == wanted:
                    out.append(
                        {
                            "event": "started" if n.topic == topics[0] else "ended",
                            "staff_id": str(e.originator_id),
                            "customer_id": str(e.customer_id),
                            "at": isoformat(e.timestamp),
                            "position": n.id,
                        }
                    )
            start = batch[-1].id + 1
        return out

    # -- staff accounts and password reset -------------------------------------------------

    @rpc
    def edit_staff(self, staff_id: str, payload: dict) -> dict:
        """Administrators: role, name, language, notification preferences (those given)."""
        self._require_admin()
        data = load(contract.EditStaff, payload)
        return self.app.staff_view(self.app.edit_staff(_uuid(staff_id, "staff member"), data))

    @rpc
    def disable_staff(self, staff_id: str, payload: dict | None = None) -> dict:
        """Administrators: the member can no longer log in; their sessions end at once."""
        self._require_admin()
        data = load(contract.DisableStaff, payload or {})
        member = self.app.disable_staff(_uuid(staff_id, "staff member"), data["reason"])
        return self.app.staff_view(member)

    @rpc
    def request_password_reset(self, payload: dict, address: str | None = None) -> dict:
        """Mail a single-use, expiring reset link to the account(s) named; the answer is the
        same whether any exists."""
        data = load(contract.PasswordResetRequest, payload)
        # each mail is recorded with its link, and handed to the mail gateway from there
        if self.app.request_password_reset(data.get("username"), data.get("email"), address):
            self.mail_requests.wake()
        return {"status": "accepted"}

    @rpc
    def confirm_password_reset(self, payload: dict) -> dict:
        data = load(contract.PasswordResetConfirm, payload)
        return self.app.confirm_password_reset(data["token"], data["new_password"])

    @rpc
    def ensure_first_admin(self, username: str, password: str | None = None) -> dict | None:
        return self.app.ensure_first_admin(username, password)

    # -- for the helpdesk -----------------------------------------------------------------------

    @rpc
    def people_with_email(self, email: str) -> dict:
        """{"customer": {customer_id, user_id, name, language} | None, "staff": {staff_id,
        name} | None}: who may have sent a mail from `email`."""
        return queries.people_with_email(self.app, str(email))

    @rpc
    def staff_members(self, staff_ids: list[str]) -> list[dict]:
        """The staff members among `staff_ids` (with their notification preferences); ids
        of no staff member are left out."""
        members = []
        for staff_id in staff_ids:
            try:
                members.append(self.app.staff_view(self.app.get_staff(_uuid(staff_id, "staff"))))
            except NotFound:
                continue
        return members
