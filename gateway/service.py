"""The HTTP gateway: the only thing browsers and API clients talk to.

It owns no business state: it authenticates, checks roles, validates input, calls
the services over RPC as the person calling, and shapes their answers.
"""

from __future__ import annotations

import base64
import logging

import eventlet
from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from contracts import billing
from contracts import customers as contract
from contracts import orders as orders_contract
from contracts.errors import Forbidden, ValidationFailed
from gateway import helpdesk_routes, mail_routes, openapi
from gateway.http import Call, Route, ServiceRpc, json_response, route
from gateway.schemas import (
    AccountSchema,
    CustomerSchema,
    HealthSchema,
    LoginRequest,
    LoginResponse,
    MeSchema,
    OrderAnswer,
    OrderRequest,
    ParkedList,
    ProductRequest,
    StaffRegisterCustomer,
)
from services.infra.context import Actor
from services.infra.service import Runtime
from services.infra.settings import SERVICES

log = logging.getLogger(__name__)

ALL_STAFF = ("admin", "support", "billing")
HEALTH_TIMEOUT = 2.0


class ParkedQuery(Schema):
    include_resolved = fields.Boolean(load_default=False)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class AtQuery(Schema):
    at = fields.AwareDateTime(load_default=None, format="iso")


class AccountQuery(AtQuery):
    """`?at=` and a page of the account's entries (oldest first)."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class RefundQuery(Schema):
    customer_id = fields.UUID(load_default=None)
    status = fields.String(
        load_default=None,
        validate=validate.OneOf(["requested", "pending", "completed", "failed"]),
    )
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class ListQuery(Schema):
    customer_id = fields.UUID(load_default=None)
    status = fields.String(
        load_default=None, validate=validate.OneOf(["unpaid", "paid", "cancelled", "refunded"])
    )
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class ProvisionedNote(Schema):
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class ServiceReason(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class CatalogQuery(Schema):
    language = fields.String(load_default="en", validate=validate.OneOf(["en", "ru", "fr"]))
    currency = fields.String(load_default=None, validate=validate.Regexp(r"^[A-Z]{3}$"))


class PdfQuery(Schema):
    language = fields.String(load_default="en", validate=validate.OneOf(["en", "ru", "fr"]))


class DeleteQuery(Schema):
    confirm = fields.Boolean(load_default=False)
    force = fields.Boolean(load_default=False)


class PageQuery(Schema):
    customer_id = fields.UUID(load_default=None)
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


DIRECTORY = {"customer-groups": "group", "projects": "project", "discounts": "discount"}
CREATE_ROLES = {
    "group": ("admin", "support"),
    "project": ("admin",),
    "discount": ("admin", "billing"),
}


# the mixins by module: `nameko run` would take a top-level class with routes for a service
class GatewayService(helpdesk_routes.HelpdeskRoutes, mail_routes.MailRoutes):
    name = "gateway"
    services = ServiceRpc()
    runtime = Runtime()

    # -- public ---------------------------------------------------------------------------

    @route("GET", "/health", response=HealthSchema, summary="every service answers", tags=("ops",))
    def health(self, call: Call):
        replies = {}
        for service in SERVICES:
            try:
                replies[service] = getattr(call.services, service).ping.call_async()
            except Exception:  # noqa: BLE001 - an absent service is exactly what we report
                replies[service] = None
        answer = {}
        for service, reply in replies.items():
            status = "unavailable"
            if reply is not None:
                try:
                    with eventlet.Timeout(HEALTH_TIMEOUT):
                        status = "ok" if reply.result() == "ok" else "unavailable"
                except (Exception, eventlet.Timeout):  # noqa: BLE001
                    status = "unavailable"
            answer[service] = status
        ok = all(s == "ok" for s in answer.values())
        return json_response(
            {"status": "ok" if ok else "unavailable", "services": answer}, 200 if ok else 503
        )

    @route("GET", "/api/v1/openapi.json", summary="this document", tags=("ops",))
    def openapi_document(self, call: Call):
        routes = [e for e in self.runtime.entrypoints if isinstance(e, Route)]
        return openapi.build(routes)

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
        return call.services.customers.login(call.body, call.request.remote_addr)

    @route(
        "POST",
        "/api/v1/auth/return",
        client=True,
        tags=("auth",),
        summary="end acting as a client; the staff session comes back",
    )
    def end_impersonation(self, call: Call):
        return call.services.customers.end_impersonation(call.token)

    @route(
        "POST",
        "/api/v1/auth/logout",
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
        body=StaffRegisterCustomer,
        response=CustomerSchema,
        roles=("admin", "support"),
        status=201,
        tags=("customers",),
        summary="register a customer",
    )
    def register_customer(self, call: Call):
        payload = dict(_jsonable(call.body), registration_ip=call.request.remote_addr)
        return call.services.customers.register_customer(
            payload, call.request.headers.get("Idempotency-Key")
        )

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
        "/api/v1/staff/customers/<uuid:customer_id>/account",
        query=AccountQuery,
        response=AccountSchema,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="the customer's personal account (?at= as it stood then)",
    )
    def customer_account(self, call: Call):
        return _account(call, str(call.path["customer_id"]))

    @route(
        "GET",
        "/api/v1/staff/customers",
        query=contract.CustomerFilters,
        roles=ALL_STAFF,
        tags=("customers",),
        summary="customers, filtered",
    )
    def list_customers(self, call: Call):
        return call.services.customers.list_customers(_jsonable(call.query))

    @route(
        "PATCH",
        "/api/v1/staff/customers/<uuid:customer_id>",
        body=contract.EditCustomer,
        response=CustomerSchema,
        roles=("admin", "support"),
        tags=("customers",),
        summary="edit a customer",
    )
    def edit_customer(self, call: Call):
        return call.services.customers.edit_customer(
            str(call.path["customer_id"]), _jsonable(call.body)
        )

    @route(
        "DELETE",
        "/api/v1/staff/customers/<uuid:customer_id>",
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
        call.services.customers.delete_customer(str(call.path["customer_id"]), call.query["force"])
        return {"id": str(call.path["customer_id"]), "deleted": True}

    @route(
        "POST",
        "/api/v1/staff/customers/<uuid:customer_id>/impersonate",
        roles=("admin", "support"),
        tags=("customers",),
        summary="a client session for this customer, marked as you acting",
    )
    def impersonate(self, call: Call):
        return call.services.customers.impersonate(
            call.principal["staff_id"], str(call.path["customer_id"])
        )

    @route(
        "GET",
        "/api/v1/staff/customers/<uuid:customer_id>/impersonations",
        roles=("admin",),
        tags=("customers",),
        summary="who acted as this customer, and when",
    )
    def impersonations(self, call: Call):
        items = call.services.customers.impersonations(str(call.path["customer_id"]))
        return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}

    @route(
        "GET",
        "/api/v1/staff/<any('customer-groups','projects','discounts'):kind>",
        query=PageQuery,
        roles=ALL_STAFF,
        tags=("customers",),
        summary="groups, projects or discounts",
    )
    def list_directory(self, call: Call):
        q = call.query
        return call.services.customers.list_kind(
            DIRECTORY[call.path["kind"]], q["page"], q["page_size"], _str(q["customer_id"])
        )

    @route(
        "POST",
        "/api/v1/staff/customer-groups",
        body=contract.CreateGroup,
        status=201,
        roles=CREATE_ROLES["group"],
        tags=("customers",),
        summary="create a customer group",
    )
    def create_group(self, call: Call):
        return call.services.customers.create("group", _jsonable(call.body))

    @route(
        "POST",
        "/api/v1/staff/projects",
        body=contract.CreateProject,
        status=201,
        roles=CREATE_ROLES["project"],
        tags=("customers",),
        summary="create a project (brand)",
    )
    def create_project(self, call: Call):
        return call.services.customers.create("project", _jsonable(call.body))

    @route(
        "PATCH",
        "/api/v1/staff/projects/<uuid:project_id>",
        body=contract.ChangeProject,
        partial=True,
        roles=CREATE_ROLES["project"],
        tags=("customers",),
        summary="change a project's renewal and dunning days (null: the system default)",
    )
    def change_project(self, call: Call):
        return call.services.customers.change_project(
            str(call.path["project_id"]), _jsonable(call.body)
        )

    @route(
        "POST",
        "/api/v1/staff/discounts",
        body=contract.CreateDiscount,
        status=201,
        roles=CREATE_ROLES["discount"],
        tags=("customers",),
        summary="create a discount",
    )
    def create_discount(self, call: Call):
        return call.services.customers.create("discount", _jsonable(call.body))

    @route(
        "GET",
        "/api/v1/staff/staff",
        query=PageQuery,
        roles=("admin",),
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
        body=contract.RegisterStaff,
        status=201,
        roles=("admin",),
        tags=("staff",),
        summary="add a staff account",
    )
    def register_staff(self, call: Call):
        return call.services.customers.register_staff(_jsonable(call.body))

    # -- clients: their own account ---------------------------------------------------------

    @route(
        "GET",
        "/api/v1/client/profile",
        client=True,
        response=CustomerSchema,
        tags=("client",),
        summary="your contact details",
    )
    def get_profile(self, call: Call):
        return _profile(call.services.customers.get_customer(call.customer_id))

    @route(
        "PATCH",
        "/api/v1/client/profile",
        client=True,
        body=contract.EditProfile,
        tags=("client",),
        summary="change your contact details",
    )
    def edit_profile(self, call: Call):
        return _profile(
            call.services.customers.edit_profile(call.customer_id, _jsonable(call.body))
        )

    @route(
        "POST",
        "/api/v1/client/password",
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
        client=("full",),
        tags=("client",),
        summary="which notifications you receive",
    )
    def get_notification_settings(self, call: Call):
        return call.services.customers.get_notification_settings(call.customer_id)

    @route(
        "PUT",
        "/api/v1/client/notification-settings",
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
        client=("full",),
        query=PageQuery,
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
        client=("billing",),
        query=PageQuery,
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
        client=("billing",),
        body=contract.AddPayer,
        status=201,
        tags=("client",),
        summary="add a payer",
    )
    def add_payer(self, call: Call):
        return call.services.customers.add_payer(call.customer_id, call.body)

    # -- billing --------------------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/<any(invoices,payments,expenses,commissions):name>",
        query=ListQuery,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="invoices, payments or expenses",
    )
    def staff_billing_list(self, call: Call):
        q = call.query
        return call.services.billing.list(
            call.path["name"], _str(q["customer_id"]), q["status"], q["page"], q["page_size"]
        )

    @route(
        "POST",
        "/api/v1/staff/payments",
        body=billing.RecordPayment,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="record a payment (Idempotency-Key accepted)",
    )
    def record_payment(self, call: Call):
        return call.services.billing.record_payment(
            _jsonable(call.body), call.request.headers.get("Idempotency-Key")
        )

    @route(
        "POST",
        "/api/v1/staff/invoices",
        body=billing.IssueInvoice,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="issue an invoice by hand",
    )
    def issue_invoice(self, call: Call):
        return call.services.billing.issue_invoice(
            _jsonable(call.body), call.request.headers.get("Idempotency-Key")
        )

    @route(
        "GET",
        "/api/v1/staff/payments/unmatched",
        query=ListQuery,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="processor payments for no known invoice, kept for staff",
    )
    def unmatched_payments(self, call: Call):
        q = call.query
        return call.services.billing.list(
            "unmatched_payments", None, None, q["page"], q["page_size"]
        )

    @route(
        "POST",
        "/api/v1/payments/webhooks/<processor>",
        tags=("billing",),
        summary="a payment processor's signed notification (401 unless validly signed)",
    )
    def processor_webhook(self, call: Call):
        raw = call.request.get_data(cache=True)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("The body is not UTF-8.", {"_body": ["Not UTF-8."]}) from None
        headers = dict(call.request.headers.items())
        return call.services.billing.processor_webhook(call.path["processor"], headers, body)

    @route(
        "GET",
        "/api/v1/client/account",
        client=("billing",),
        query=AccountQuery,
        response=AccountSchema,
        tags=("client",),
        summary="your personal account (?at= as it stood then)",
    )
    def client_account(self, call: Call):
        return _account(call, call.customer_id)

    @route(
        "POST",
        "/api/v1/client/account/funds",
        client=("billing",),
        body=billing.AddFunds,
        status=201,
        tags=("client",),
        summary="an invoice to add funds to your account",
    )
    def add_funds(self, call: Call):
        customer = call.services.customers.get_customer(call.customer_id)
        return call.services.billing.add_funds_invoice(
            call.customer_id,
            customer["currency"],
            call.body,
            call.request.headers.get("Idempotency-Key"),
        )

    @route(
        "GET",
        "/api/v1/client/<any(invoices,payments,expenses,commissions):name>",
        query=ListQuery,
        client=("billing",),
        tags=("client",),
        summary="your invoices, payments or expenses",
    )
    def client_billing_list(self, call: Call):
        q = call.query
        return call.services.billing.list(
            call.path["name"], call.customer_id, q["status"], q["page"], q["page_size"]
        )

    @route(
        "GET",
        "/api/v1/client/invoices/<uuid:invoice_id>",
        client=("billing",),
        tags=("client",),
        summary="one of your invoices",
    )
    def client_invoice(self, call: Call):
        return call.services.billing.get_invoice(str(call.path["invoice_id"]), call.customer_id)

    @route(
        "POST",
        "/api/v1/client/invoices/<uuid:invoice_id>/pay",
        client=("billing",),
        tags=("client",),
        summary="pay an invoice from your personal account",
    )
    def pay_invoice(self, call: Call):
        return call.services.billing.pay_from_balance(
            call.customer_id, str(call.path["invoice_id"])
        )

    @route(
        "GET",
        "/api/v1/client/invoices/<uuid:invoice_id>/pdf",
        client=("billing",),
        tags=("client",),
        summary="one of your invoices as PDF, in your language",
    )
    def client_invoice_pdf(self, call: Call):
        customer = call.services.customers.get_customer(call.customer_id)
        return _pdf(call, call.customer_id, customer["language"])

    @route(
        "GET",
        "/api/v1/staff/invoices/<uuid:invoice_id>/pdf",
        roles=ALL_STAFF,
        query=PdfQuery,
        tags=("billing",),
        summary="an invoice as PDF (?language=)",
    )
    def staff_invoice_pdf(self, call: Call):
        return _pdf(call, None, call.query["language"])

    @route(
        "GET",
        "/api/v1/staff/affiliate-programs",
        roles=ALL_STAFF,
        tags=("billing",),
        summary="affiliate programs",
    )
    def affiliate_programs(self, call: Call):
        items = call.services.billing.programs()
        return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}

    @route(
        "POST",
        "/api/v1/staff/affiliate-programs",
        body=billing.AffiliateProgram,
        status=201,
        roles=("admin",),
        tags=("billing",),
        summary="an affiliate program: percentage and maturity period",
    )
    def create_affiliate_program(self, call: Call):
        return call.services.billing.create_program(_jsonable(call.body))

    @route(
        "GET",
        "/api/v1/staff/tax-rules",
        roles=ALL_STAFF,
        tags=("billing",),
        summary="tax rules per project and buyer country",
    )
    def tax_rules(self, call: Call):
        items = call.services.billing.tax_rules()
        return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}

    @route(
        "POST",
        "/api/v1/staff/tax-rules",
        body=billing.AddTaxRule,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="add a tax rule",
    )
    def add_tax_rule(self, call: Call):
        return call.services.billing.add_tax_rule(_jsonable(call.body))

    @route(
        "POST",
        "/api/v1/staff/invoices/<uuid:invoice_id>/refund",
        body=billing.Refund,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="refund a paid invoice, fully or in part, to the personal account or through "
        "the processor, with a credit note (Idempotency-Key accepted)",
    )
    def refund_invoice(self, call: Call):
        return call.services.billing.refund_invoice(
            str(call.path["invoice_id"]),
            _jsonable(call.body),
            call.request.headers.get("Idempotency-Key"),
        )

    @route(
        "GET",
        "/api/v1/staff/refunds",
        query=RefundQuery,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="refunds, with their processor status (?status=failed: the ones to retry)",
    )
    def staff_refunds(self, call: Call):
        q = call.query
        return call.services.billing.list(
            "refunds", _str(q["customer_id"]), q["status"], q["page"], q["page_size"]
        )

    @route(
        "GET",
        "/api/v1/staff/refunds/<uuid:refund_id>",
        roles=ALL_STAFF,
        tags=("billing",),
        summary="one refund (never lags)",
    )
    def staff_refund(self, call: Call):
        return call.services.billing.get_refund(str(call.path["refund_id"]))

    @route(
        "POST",
        "/api/v1/staff/refunds/<uuid:refund_id>/retry",
        roles=("admin", "billing"),
        tags=("billing",),
        summary="send a failed processor refund again (it is never paid out twice)",
    )
    def retry_refund(self, call: Call):
        return call.services.billing.retry_refund(str(call.path["refund_id"]))

    @route(
        "GET",
        "/api/v1/staff/credit-notes",
        query=PageQuery,
        roles=ALL_STAFF,
        tags=("billing",),
        summary="credit notes (?customer_id=)",
    )
    def staff_credit_notes(self, call: Call):
        q = call.query
        return call.services.billing.list(
            "credit_notes", _str(q["customer_id"]), None, q["page"], q["page_size"]
        )

    @route(
        "GET",
        "/api/v1/staff/credit-notes/<uuid:note_id>",
        roles=ALL_STAFF,
        tags=("billing",),
        summary="one credit note",
    )
    def staff_credit_note(self, call: Call):
        return call.services.billing.get_credit_note(str(call.path["note_id"]))

    @route(
        "GET",
        "/api/v1/staff/credit-notes/<uuid:note_id>/pdf",
        roles=ALL_STAFF,
        query=PdfQuery,
        tags=("billing",),
        summary="a credit note as PDF (?language=)",
    )
    def staff_credit_note_pdf(self, call: Call):
        return _credit_note_pdf(call, None, call.query["language"])

    @route(
        "GET",
        "/api/v1/client/credit-notes",
        query=PageQuery,
        client=("billing",),
        tags=("client",),
        summary="your credit notes",
    )
    def client_credit_notes(self, call: Call):
        q = call.query
        return call.services.billing.list(
            "credit_notes", call.customer_id, None, q["page"], q["page_size"]
        )

    @route(
        "GET",
        "/api/v1/client/credit-notes/<uuid:note_id>",
        client=("billing",),
        tags=("client",),
        summary="one of your credit notes",
    )
    def client_credit_note(self, call: Call):
        return call.services.billing.get_credit_note(str(call.path["note_id"]), call.customer_id)

    @route(
        "GET",
        "/api/v1/client/credit-notes/<uuid:note_id>/pdf",
        client=("billing",),
        tags=("client",),
        summary="one of your credit notes as PDF, in your language",
    )
    def client_credit_note_pdf(self, call: Call):
        customer = call.services.customers.get_customer(call.customer_id)
        return _credit_note_pdf(call, call.customer_id, customer["language"])

    @route(
        "POST",
        "/api/v1/staff/customers/<uuid:customer_id>/account/corrections",
        body=billing.Correction,
        status=201,
        roles=("admin", "billing"),
        tags=("billing",),
        summary="correct the personal account (signed amount, with a reason)",
    )
    def correct_balance(self, call: Call):
        customer = call.services.customers.get_customer(str(call.path["customer_id"]))
        return call.services.billing.correct_balance(
            customer["id"], customer["currency"], call.body
        )

    # -- catalog and orders -------------------------------------------------------------------

    @route(
        "GET", "/api/v1/catalog", query=CatalogQuery, tags=("orders",), summary="products on sale"
    )
    def catalog(self, call: Call):
        items = call.services.orders.catalog(call.query["language"], True, call.query["currency"])
        return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}

    @route(
        "POST",
        "/api/v1/orders",
        body=OrderRequest,
        response=OrderAnswer,
        status=201,
        tags=("orders",),
        summary="order as a new or an existing customer",
    )
    def place_order(self, call: Call):
        """A new e-mail creates the customer (credentials shown once); an existing one needs
        its password. Items are priced from the catalog and checked before anything is
        created, so a bad item leaves no customer behind.

        With an Idempotency-Key the same request answers the same order again, without
        the credentials (they are shown once, and mailed); it also finishes an order whose
        customer was made by that request when the order itself did not get placed."""
        person = _jsonable(call.body["customer"])
        items = {"items": call.body["items"], "promo_code": call.body.get("promo_code")}
        key = call.request.headers.get("Idempotency-Key")
        # what identifies the request: the password stays out of the (stored) hash
        request = _jsonable(
            dict(items, customer={k: v for k, v in person.items() if k != "password"})
        )
        if key:
            earlier = call.services.orders.order_for_key(key, request)
            if earlier is not None:
                return _order_answer(earlier, earlier["customer_id"], None)
        made = call.services.customers.registration_for(f"order:{key}", person) if key else None
        existing = made or call.services.customers.customer_for_order(
            person["email"], person.get("password"), call.request.remote_addr
        )
        currency = existing["currency"] if existing else "EUR"
        call.services.orders.price_items(currency, items)
        credentials = None
        if existing is None:
            created = call.services.customers.register_customer(
                dict(person, registration_ip=call.request.remote_addr),
                f"order:{key}" if key else None,
            )
            customer_id, credentials = created["id"], created.get("credentials")
            if credentials:
                _mail_credentials(call, customer_id, credentials)
        else:
            customer_id = existing["id"]
        call.services.act_as(Actor("client", customer_id))
        order = call.services.orders.place_order(customer_id, currency, items, key, request)
        return _order_answer(order, customer_id, credentials)

    @route(
        "GET",
        "/api/v1/staff/products",
        roles=ALL_STAFF,
        query=CatalogQuery,
        tags=("orders",),
        summary="the catalog, on sale or not",
    )
    def list_products(self, call: Call):
        items = call.services.orders.catalog(None, False, call.query["currency"])
        return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}

    @route(
        "POST",
        "/api/v1/staff/products",
        body=ProductRequest,
        status=201,
        roles=("admin",),
        tags=("orders",),
        summary="add a product",
    )
    def create_product(self, call: Call):
        return call.services.orders.create_product(_product_payload(call.body))

    @route(
        "GET",
        "/api/v1/staff/products/<uuid:product_id>",
        roles=ALL_STAFF,
        tags=("orders",),
        summary="one product",
    )
    def get_product(self, call: Call):
        return call.services.orders.get_product(str(call.path["product_id"]))

    @route(
        "PATCH",
        "/api/v1/staff/products/<uuid:product_id>",
        body=ProductRequest,
        partial=True,
        roles=("admin",),
        tags=("orders",),
        summary="change a product",
    )
    def change_product(self, call: Call):
        return call.services.orders.change_product(
            str(call.path["product_id"]), _product_payload(call.body)
        )

    @route(
        "POST",
        "/api/v1/staff/promo-codes",
        body=orders_contract.CreatePromo,
        status=201,
        roles=("admin", "billing"),
        tags=("orders",),
        summary="a promo code",
    )
    def create_promo(self, call: Call):
        return call.services.orders.create_promo(_jsonable(call.body))

    @route(
        "POST",
        "/api/v1/client/services/<uuid:service_id>/cancel",
        body=ServiceReason,
        client=("services",),
        tags=("client",),
        summary="cancel one of your services",
    )
    def cancel_service(self, call: Call):
        return call.services.orders.cancel_service(
            call.customer_id, str(call.path["service_id"]), call.body
        )

    @route(
        "GET",
        "/api/v1/staff/provisioning",
        roles=ALL_STAFF,
        tags=("orders",),
        summary="services waiting to be set up by hand",
    )
    def provisioning_tasks(self, call: Call):
        items = call.services.orders.provisioning_tasks()
        return {"items": items, "total": len(items), "page": 1, "page_size": len(items)}

    @route(
        "POST",
        "/api/v1/staff/services/<uuid:service_id>/provisioned",
        body=ProvisionedNote,
        roles=("admin", "support"),
        tags=("orders",),
        summary="record that a service was set up by hand",
    )
    def mark_provisioned(self, call: Call):
        return call.services.orders.mark_provisioned(str(call.path["service_id"]), call.body)

    @route(
        "POST",
        "/api/v1/staff/services/<uuid:service_id>/<any(suspend,unsuspend,terminate):action>",
        body=ServiceReason,
        roles=("admin", "support", "billing"),
        tags=("orders",),
        summary="suspend, unsuspend or terminate a service by hand",
    )
    def change_service(self, call: Call):
        return call.services.orders.change_service(
            str(call.path["service_id"]), call.path["action"], call.body
        )

    @route(
        "GET",
        "/api/v1/staff/<any(orders,services):name>",
        query=ListQuery,
        roles=ALL_STAFF,
        tags=("orders",),
        summary="orders or services",
    )
    def staff_order_list(self, call: Call):
        q = call.query
        return call.services.orders.list(
            call.path["name"], _str(q["customer_id"]), q["page"], q["page_size"]
        )

    @route(
        "GET",
        "/api/v1/client/<any(orders,services):name>",
        query=ListQuery,
        client=("services",),
        tags=("client",),
        summary="your orders or services",
    )
    def client_order_list(self, call: Call):
        q = call.query
        return call.services.orders.list(
            call.path["name"], call.customer_id, q["page"], q["page_size"]
        )

    # -- staff: operations ----------------------------------------------------------------

    @route(
        "GET",
        "/api/v1/staff/parked-events",
        query=ParkedQuery,
        response=ParkedList,
        roles=("admin",),
        tags=("ops",),
        summary="events a service could not apply",
    )
    def parked_events(self, call: Call):
        items = []
        for service in SERVICES:
            items.extend(
                getattr(call.services, service).parked_events(call.query["include_resolved"])
            )
        items.sort(key=lambda p: p["parked_at"])
        page, size = call.query["page"], call.query["page_size"]
        return {
            "items": items[(page - 1) * size : page * size],
            "total": len(items),
            "page": page,
            "page_size": size,
        }

    @route(
        "POST",
        "/api/v1/staff/parked-events/<any(customers,billing,orders,helpdesk,"
        "mailgateway):service>/<int:parked_id>/retry",
        roles=("admin",),
        tags=("ops",),
        summary="apply a parked event again",
    )
    def retry_parked(self, call: Call):
        service = getattr(call.services, call.path["service"])
        return service.retry_parked(call.path["parked_id"])


def _pdf(call: Call, customer_id: str | None, language: str) -> Response:
    invoice_id = str(call.path["invoice_id"])
    content = call.services.billing.invoice_pdf(invoice_id, customer_id, language)
    return Response(
        base64.b64decode(content),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="invoice-{invoice_id}.pdf"'},
    )


def _order_answer(order: dict, customer_id: str, credentials: dict | None) -> dict:
    answer = {
        "order_id": order["id"],
        "customer_id": customer_id,
        "invoice_id": order["invoice_id"],
    }
    if credentials:
        answer["credentials"] = credentials
    return answer


def _mail_credentials(call: Call, customer_id: str, credentials: dict) -> None:
    """Queue the new account's credentials mail, right after the account exists (so the
    customer gets it even if the order itself then fails), without waiting for the mail.

    The request is published, persistent and confirmed by RabbitMQ, to the mail gateway's
    durable RPC queue and its reply is not awaited: a mail gateway that is down takes it
    when it starts again, and the order neither waits for it nor fails with it. The mail
    gateway queues one mail per customer for `reason="order"`, so a redelivered request
    mails nothing twice. The password travels only in this request and in the mail
    gateway's outbox row until the mail is sent; it is in no event. Should RabbitMQ refuse
    the request (no mail gateway ever started), the order still succeeds and its answer
    shows the credentials; the failure is logged, without the password."""
    try:
        call.services.mailgateway.send_account_credentials.call_async(
            customer_id, credentials["username"], credentials["password"], reason="order"
        )
    except Exception as exc:  # noqa: BLE001 - the mail must never fail the order
        log.warning("credentials mail for customer %s not queued: %r", customer_id, exc)


def _product_payload(body: dict) -> dict:
    """A product request as the orders service takes it (texts and prices per key)."""
    out = {}
    for key in ("name", "description"):
        if key in body and body[key] is not None:
            out[key] = body[key] if isinstance(body[key], dict) else {"en": body[key]}
    if "prices" in body:
        out["prices"] = body["prices"]
    if body.get("setup_fee") is not None:
        out["setup_fee"] = body["setup_fee"]
    if body.get("provisioning") is not None:
        out["provisioning"] = body["provisioning"]
    if body.get("addons") is not None:
        out["addons"] = [
            dict(
                {k: a[k] for k in ("id", "prices") if k in a},
                setup_fee=a.get("setup_fee") or {},
                **(
                    {"name": a["name"] if isinstance(a["name"], dict) else {"en": a["name"]}}
                    if "name" in a
                    else {}
                ),
            )
            for a in body["addons"]
        ]
    for key in ("project_id", "on_sale"):
        if key in body:
            out[key] = body[key]
    return _jsonable(out)


def _str(value) -> str | None:
    return None if value is None else str(value)


def _credit_note_pdf(call: Call, customer_id: str | None, language: str) -> Response:
    note_id = str(call.path["note_id"])
    content = call.services.billing.credit_note_pdf(note_id, customer_id, language)
    return Response(
        base64.b64decode(content),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="credit-note-{note_id}.pdf"'},
    )


def _account(call: Call, customer_id: str) -> dict:
    customer = call.services.customers.get_customer(customer_id)
    at = call.query.get("at")
    return call.services.billing.get_account(
        customer["id"],
        customer["currency"],
        at.isoformat() if at else None,
        call.query.get("page", 1),
        call.query.get("page_size", 50),
    )


def _jsonable(value):
    """Loaded request data as plain JSON for RPC (UUIDs, dates and decimals as strings)."""
    import datetime
    import decimal
    import uuid

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


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
