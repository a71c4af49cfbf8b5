"""The customers service's audit index, and the record of every audit read.

The index (services/infra/audit.py) needs to know which of this service's aggregates are
customers and staff members, and which are bookkeeping (unique-name and e-mail indexes,
idempotency keys). Who looked at an object's history or past state is recorded here, as
an `AuditRead` of its own (one per read, so no aggregate grows with the reads): its
`staff_id` puts it in the reader's history (kind `staff`). An export of a customer's
history or of a time window (contracts/audit_export.py) is an `AuditExport`, the same
way: by a staff member through the API, or by whoever ran `hostledger audit export`
(the system acting, with the operator's name).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from contracts import audit as contract
from contracts import audit_export
from contracts.errors import Forbidden
from services.infra import clock, context
from services.infra.audit import AuditIndex, AuditMapping, label
from services.infra.domain import Aggregate
from services.infra.rpc import load, rpc


class AuditRead(Aggregate):
    """A staff member read an object's history (`view` "history") or its state at `at`
    (`view` "state")."""

    @event("Recorded")
    def __init__(
        self, staff_id: UUID, view: str, object_kind: str, object_id: UUID, at: datetime | None
    ):
        self.staff_id = staff_id
        self.view = view
        self.object_kind = object_kind
        self.object_id = object_id
        self.at = at


class AuditExport(Aggregate):
    """An export of the audit history (contracts/audit_export.py): one customer's
    (`object_kind` "customer", `object_id`) or a time window's (`since`, `until`), as
    `format`, `via` the API (`staff_id`: who asked) or the command (`operator`: who ran
    it)."""

    @event("Recorded")
    def __init__(
        self,
        staff_id: UUID | None,
        operator: str | None,
        via: str,
        format: str,
        object_kind: str | None,
        object_id: UUID | None,
        since: datetime | None,
        until: datetime | None,
    ):
        self.staff_id = staff_id
        self.operator = operator
        self.via = via
        self.format = format
        self.object_kind = object_kind
        self.object_id = object_id
        self.since = since
        self.until = until


def _export_summary(values: dict) -> str:
    if values.get("object_id"):
        what = f"{label(str(values.get('object_kind') or 'customer'))} history"
    elif values.get("until"):
        what = f"events from {values.get('since')} to {values.get('until')}"
    else:
        what = f"events from {values.get('since')} on"
    how = "by the hostledger command" if values.get("via") == "command" else "through the API"
    return f"Audit: {what} exported ({values.get('format')}, {how})"


def record_export(app, data: dict, staff_id: UUID | None) -> AuditExport:
    """Save the record of an export (`data` as contracts.audit_export.ExportRecord loads
    it); the caller acts as the staff member or as the system running the command."""
    export = AuditExport(
        staff_id=staff_id,
        operator=data["operator"],
        via=data["via"],
        format=data["format"],
        object_kind="customer" if data["customer"] else None,
        object_id=data["customer"],
        since=data["since"],
        until=data["until"],
    )
    app.save(export)
    return export


def _read_summary(values: dict) -> str:
    kind = label(str(values.get("object_kind") or "object"))
    if values.get("view") == "state":
        return f"Audit: {kind} as it stood at {values.get('at')} read"
    return f"Audit: {kind} history read"


MAPPING = AuditMapping(
    kinds={"Customer": "customer", "StaffMember": "staff"},
    internal=frozenset(
        {"LoginName", "CustomerEmail", "DiscountsOf", "PeopleEmail", "ReferralCode"}
        | {"IdempotencyKey"}
        # the ends of sessions told to the gateways (session_ends.py): not a change of
        # anything the history shows (a password change, a disabled member ... is)
        | {"SessionsEnd"}
    ),
    moments={
        "AuditRead": frozenset({"view", "object_kind", "object_id", "at"}),
        "AuditExport": frozenset(
            {"operator", "via", "format", "object_kind", "object_id", "since", "until"}
        ),
        "CustomerUser": frozenset({"recovery_codes", "remaining"}),
        "Customer": frozenset({"recovery_codes", "remaining", "forced"}),
        "StaffMember": frozenset({"recovery_codes", "remaining"}),
    },
    subjects={"StaffMember": "Staff member", "CustomerUser": "Customer's user"},
    summaries={
        "AuditRead.Recorded": _read_summary,
        "AuditExport.Recorded": _export_summary,
        "Customer.Corrected": "Customer {fields} corrected",
        "Customer.NotificationSettingsChanged": "Customer notification settings changed",
        "Customer.ServiceStarted": "Customer's service started",
        "Customer.ServiceEnded": "Customer's service ended",
        "StaffMember.ImpersonationStarted": "Staff member entered the client's panel",
        "StaffMember.ImpersonationEnded": "Staff member left the client's panel",
        "EmailChange.Requested": "E-mail change asked for",
        "EmailChange.Confirmed": "E-mail change confirmed",
        "PersonalSettings.ThemeChosen": "Page style chosen",
        "PersonalSettings.FavouritesSet": "Favourite pages set",
        "CustomerReferralCode.Given": "Referral code given",
        "StaffPolicy.TwoFactorRequirementChanged": "Staff two-factor requirement changed",
    },
    # what its events set without carrying it (services/infra/audit.py: LIFECYCLE)
    effects={
        "TwoFactorAccount.TwoFactorEnabled": {"two_factor": True},
        "TwoFactorAccount.TwoFactorDisabled": {"two_factor": False},
        "TwoFactorAccount.TwoFactorReset": {"two_factor": False},
        "Customer.Registered": {"deleted": False},
        "Customer.Deleted": {"deleted": True},
        "CustomerGroup.Created": {"removed": False},
        "CustomerGroup.Removed": {"removed": True},
        "Project.Removed": {"removed": True},
        "CustomerUser.Added": {"removed": False},
        "CustomerUser.Removed": {"removed": True},
        "StaffMember.Registered": {"active": True},
        "StaffMember.Disabled": {"active": False},
        "EmailChange.Requested": {"confirmed": False},
        "EmailChange.Confirmed": {"confirmed": True},
    },
)


class CustomersAuditIndex(AuditIndex):
    mapping = MAPPING

    def erased_aggregates(self, curs, customer_id, position: int) -> list:
        """Also the bookkeeping entries that hold the customer's addresses (they concern
        no customer in the index): its own in the index of customer e-mails, and its
        users' in the index of people's e-mails (erasure.py)."""
        ids = super().erased_aggregates(curs, customer_id, position)
        curs.execute(
            "SELECT DISTINCT aggregate_id FROM audit_events WHERE aggregate_id = ANY(%s)"
            " AND aggregate_type = 'CustomerUser'",
            (ids,),
        )
        users = [f"%{r['aggregate_id']}%" for r in curs.fetchall()]
        curs.execute(
            "SELECT DISTINCT aggregate_id FROM audit_events WHERE position < %s AND ("
            " (aggregate_type = 'CustomerEmail' AND changes::text LIKE %s)"
            " OR (aggregate_type = 'PeopleEmail' AND changes::text LIKE ANY(%s)))",
            (position, f"%{customer_id}%", users),
        )
        return list(dict.fromkeys([*ids, *(r["aggregate_id"] for r in curs.fetchall())]))


class AuditReadRpcs:
    """Mixed into CustomersService."""

    @rpc
    def record_audit_read(self, payload: dict) -> dict:
        """Record that the staff member calling read an object's history (`view`
        "history") or its state at `at` (`view` "state"): {"view", "kind", "object_id",
        "at"?}. Answers the record's id and time."""
        data = load(contract.AuditRead, payload)
        actor = context.current.actor
        if actor is None or actor.kind != "staff" or not actor.id:
            raise Forbidden("Only staff read the audit history.")
        read = AuditRead(
            staff_id=UUID(actor.id),
            view=data["view"],
            object_kind=data["kind"],
            object_id=data["object_id"],
            at=data["at"] if data["view"] == "state" else None,
        )
        self.app.save(read)
        return {"id": str(read.id), "recorded_at": clock.isoformat(read.created_on)}

    @rpc
    def record_audit_export(self, payload: dict) -> dict:
        """Record that the staff member calling exported a customer's history or a time
        window ({"customer"} or {"since", "until"?}, with "format", "via"): before the
        export is answered. Answers the record's id and time."""
        data = load(audit_export.ExportRecord, payload)
        actor = context.current.actor
        if actor is None or actor.kind != "staff" or not actor.id:
            raise Forbidden("Only staff export the audit history.")
        export = record_export(self.app, dict(data, via="api", operator=None), UUID(actor.id))
        return {"id": str(export.id), "recorded_at": clock.isoformat(export.created_on)}
