"""Customer routes: sessions, staff's customer management, staff accounts, groups,
projects and discounts, impersonation, and a client's own profile, users and payers."""

from __future__ import annotations

import logging

from marshmallow import Schema, fields, validate

from contracts import customers as contract
from contracts import fields as f
from contracts.errors import Forbidden, ValidationFailed
from gateway.api.common import ALL_STAFF, Page, PageQuery, jsonable, paged, str_or_none
from gateway.http import Call, route
from gateway.schemas import (
    CustomerList,
    CustomerSchema,
    CustomerUser,
    CustomerUserList,
    Deletion,
    Discount,
    DiscountList,
    EmailChangePending,
    Erasure,
    FavouritesAnswer,
    Group,
    GroupList,
    ImpersonationList,
    LoginRequest,
    LoginResponse,
    MeSchema,
    NotificationSettingsAnswer,
    PasswordResetDone,
    Payer,
    PayerList,
    PreferencesAnswer,
    ProfileSchema,
    Project,
    ProjectList,
    Removal,
    ResetLinkSent,
    StaffAccount,
    StaffList,
    StaffMember,
    StaffRegisterCustomer,
    Status,
)

log = logging.getLogger(__name__)


class CustomerListQuery(contract.CustomerFilters):
    """The customer filters with the one page rule of every list."""

    page = f.Page()
    page_size = f.PageSize()


class DeleteQuery(Schema):
    confirm = fields.Boolean(load_default=False)
    force = fields.Boolean(load_default=False)
    reason = f.Text(
        load_default=None,
        validate=validate.Length(max=500),
        metadata={"description": "why the customer is deleted (recorded)"},
    )


DIRECTORY = {"customer-groups": "group", "projects": "project", "discounts": "discount"}
CREATE_ROLES = {
    "group": ("admin", "support"),
    "project": ("admin",),
    "discount": ("admin", "billing"),
}


class CustomerRoutes:
    """Mixed into GatewayService; nameko finds the routes through inheritance."""

    # -- sessions -------------------------------------------------------------------------

    @route(
        "POST",
        "/api/v1/auth/login",
        body=LoginRequest,
        response=LoginResponse,
        summary="log in (client or staff)",
        tags=("auth",),
    )
    def login(self, call: Call):
        return call.services.customers.login(call.body, call.address)

    @route(
        "POST",
        "/api/v1/auth/password-reset",
        response=Status,
        body=contract.PasswordResetRequest,
        status=202,
        summary="mail a single-use reset link (always 202; rate limited)",
        tags=("auth",),
    )
    def password_reset(self, call: Call):
        call.services.customers.request_password_reset(jsonable(call.body), call.address)
        return {"status": "accepted"}

    @route(
        "POST",
        "/api/v1/auth/password-reset/confirm",
        response=PasswordResetDone,
        body=contract.PasswordResetConfirm,
        summary="set a new password from a reset link; every session of the account ends",
        tags=("auth",),
    )
    def password_reset_confirm(self, call: Call):
        return call.services.customers.confirm_password_reset(jsonable(call.body))

    @route(
        "POST",
        "/api/v1/auth/return",
        response=LoginResponse,
        client=True,
        tags=("auth",),
        summary="end acting as a client; the staff session comes back",
    )
    def end_impersonation(self, call: Call):
        return call.services.customers.end_impersonation(call.token)

    @route(
        "POST",
        "/api/v1/auth/logout",
        response=Status,
        client=True,
        roles=ALL_STAFF,
        tags=("auth",),
        summary="end this session",
    )
    def logout(self, call: Call):
        call.services.customers.logout(call.token)
        return {"status": "logged_out"}

    @route(
        "GET",
        "/api/v1/me",
        client=True,
        roles=ALL_STAFF,
        response=MeSchema,
        tags=("auth",),
        summary="who is logged in",
    )
    def me(self, call: Call):
        return call.principal

    # -- staff: customers -----------------------------------------------------------------

    @route(
        "POST",
        "/api/v1/staff/customers",
        idempotent="service",
        body=StaffRegisterCustomer,
        response=CustomerSchema,
        roles=("admin", "support"),
        status=201,
        tags=("customers",),
        summary="register a customer",
    )
    def register_customer(self, call: Call):
        payload = dict(jsonable(call.body), registration_ip=call.address)
        return call.services.customers.register_customer(payload, call.idempotency_key)

    @route(
        "GET",
        "/api/v1/staff/customers/<uuid:customer_id>",
        response=CustomerSchema,
        roles=ALL_STAFF,
        tags=("customers",),
        summary="one customer",
    )
    def get_customer(self, call: Call):
        return call.services.customers.get_customer(str(call.path["customer_id"]))

    @route(
        "GET",
        "/api/v1/staff/customers",
        response=CustomerList,
        query=CustomerListQuery,
        roles=ALL_STAFF,
        tags=("customers",),
        summary="customers, filtered",
    )
    def list_customers(self, call: Call):
        return call.services.customers.list_customers(jsonable(call.query))

    @route(
        "PATCH",
        "/api/v1/staff/customers/<uuid:customer_id>",
        body=contract.EditCustomer,
        response=CustomerSchema,
        roles=("admin", "support"),
        tags=("customers",),
        summary="edit a customer; corrections of e-mail, country, kind, contact person, company "
        "name or project need `reason` (recorded with who made them)",
    )
    def edit_customer(self, call: Call):
        return call.services.customers.edit_customer(
            str(call.path["customer_id"]), jsonable(call.body)
        )

    @route(
        "DELETE",
        "/api/v1/staff/customers/<uuid:customer_id>",
        response=Deletion,
        query=DeleteQuery,
        roles=("admin", "support"),
        tags=("customers",),
        summary="delete a customer (needs confirm=true; force=true: admins only)",
    )
    def delete_customer(self, call: Call):
        if not call.query["confirm"]:
            raise ValidationFailed(
                "Deleting a customer needs ?confirm=true.",
                {"confirm": ["Must be true to delete."]},
            )
        if call.query["force"] and call.principal.get("role") != "admin":
            raise Forbidden("Only an administrator may force a deletion.")
        call.services.customers.delete_customer(
            str(call.path["customer_id"]), call.query["force"], call.query["reason"]
        )
        return {"id": str(call.path["customer_id"]), "deleted": True}

    @route(
        "POST",
        "/api/v1/staff/customers/<uuid:customer_id>/erase",
        body=contract.EraseCustomer,
        response=Erasure,
        roles=("admin",),
        status=202,
        idempotent=True,
        tags=("customers",),
        summary="erase a deleted customer's personal data, saying why (`reason`): its names, "
        "e-mail, phone, address, note, its users' and payers' details and its tickets' texts "
        "read as `[erased]` in every service (their per-customer keys are destroyed); invoices "
        "keep their numbers, lines, totals and the buyer's legal name, the account its entries "
        "and balance. The customers service has erased when this answers (202), billing, "
        "orders, the helpdesk and the mail gateway a moment later. 404 unknown customer, 409 "
        "not deleted; a repeat answers the first erasure (Idempotency-Key accepted)",
    )
    def erase_customer(self, call: Call):
        return call.services.customers.erase_customer(
            str(call.path["customer_id"]), call.body["reason"]
        )

    @route(
        "POST",
        "/api/v1/staff/customers/<uuid:customer_id>/impersonate",
        response=LoginResponse,
        roles=("admin", "support"),
        tags=("customers",),
        summary="a client session for this customer, marked as you acting",
    )
    def impersonate(self, call: Call):
        return call.services.customers.impersonate(
            call.principal["staff_id"], str(call.path["customer_id"]), call.token
        )

    @route(
        "GET",
        "/api/v1/staff/customers/<uuid:customer_id>/impersonations",
        response=ImpersonationList,
        query=Page,
        roles=("admin", "auditor"),
        tags=("customers",),
        summary="who acted as this customer, and when",
    )
    def impersonations(self, call: Call):
        return paged(
            call.services.customers.impersonations(str(call.path["customer_id"])), call.query
        )

    @route(
        "GET",
        "/api/v1/staff/<any('customer-groups','projects','discounts'):kind>",
        response={"customer-groups": GroupList, "projects": ProjectList, "discounts": DiscountList},
        query=PageQuery,
        roles=ALL_STAFF,
        tags=("customers",),
        summary="groups, projects or discounts",
    )
    def list_directory(self, call: Call):
        q = call.query
        return call.services.customers.list_kind(
            DIRECTORY[call.path["kind"]], q["page"], q["page_size"], str_or_none(q["customer_id"])
        )

    @route(
        "POST",
        "/api/v1/staff/customer-groups",
        idempotent=True,
        response=Group,
        body=contract.CreateGroup,
        status=201,
        roles=CREATE_ROLES["group"],
        tags=("customers",),
        summary="create a customer group",
    )
    def create_group(self, call: Call):
        return call.services.customers.create("group", jsonable(call.body))

    @route(
        "POST",
        "/api/v1/staff/projects",
        idempotent=True,
        response=Project,
        body=contract.CreateProject,
        status=201,
        roles=CREATE_ROLES["project"],
        tags=("customers",),
        summary="create a project (brand)",
    )
    def create_project(self, call: Call):
        return call.services.customers.create("project", jsonable(call.body))

    @route(
        "PATCH",
        "/api/v1/staff/projects/<uuid:project_id>",
        response=Project,
        body=contract.ChangeProject,
        partial=True,
        roles=CREATE_ROLES["project"],
        tags=("customers",),
        summary="rename a project, change its mails' sender (`sender_email`, `sender_name`) "
        "or its renewal and dunning days (null: the system default); recorded with who",
    )
    def change_project(self, call: Call):
        return call.services.customers.change_project(
            str(call.path["project_id"]), jsonable(call.body)
        )

    @route(
        "DELETE",
        "/api/v1/staff/projects/<uuid:project_id>",
        response=Removal,
        roles=CREATE_ROLES["project"],
        tags=("customers",),
        summary="remove a project (409 while customers or products refer to it, saying how "
        "many of each)",
    )
    def remove_project(self, call: Call):
        """The project is no longer listed nor given to a new customer; its history
        stays. 409 while customers (not deleted) or products of the catalog refer to it:
        move them to another project first."""
        call.services.customers.remove_project(str(call.path["project_id"]))
        return {"id": str(call.path["project_id"]), "removed": True}

    @route(
        "POST",
        "/api/v1/staff/discounts",
        idempotent=True,
        response=Discount,
        body=contract.CreateDiscount,
        status=201,
        roles=CREATE_ROLES["discount"],
        tags=("customers",),
        summary="create a discount",
    )
    def create_discount(self, call: Call):
        return call.services.customers.create("discount", jsonable(call.body))

    @route(
        "PATCH",
        "/api/v1/staff/customer-groups/<uuid:group_id>",
        response=Group,
        body=contract.ChangeGroup,
        partial=True,
        roles=CREATE_ROLES["group"],
        tags=("customers",),
        summary="rename a customer group or change its description",
    )
    def change_group(self, call: Call):
        return call.services.customers.change_group(str(call.path["group_id"]), jsonable(call.body))

    @route(
        "DELETE",
        "/api/v1/staff/customer-groups/<uuid:group_id>",
        response=Removal,
        roles=CREATE_ROLES["group"],
        tags=("customers",),
        summary="remove a customer group (409 while customers are in it)",
    )
    def remove_group(self, call: Call):
        """The group is no longer listed nor given to customers; its history stays. 409
        while customers are in it: take them out of it first."""
        call.services.customers.remove_group(str(call.path["group_id"]))
        return {"id": str(call.path["group_id"]), "removed": True}

    @route(
        "PATCH",
        "/api/v1/staff/discounts/<uuid:discount_id>",
        response=Discount,
        body=contract.ChangeDiscount,
        partial=True,
        roles=CREATE_ROLES["discount"],
        tags=("customers",),
        summary="rename a discount or change when it is valid (409: it was given to a "
        "customer that was deleted; it stays as it was)",
    )
    def change_discount(self, call: Call):
        return call.services.customers.change_discount(
            str(call.path["discount_id"]), jsonable(call.body)
        )

    @route(
        "DELETE",
        "/api/v1/staff/discounts/<uuid:discount_id>",
        response=Discount,
        roles=CREATE_ROLES["discount"],
        tags=("customers",),
        summary="end a discount now (it stays listed, ended: invoices priced with it keep "
        "it; 409: it was given to a customer that was deleted)",
    )
    def end_discount(self, call: Call):
        return call.services.customers.end_discount(str(call.path["discount_id"]))

    @route(
        "GET",
        "/api/v1/staff/staff",
        response=StaffList,
        query=Page,
        roles=("admin", "auditor"),
        tags=("staff",),
        summary="staff accounts",
    )
    def list_staff(self, call: Call):
        return call.services.customers.list_kind(
            "staff", call.query["page"], call.query["page_size"]
        )

    @route(
        "POST",
        "/api/v1/staff/staff",
        idempotent=True,
        response=StaffMember,
        body=contract.RegisterStaff,
        status=201,
        roles=("admin",),
        tags=("staff",),
        summary="add a staff account",
    )
    def register_staff(self, call: Call):
        return call.services.customers.register_staff(jsonable(call.body))

    @route(
        "PATCH",
        "/api/v1/staff/staff/<uuid:staff_id>",
        response=StaffMember,
        body=contract.EditStaff,
        partial=True,
        roles=("admin",),
        tags=("staff",),
        summary="change a staff member's role, name, language or notification preferences",
    )
    def edit_staff(self, call: Call):
        return call.services.customers.edit_staff(str(call.path["staff_id"]), jsonable(call.body))

    @route(
        "POST",
        "/api/v1/staff/staff/<uuid:staff_id>/disable",
        response=StaffMember,
        roles=("admin",),
        tags=("staff",),
        summary="disable a staff member: no more logins, every session ends at once",
    )
    def disable_staff(self, call: Call):
        return call.services.customers.disable_staff(str(call.path["staff_id"]), {})

    @route(
        "POST",
        "/api/v1/staff/staff/<uuid:staff_id>/password-reset",
        idempotent=True,
        response=ResetLinkSent,
        status=202,
        roles=("admin",),
        tags=("staff",),
        summary="mail a staff member a link to set a new password (409: no e-mail or "
        "disabled; 429: a few per account in a while)",
    )
    def send_staff_password_reset(self, call: Call):
        return call.services.customers.send_staff_password_reset(str(call.path["staff_id"]))

    @route(
        "POST",
        "/api/v1/staff/customers/<uuid:customer_id>/password-reset",
        idempotent=True,
        response=ResetLinkSent,
        status=202,
        roles=("admin", "support"),
        tags=("customers",),
        summary="mail a client a link to set a new password (429: a few per account in a while)",
    )
    def send_customer_password_reset(self, call: Call):
        return call.services.customers.send_customer_password_reset(str(call.path["customer_id"]))

    @route(
        "GET",
        "/api/v1/staff/staff-policy",
        response=contract.StaffPolicy,
        roles=("admin", "auditor"),
        tags=("staff",),
        summary="the staff's login policy: two-factor authentication mandatory or not",
    )
    def get_staff_policy(self, call: Call):
        return call.services.customers.staff_policy()

    @route(
        "PUT",
        "/api/v1/staff/staff-policy",
        body=contract.StaffPolicy,
        response=contract.StaffPolicy,
        roles=("admin",),
        tags=("staff",),
        summary="make two-factor authentication mandatory for every staff member (a "
        "member without it who logs in sets it up first), or not; recorded with who. "
        "Making it mandatory needs your own on: else 409 naming `two_factor_required`",
    )
    def set_staff_policy(self, call: Call):
        return call.services.customers.set_staff_policy(jsonable(call.body))

    # -- staff: their own account -----------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/account",
        response=StaffAccount,
        roles=ALL_STAFF,
        tags=("staff",),
        summary="your own staff account",
    )
    def get_staff_account(self, call: Call):
        return call.services.customers.staff_account(call.principal["staff_id"])

    @route(
        "PATCH",
        "/api/v1/staff/account",
        body=contract.EditOwnStaffAccount,
        partial=True,
        response=StaffAccount,
        roles=ALL_STAFF,
        tags=("staff",),
        summary="change your language or notification preferences",
    )
    def edit_staff_account(self, call: Call):
        return call.services.customers.edit_own_staff_account(
            call.principal["staff_id"], jsonable(call.body)
        )

    @route(
        "POST",
        "/api/v1/staff/account/password",
        body=contract.ChangePassword,
        response=Status,
        roles=ALL_STAFF,
        tags=("staff",),
        summary="change your password (the current one first); your other sessions end",
    )
    def change_staff_password(self, call: Call):
        call.services.customers.change_staff_password(
            call.principal["staff_id"], call.body, call.token
        )
        return {"status": "changed"}

    # -- clients: their own account ---------------------------------------------------------

    @route(
        "GET",
        "/api/v1/client/profile",
        client=True,
        response=ProfileSchema,
        tags=("client",),
        summary="your contact details",
    )
    def get_profile(self, call: Call):
        return _profile(call.services.customers.get_customer(call.customer_id))

    @route(
        "PATCH",
        "/api/v1/client/profile",
        response=ProfileSchema,
        client=("full",),
        body=contract.EditProfile,
        tags=("client",),
        summary="change your contact details",
    )
    def edit_profile(self, call: Call):
        return _profile(call.services.customers.edit_profile(call.customer_id, jsonable(call.body)))

    @route(
        "POST",
        "/api/v1/client/password",
        response=Status,
        client=True,
        body=contract.ChangePassword,
        tags=("client",),
        summary="change your password; other sessions end",
    )
    def change_password(self, call: Call):
        if call.principal.get("user_id"):
            raise Forbidden(
                "A user of the account changes the account's password only through its owner."
            )
        call.services.customers.change_password(call.customer_id, call.body, call.token)
        return {"status": "changed"}

    @route(
        "GET",
        "/api/v1/client/notification-settings",
        response=NotificationSettingsAnswer,
        client=("full",),
        tags=("client",),
        summary="which notifications you receive",
    )
    def get_notification_settings(self, call: Call):
        return call.services.customers.get_notification_settings(call.customer_id)

    @route(
        "PUT",
        "/api/v1/client/notification-settings",
        response=NotificationSettingsAnswer,
        client=("full",),
        body=contract.NotificationSettings,
        tags=("client",),
        summary="choose which notifications you receive",
    )
    def set_notification_settings(self, call: Call):
        return call.services.customers.set_notification_settings(call.customer_id, call.body)

    @route(
        "GET",
        "/api/v1/client/users",
        response=CustomerUserList,
        client=("full",),
        query=Page,
        tags=("client",),
        summary="your account's users",
    )
    def list_users(self, call: Call):
        return call.services.customers.list_users(
            call.customer_id, call.query["page"], call.query["page_size"]
        )

    @route(
        "POST",
        "/api/v1/client/users",
        idempotent=True,
        response=CustomerUser,
        client=("full",),
        body=contract.AddUser,
        status=201,
        tags=("client",),
        summary="add a user with permissions",
    )
    def add_user(self, call: Call):
        return call.services.customers.add_user(call.customer_id, call.body)

    @route(
        "DELETE",
        "/api/v1/client/users/<uuid:user_id>",
        response=Removal,
        client=("full",),
        tags=("client",),
        summary="remove a user",
    )
    def remove_user(self, call: Call):
        call.services.customers.remove_user(call.customer_id, str(call.path["user_id"]))
        return {"id": str(call.path["user_id"]), "removed": True}

    @route(
        "GET",
        "/api/v1/client/payers",
        response=PayerList,
        client=("billing",),
        query=Page,
        tags=("client",),
        summary="your payers",
    )
    def list_payers(self, call: Call):
        return call.services.customers.list_payers(
            call.customer_id, call.query["page"], call.query["page_size"]
        )

    @route(
        "POST",
        "/api/v1/client/payers",
        idempotent=True,
        response=Payer,
        client=("billing",),
        body=contract.AddPayer,
        status=201,
        tags=("client",),
        summary="add a payer",
    )
    def add_payer(self, call: Call):
        return call.services.customers.add_payer(call.customer_id, call.body)

    # -- clients: e-mail change, style, favourite pages ---------------------------------------

    @route(
        "POST",
        "/api/v1/client/profile/email",
        response=EmailChangePending,
        client=True,
        body=contract.RequestEmailChange,
        status=202,
        tags=("client",),
        summary="change your e-mail: a single-use link valid 24 hours is mailed to the new "
        "address and the change takes effect only once it is confirmed; needs the current "
        "password (wrong: 401; the address of another account: 409; a newer request voids "
        "the older link)",
    )
    def request_email_change(self, call: Call):
        _owner_only(call, "changes the account's e-mail")
        return call.services.customers.request_email_change(call.customer_id, call.body)

    @route(
        "POST",
        "/api/v1/client/profile/email/confirm",
        response=ProfileSchema,
        client=True,
        body=contract.ConfirmEmailChange,
        tags=("client",),
        summary="confirm an e-mail change with the mailed link's token: the address changes "
        "now and the old one is told; a used, expired or unknown token: 400",
    )
    def confirm_email_change(self, call: Call):
        _owner_only(call, "changes the account's e-mail")
        return _profile(
            call.services.customers.confirm_email_change(call.customer_id, jsonable(call.body))
        )

    @route(
        "GET",
        "/api/v1/client/preferences",
        response=PreferencesAnswer,
        client=True,
        tags=("client",),
        summary="your own style of the pages (each user of the account has its own)",
    )
    def get_preferences(self, call: Call):
        settings = call.services.customers.personal_settings(
            call.customer_id, call.principal.get("user_id")
        )
        return {"theme": settings["theme"]}

    @route(
        "PUT",
        "/api/v1/client/preferences",
        response=PreferencesAnswer,
        client=True,
        body=contract.Preferences,
        tags=("client",),
        summary="choose your style of the pages: light, dark or auto (as the browser prefers)",
    )
    def set_preferences(self, call: Call):
        settings = call.services.customers.set_preferences(
            call.customer_id, call.principal.get("user_id"), call.body
        )
        return {"theme": settings["theme"]}

    @route(
        "GET",
        "/api/v1/client/favourites",
        response=FavouritesAnswer,
        client=True,
        tags=("client",),
        summary="your favourite pages, pinned to the client area's menu",
    )
    def get_favourites(self, call: Call):
        settings = call.services.customers.personal_settings(
            call.customer_id, call.principal.get("user_id")
        )
        return {"pages": settings["favourites"]}

    @route(
        "PUT",
        "/api/v1/client/favourites",
        response=FavouritesAnswer,
        client=True,
        body=contract.Favourites,
        tags=("client",),
        summary='set your favourite pages `{"pages": [{"path", "label"}]}`: pages of '
        "the client area (/invoices, /tickets/<id>, ...), each once, at most 20",
    )
    def set_favourites(self, call: Call):
        settings = call.services.customers.set_favourites(
            call.customer_id, call.principal.get("user_id"), call.body
        )
        return {"pages": settings["favourites"]}


def _owner_only(call: Call, what: str) -> None:
    if call.principal.get("user_id"):
        raise Forbidden(f"A user of the account {what} only through its owner.")


CLIENT_PROFILE_FIELDS = (
    "id",
    "number",
    "kind",
    "name",
    "email",
    "username",
    "country",
    "contact_person",
    "company_name",
    "language",
    "phone",
    "address",
    "currency",
    "registered_at",
    "version",
)


def _profile(customer: dict) -> dict:
    """What a client sees of itself: no staff notes, attitude or registration address."""
    return {k: customer.get(k) for k in CLIENT_PROFILE_FIELDS}
