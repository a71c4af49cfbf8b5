"""How the staff panel's history pages say an audit history in the page's language.

The audit index (services/infra/audit.py) names each event by its type, `Invoice.Paid`,
and keeps an English summary; its changes are `{field: [before, after]}` with the
attributes' own names. Here are the sentences the common events of every service get in
the page's language (`EVENTS`), the names of the objects they happen to (`SUBJECTS`) and
of their common fields (`FIELDS`), and how a value is written: money as money where the
field holds an amount and the currency is known, instants and dates as the pages write
them, yes and no in words, other values as they are. An event or a field not listed
still reads as words (`Customer.EmailCorrected`: "Customer: email corrected"), never as
a class name alone.

Every entry is a msgid marked for the catalogue (N_, or `pgettext` here for one with a
context) and translated where shown, with the page's `Translations`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from gateway.web import i18n
from gateway.web.i18n import N_

Entry = str | tuple[str, str]


def pgettext(context: str, message: str) -> tuple[str, str]:
    """Marks a msgid with its context for the catalogue (translated where shown)."""
    return (context, message)


def say(entry: Entry, translations) -> str:
    """A catalogue entry (a msgid, or (context, msgid)) in the page's language."""
    if isinstance(entry, tuple):
        return translations.pgettext(*entry)
    return translations.gettext(entry)


_TWO_FACTOR_ON = N_("Two-factor authentication turned on")
_TWO_FACTOR_OFF = N_("Two-factor authentication turned off")
_TWO_FACTOR_RESET = N_("Two-factor authentication reset by staff")
_RECOVERY_CODE = N_("A two-factor recovery code used")
_PASSWORD = N_("Password changed")
_MAIL_TEMPLATE_EDITED = N_("Mail template edited")

# what happened, by the event's type (`Aggregate.Event`)
EVENTS: dict[str, Entry] = {
    # customers
    "Customer.Registered": N_("Customer registered"),
    "Customer.Edited": N_("Customer details changed"),
    "Customer.Corrected": N_("Registration details corrected"),
    "Customer.Deleted": N_("Customer deleted"),
    # every service records it, each for its own data
    "PersonalData.Erased": N_("Personal data erased"),
    "Customer.PasswordChanged": _PASSWORD,
    "Customer.NotificationSettingsChanged": N_("Notification settings changed"),
    "Customer.ServiceStarted": N_("A service of the customer started"),
    "Customer.ServiceEnded": N_("A service of the customer ended"),
    "Customer.TwoFactorEnabled": _TWO_FACTOR_ON,
    "Customer.TwoFactorDisabled": _TWO_FACTOR_OFF,
    "Customer.TwoFactorReset": _TWO_FACTOR_RESET,
    "Customer.RecoveryCodeUsed": _RECOVERY_CODE,
    "CustomerUser.Added": N_("User added"),
    "CustomerUser.Removed": N_("User removed"),
    "CustomerUser.PasswordChanged": N_("User's password changed"),
    "CustomerUser.TwoFactorEnabled": N_("User turned two-factor authentication on"),
    "CustomerUser.TwoFactorDisabled": N_("User turned two-factor authentication off"),
    "CustomerUser.TwoFactorReset": N_("User's two-factor authentication reset by staff"),
    "CustomerUser.RecoveryCodeUsed": N_("User used a two-factor recovery code"),
    "Payer.Added": N_("Payer added"),
    "Discount.Created": N_("Discount given"),
    "Discount.Changed": N_("Discount changed"),
    "Discount.Ended": N_("Discount ended"),
    "EmailChange.Requested": N_("Change of e-mail asked for"),
    "EmailChange.Confirmed": N_("Change of e-mail confirmed"),
    "PersonalSettings.ThemeChosen": N_("Style of the pages chosen"),
    "PersonalSettings.FavouritesSet": N_("Favourite pages changed"),
    "CustomerReferralCode.Given": N_("Referral code given"),
    "CustomerGroup.Created": N_("Customer group added"),
    "CustomerGroup.Changed": N_("Customer group changed"),
    "CustomerGroup.Removed": N_("Customer group removed"),
    "Project.Created": N_("Project added"),
    "Project.Changed": N_("Project changed"),
    "Project.Updated": N_("Project's renewal terms changed"),
    "Project.Removed": N_("Project removed"),
    "StaffMember.Registered": N_("Staff member added"),
    "StaffMember.Edited": N_("Staff member's account changed"),
    "StaffMember.Disabled": N_("Staff member disabled"),
    "StaffMember.PasswordChanged": _PASSWORD,
    "StaffMember.ImpersonationStarted": N_("Entered the client's panel"),
    "StaffMember.ImpersonationEnded": N_("Left the client's panel"),
    "StaffMember.TwoFactorEnabled": _TWO_FACTOR_ON,
    "StaffMember.TwoFactorDisabled": _TWO_FACTOR_OFF,
    "StaffMember.TwoFactorReset": _TWO_FACTOR_RESET,
    "StaffMember.RecoveryCodeUsed": _RECOVERY_CODE,
    "StaffPolicy.TwoFactorRequirementChanged": N_("Staff two-factor requirement changed"),
    "AuditExport.Recorded": N_("Audit: history exported"),
    # billing
    "PersonalAccount.Opened": N_("Personal account opened"),
    "PersonalAccount.BuyerChanged": N_("Buyer details of the personal account changed"),
    "PersonalAccount.Credited": N_("Personal account credited"),
    "PersonalAccount.Debited": N_("Personal account debited"),
    "Invoice.Issued": N_("Invoice issued"),
    "Invoice.Paid": N_("Invoice paid"),
    "Invoice.Cancelled": N_("Invoice cancelled"),
    "Invoice.Voided": N_("Invoice voided"),
    "Invoice.DueSoon": N_("Invoice due soon: reminder sent"),
    "Invoice.Overdue": N_("Invoice overdue"),
    "Invoice.RefundRequested": N_("Refund of the invoice asked for"),
    "Invoice.RefundCompleted": N_("Refund of the invoice paid out"),
    "Invoice.Refunded": N_("Invoice refunded"),
    "CreditNote.Issued": N_("Credit note issued"),
    "Refund.Requested": N_("Refund asked for"),
    "Refund.Sent": N_("Refund sent to the payment service"),
    "Refund.Completed": N_("Refund completed"),
    "Refund.Failed": N_("Refund failed"),
    "Payment.Received": N_("Payment received"),
    "UnmatchedPayment.Kept": N_("Payment for no known invoice kept for staff"),
    "Commission.Earned": N_("Affiliate commission earned"),
    "Commission.Credited": N_("Affiliate commission credited"),
    "AffiliateProgram.Created": N_("Affiliate program added"),
    "AffiliateProgram.Changed": N_("Affiliate program changed"),
    "TaxTable.RuleAdded": N_("Tax rule added"),
    "TaxTable.RuleChanged": N_("Tax rule changed"),
    # orders
    "Order.Placed": N_("Order placed"),
    "Order.Paid": N_("Order paid"),
    "Service.Created": N_("Service ordered"),
    "Service.ProvisioningRequested": N_("Setting up the service asked for"),
    "Service.Provisioned": N_("Service set up"),
    "Service.ProvisioningAttemptFailed": N_("Setting up the service failed (tried again later)"),
    "Service.Activated": N_("Service activated"),
    "Service.Suspended": N_("Service suspended"),
    "Service.Unsuspended": N_("Service unsuspended"),
    "Service.Terminated": N_("Service terminated"),
    "Service.Cancelled": N_("Service cancelled"),
    "Service.Renewed": N_("Service renewed"),
    "Service.RenewalInvoiced": N_("Service renewal invoiced"),
    "Product.Created": N_("Product added"),
    "Product.Changed": N_("Product changed"),
    "PromoCode.Created": N_("Promo code added"),
    "PromoCode.Changed": N_("Promo code changed"),
    "PromoCode.Activated": N_("Promo code turned on"),
    "PromoCode.Deactivated": N_("Promo code turned off"),
    "PromoCode.Used": N_("Promo code used"),
    "PromoCode.Released": N_("Promo code use given back"),
    # helpdesk
    "Ticket.Opened": N_("Ticket opened"),
    "Ticket.MessageAdded": N_("Message added to the ticket"),
    "Ticket.NoteAdded": N_("Internal note added"),
    "Ticket.Assigned": N_("Ticket assigned"),
    "Ticket.Changed": N_("Ticket changed"),
    "Ticket.Closed": N_("Ticket closed"),
    "Ticket.Reopened": N_("Ticket reopened"),
    "Ticket.Archived": N_("Ticket archived"),
    "Ticket.Unarchived": N_("Ticket back among the open ones"),
    "Ticket.Merged": N_("Another ticket merged into this one"),
    "Ticket.MergedInto": N_("Ticket merged into another"),
    "Ticket.AbuseActed": N_("Abuse notice deadline passed: acted"),
    "Ticket.SuspensionRequested": N_("Suspension of the customer's services asked for"),
    "Standing.PointsGiven": N_("Penalty points given"),
    "Standing.ThresholdPassed": N_("Penalty points threshold passed"),
    "Broadcast.Created": N_("Message to customers written"),
    "Broadcast.TicketsOpened": N_("Message to customers: tickets opened"),
    "Broadcast.Sent": N_("Message to customers sent"),
    "Department.Created": N_("Department added"),
    "Department.Changed": N_("Department changed"),
    "ReplyTemplate.Created": N_("Reply template added"),
    "ReplyTemplate.Changed": N_("Reply template changed"),
    "ReplyTemplate.Deleted": N_("Reply template removed"),
    "HelpdeskConfig.Changed": N_("Helpdesk settings changed"),
    # mail gateway
    "MailTemplate.Edited": _MAIL_TEMPLATE_EDITED,
    "MailTemplate.Changed": _MAIL_TEMPLATE_EDITED,
    "MailTemplate.Reset": N_("Mail template back to the shipped text"),
    "HeldMailDecision.Decided": N_("Decision on held mail"),
}

# an audit read, by what was read
AUDIT_READS: dict[str, Entry] = {
    "history": N_("Audit: a history read"),
    "state": N_("Audit: a past state read"),
}

# the objects events happen to, by aggregate class
SUBJECTS: dict[str, Entry] = {
    "Customer": N_("Customer"),
    "CustomerUser": N_("User"),
    "Payer": N_("Payer"),
    "Discount": N_("Discount"),
    "EmailChange": N_("E-mail change"),
    "PersonalSettings": N_("Personal settings"),
    "CustomerReferralCode": N_("Referral code"),
    "PersonalData": N_("Personal data"),
    "CustomerGroup": N_("Customer group"),
    "Project": N_("Project"),
    "StaffMember": N_("Staff member"),
    "StaffPolicy": N_("Staff policy"),
    "AuditRead": N_("Audit"),
    "AuditExport": N_("Audit"),
    "PersonalAccount": N_("Personal account"),
    "Invoice": N_("Invoice"),
    "CreditNote": N_("Credit note"),
    "Refund": N_("Refund"),
    "Payment": N_("Payment"),
    "UnmatchedPayment": N_("Unmatched payment"),
    "Commission": N_("Commission"),
    "AffiliateProgram": N_("Affiliate program"),
    "TaxTable": N_("Tax rules"),
    "Order": N_("Order"),
    "Service": N_("Service"),
    "Product": N_("Product"),
    "PromoCode": N_("Promo code"),
    "Ticket": N_("Ticket"),
    "Standing": N_("Penalty points"),
    "Broadcast": N_("Message to customers"),
    "Department": N_("Department"),
    "ReplyTemplate": N_("Reply template"),
    "HelpdeskConfig": N_("Helpdesk settings"),
    "MailTemplate": N_("Mail template"),
    "HeldMailDecision": N_("Held mail"),
}

# the languages of the pages, by code: a field kept per language, a `language` value
LANGUAGES: dict[str, Entry] = {
    "en": N_("English"),
    "ru": N_("Russian"),
    "fr": N_("French"),
}

# a `status` value, by the object's class: the words the pages' lists use for it
STATUSES: dict[str, dict[str, Entry]] = {
    "Invoice": {
        "unpaid": pgettext("invoice status", "Unpaid"),
        "paid": pgettext("invoice status", "Paid"),
        "cancelled": pgettext("invoice status", "Cancelled"),
        "void": pgettext("invoice status", "Void"),
        "refunded": pgettext("invoice status", "Refunded"),
    },
    "Refund": {
        "requested": pgettext("refund status", "Requested"),
        "pending": pgettext("refund status", "Being paid out"),
        "completed": pgettext("refund status", "Completed"),
        "failed": pgettext("refund status", "Failed"),
    },
    "Commission": {
        "pending": pgettext("commission status", "Maturing"),
        "credited": pgettext("commission status", "Credited"),
    },
    "Order": {
        "pending": pgettext("order status", "Awaiting payment"),
        "paid": pgettext("order status", "Paid"),
    },
    "Service": {
        "pending": pgettext("service status", "Awaiting payment"),
        "active": pgettext("service status", "Active"),
        "suspended": pgettext("service status", "Suspended"),
        "terminated": pgettext("service status", "Terminated"),
        "cancelled": pgettext("service status", "Cancelled"),
    },
    "Ticket": {
        "open": pgettext("ticket status", "New"),
        "answered": pgettext("ticket status", "Answered"),
        "customer_reply": pgettext("ticket status", "Answered by the client"),
        "closed": pgettext("ticket status", "Closed"),
    },
    "Broadcast": {
        "sending": pgettext("message", "Sending"),
        "sent": pgettext("message", "Sent"),
    },
}

_THING_NAME = pgettext("of a thing", "Name")
# the common fields, by name; `Aggregate.field` for one that means something of its own there
FIELDS: dict[str, Entry] = {
    "Customer.name": N_("Display name"),
    "Customer.note": N_("Staff note"),
    "Customer.kind": N_("Kind"),
    "Customer.number": N_("Customer number"),
    "Invoice.number": N_("Invoice number"),
    "CreditNote.number": N_("Credit note number"),
    "StaffMember.notify": N_("Notification preferences"),
    "CustomerGroup.name": _THING_NAME,
    "Discount.name": _THING_NAME,
    "Project.name": _THING_NAME,
    "Product.name": _THING_NAME,
    "Service.name": _THING_NAME,
    "Department.name": _THING_NAME,
    "ReplyTemplate.name": _THING_NAME,
    "AffiliateProgram.name": _THING_NAME,
    "name": N_("Name"),
    # a thing's name in each language (`names.fr`, a service's, an add-on's)
    "names": N_("Names"),
    "display_name": N_("Display name"),
    "email": N_("E-mail"),
    "new_email": N_("New e-mail"),
    "previous_email": N_("Previous e-mail"),
    "guest_email": N_("E-mail"),
    "username": N_("Username"),
    "contact_person": N_("Contact person"),
    "company_name": N_("Company name"),
    "country": N_("Country"),
    "language": N_("Language"),
    "currency": N_("Currency"),
    "phone": N_("Phone"),
    "verified_phone": N_("Verified phone"),
    "address": N_("Address"),
    "note": N_("Note"),
    "attitude": N_("Attitude"),
    "referral_source": N_("How they heard of us"),
    "referrer_id": N_("Referred by"),
    "affiliate_program": N_("Affiliate program"),
    "group_ids": N_("Groups"),
    "project_id": N_("Project"),
    "customer_id": N_("Customer"),
    "invoice_id": N_("Invoice"),
    "order_id": N_("Order"),
    "service_id": N_("Service"),
    "ticket_id": N_("Ticket"),
    "product_id": N_("Product"),
    "staff_id": N_("Staff member"),
    "department_id": N_("Department"),
    "department_name": N_("Department"),
    "registered_at": N_("Registered"),
    "registration_ip": N_("Registered from"),
    "deleted": N_("Deleted"),
    # a group, project or user taken away; an e-mail change carried out
    "removed": N_("Removed"),
    "confirmed": N_("Confirmed"),
    "forced": N_("Forced"),
    "role": N_("Role"),
    "active": N_("Active"),
    "notify": N_("Notification preferences"),
    "notification_settings": N_("Notification settings"),
    "settings": N_("Notification settings"),
    "permissions": N_("Permissions"),
    "two_factor": N_("Two-factor authentication"),
    "required": N_("Required"),
    "status": N_("Status"),
    "number": N_("Number"),
    "kind": N_("Kind"),
    "purpose": N_("Purpose"),
    "lines": N_("Lines"),
    "amount": N_("Amount"),
    "total": N_("Total"),
    "subtotal": N_("Subtotal"),
    "tax": N_("Tax"),
    "rate": N_("Rate"),
    "balance_after": N_("Balance after"),
    "refunded": N_("Refunded"),
    "issued_at": N_("Issued"),
    "due_date": N_("Due date"),
    "paid_at": N_("Paid on"),
    "buyer": N_("Buyer"),
    "seller": N_("Seller"),
    "source": N_("How it came"),
    "method": N_("How it came"),
    "reference": N_("Reference"),
    "payments": N_("Payments"),
    "overdue": N_("Overdue"),
    "to": N_("Where the money goes"),
    "items": N_("Items"),
    "placed_at": N_("Placed"),
    "billing_cycle": N_("Billing cycle"),
    "price": N_("Price"),
    "setup_fee": N_("Setup fee"),
    "unit_price": N_("Unit price"),
    "quantity": N_("Quantity"),
    "description": N_("Description"),
    "discount": N_("Discount"),
    "period": N_("Period"),
    "period_start": N_("First day of the period"),
    "period_end": N_("Last day of the period"),
    "next_due_date": N_("Next due date"),
    "addons": N_("Add-ons"),
    "suspended_for": N_("Suspended for"),
    "percent": N_("Percentage"),
    "valid_from": N_("Valid from"),
    "valid_to": N_("Valid until"),
    "code": N_("Code"),
    "expires_at": N_("Expires"),
    "max_uses": N_("Uses at most"),
    "uses": N_("Uses"),
    "subject": N_("Subject"),
    "priority": N_("Priority"),
    "tracking_number": N_("Ticket number"),
    "body": N_("Message"),
    "author_name": N_("Author"),
    "internal": N_("Internal note"),
    "attachments": N_("Attachments"),
    "assignee": N_("Assigned to"),
    "previous_staff_id": N_("Assigned before to"),
    "opened_at": N_("Opened"),
    "points": N_("Points"),
    "theme": N_("Style of the pages"),
    "favourites": N_("Favourite pages"),
    "view": N_("What was read"),
    "object_kind": N_("Kind of object"),
    "object_id": N_("Object"),
    "at": N_("When"),
    "format": N_("Format"),
    "since": N_("Since"),
    "until": N_("Until"),
    "operator": N_("Operator"),
    "recovery_codes": N_("Recovery codes"),
    "remaining": N_("Recovery codes left"),
    "received_at": N_("Received"),
    "updated_at": N_("Last activity"),
    "archived": N_("Archived"),
    "merged_into": N_("Merged into"),
    "reply_address": N_("Reply address"),
    "via": N_("Came in via"),
    "fields": N_("Extra fields"),
    "messages": N_("Messages"),
    "message_id": N_("Message identifier"),
    "author_kind": N_("Written by"),
    "notify_client": N_("Client notified"),
    "notify_staff_ids": N_("Staff notified"),
    "client_visible": N_("Visible to clients"),
    "accept_guests": N_("Takes tickets from guests"),
    "staff_ids": N_("Staff members"),
    "addresses": N_("Addresses"),
    "active_services": N_("Active services"),
    "ended_services": N_("Ended services"),
    "legal_name": N_("Legal name"),
    "entry_id": N_("Entry"),
    "reminded": N_("Reminder sent"),
    "refunds": N_("Refunds"),
    "created_on": N_("Created"),
    "modified_on": N_("Last changed"),
    "version": N_("Version"),
    "id": N_("Identifier"),
    # what is kept per language (a product's `name.fr`, a service's `names.ru`), by its code
    **LANGUAGES,
}

# fields that hold an amount of money in minor units, beside a currency
MONEY_FIELDS = frozenset(
    {
        "amount",
        "total",
        "subtotal",
        "balance_after",
        "balance_amount",
        "refunded",
        "price",
        "setup_fee",
        "unit_price",
    }
)
# how long a value may be on the page (the index keeps up to 1000 characters)
SHOWN_TEXT = 300
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def words(name: str) -> str:
    """A class or attribute name as lower-case words: `EmailCorrected` -> `email
    corrected`, `company_name` -> `company name`."""
    return _CAMEL.sub(" ", name).replace("_", " ").replace(".", " ").strip().lower()


def subject_text(aggregate_type: str, translations) -> str:
    """The object an event happened to, in words: `Personal account`."""
    entry = SUBJECTS.get(aggregate_type)
    return say(entry, translations) if entry else words(aggregate_type).capitalize()


def event_text(item: Mapping, translations) -> str:
    """What happened, in the page's language: the catalogue's sentence for the event's
    `type`, else the object and the event in words ("Customer: email corrected")."""
    type_ = str(item.get("type") or "")
    if type_ == "AuditRead.Recorded":
        view = _after(item, "view")
        return say(AUDIT_READS.get(view, AUDIT_READS["history"]), translations)
    entry = EVENTS.get(type_)
    if entry:
        return say(entry, translations)
    aggregate, _, name = type_.rpartition(".")
    if not aggregate:
        return words(name).capitalize() or "—"
    return f"{subject_text(aggregate, translations)}: {words(name)}"


def _after(item: Mapping, name: str):
    for change in item.get("changes") or []:
        if change.get("field") == name:
            return change.get("after")
    return None


def field_label(name: str, translations, aggregate_type: str | None = None) -> str:
    """A field's name in the page's language: `buyer.email` -> "Buyer · E-mail"; one not
    in the catalogue in words ("Registration ip" for `registration_ip`)."""
    if aggregate_type and f"{aggregate_type}.{name}" in FIELDS:
        return say(FIELDS[f"{aggregate_type}.{name}"], translations)
    if name in FIELDS:
        return say(FIELDS[name], translations)
    top, dot, rest = name.partition(".")
    if dot and rest:
        return (
            f"{field_label(top, translations, aggregate_type)} · {field_label(rest, translations)}"
        )
    return words(name).capitalize() or name


def value_text(
    name: str,
    value: Any,
    language: str,
    translations,
    currency: str | None = None,
    aggregate_type: str | None = None,
) -> str:
    """A field's value as a page shows it: money where `name` holds an amount and the
    currency is known (or the value is `{"amount", "currency"}`), instants and dates as
    the page writes them, yes or no, an object's status in the words its list uses (by
    `aggregate_type`), lists and dicts in a line; text as it is (cut when long). None is
    "—"."""
    leaf = name.rpartition(".")[2]
    if value is None or value == "":
        return "—"
    if name == "status" and isinstance(value, str):
        entry = STATUSES.get(aggregate_type or "", {}).get(value)
        if entry is not None:
            return say(entry, translations)
    if isinstance(value, bool):
        return translations.gettext("Yes") if value else translations.gettext("No")
    if isinstance(value, int) and leaf in MONEY_FIELDS and _is_currency(currency):
        return i18n.money({"amount": value, "currency": currency}, language)
    if isinstance(value, int | float):
        return str(value)  # as it is: a customer number is no quantity
    if isinstance(value, str):
        if leaf == "language" and value in LANGUAGES:
            return say(LANGUAGES[value], translations)
        if _INSTANT.match(value):
            try:
                return i18n.datetime(value.replace("Z", "+00:00"), language)
            except ValueError:
                return _cut(value)
        if _DATE.match(value):
            try:
                return i18n.date(value, language)
            except ValueError:
                return _cut(value)
        return _cut(value)
    if isinstance(value, Mapping):
        if _is_money(value):
            return i18n.money(value, language)
        inner_currency = value.get("currency") if _is_currency(value.get("currency")) else currency

        def inner(k, v) -> str:
            text = value_text(str(k), v, language, translations, inner_currency)
            # a record within a record (an add-on's names) kept apart from its neighbours
            nested = isinstance(v, Mapping) and v and not _is_money(v)
            return f"({text})" if nested else text

        parts = [
            translations.gettext("%(field)s: %(value)s")
            % {"field": field_label(str(k), translations), "value": inner(k, v)}
            for k, v in value.items()
        ]
        return _cut("; ".join(parts)) if parts else "—"
    if isinstance(value, list | tuple):
        if not value:
            return "—"
        return _cut(", ".join(value_text(name, v, language, translations, currency) for v in value))
    return _cut(json.dumps(value, ensure_ascii=False, default=str))


def _is_currency(value) -> bool:
    return isinstance(value, str) and len(value) == 3 and value.isalpha() and value.isupper()


def _is_money(value: Mapping) -> bool:
    return (
        set(value) == {"amount", "currency"}
        and isinstance(value["amount"], int)
        and not isinstance(value["amount"], bool)
        and _is_currency(value["currency"])
    )


def _cut(text: str) -> str:
    return text if len(text) <= SHOWN_TEXT else text[:SHOWN_TEXT] + "…"


def changes_shown(
    item: Mapping, language: str, translations, currency: str | None = None
) -> list[dict]:
    """An event's changes as the page lists them: {"field", "label", "before", "after"}
    (before None: it had no value before, or the value is the event's own). The currency
    of its amounts is the one the event names, else `currency`."""
    changes = list(item.get("changes") or [])
    named = _after(item, "currency")
    if _is_currency(named):
        currency = named
    aggregate = item.get("aggregate", {}).get("type") if isinstance(item, Mapping) else None
    shown = []
    for change in changes:
        name = str(change.get("field"))
        before, after = change.get("before"), change.get("after")
        shown.append(
            {
                "field": name,
                "label": field_label(name, translations, aggregate),
                "before": None
                if before is None
                else value_text(name, before, language, translations, currency, aggregate),
                "after": value_text(name, after, language, translations, currency, aggregate),
            }
        )
    return shown


def state_shown(state: Mapping, aggregate_type: str, language: str, translations) -> list[dict]:
    """An object as it stood (the audit state's `state`) as a definition list: each
    attribute {"field", "label", "value", "records"}, a dict one line per key
    (`buyer.email`), a list of records as "records" (one text each) instead of "value"."""
    currency = state.get("currency") if _is_currency(state.get("currency")) else None
    rows = []
    for key, value in state.items():
        if isinstance(value, Mapping) and value and not _is_money(value):
            inner = value.get("currency") if _is_currency(value.get("currency")) else currency
            for sub, sub_value in value.items():
                name = f"{key}.{sub}"
                rows.append(
                    {
                        "field": name,
                        "label": field_label(name, translations, aggregate_type),
                        "value": value_text(name, sub_value, language, translations, inner),
                        "records": None,
                    }
                )
            continue
        row = {"field": key, "label": field_label(key, translations, aggregate_type)}
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            # a list of records (an invoice's lines, a ticket's messages): one line each
            row["records"] = [value_text(key, v, language, translations, currency) for v in value]
            row["value"] = None
        else:
            row["records"] = None
            row["value"] = value_text(key, value, language, translations, currency, aggregate_type)
        rows.append(row)
    return rows
