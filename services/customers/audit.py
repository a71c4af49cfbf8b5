"""The customers service's audit index, and the record of every audit read.

The index (services/infra/audit.py) needs to know which of this service's aggregates are
customers and staff members, and which are bookkeeping (unique-name and e-mail indexes,
idempotency keys). Who looked at an object's history or past state is recorded here, as
an `AuditRead` of its own (one per read, so no aggregate grows with the reads): its
`staff_id` puts it in the reader's history (kind `staff`).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from contracts import audit as contract
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
    ),
    moments={
        "AuditRead": frozenset({"view", "object_kind", "object_id", "at"}),
        "CustomerUser": frozenset({"recovery_codes", "remaining"}),
        "Customer": frozenset({"recovery_codes", "remaining", "forced"}),
        "StaffMember": frozenset({"recovery_codes", "remaining"}),
    },
    subjects={"StaffMember": "Staff member", "CustomerUser": "Customer's user"},
    summaries={
        "AuditRead.Recorded": _read_summary,
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
)


class CustomersAuditIndex(AuditIndex):
    mapping = MAPPING


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
