"""The mail gateway's audit index: staff's template edits and decisions on held mail
(the decision on a message released into a ticket is in that ticket's history),
services/infra/audit.py."""

from __future__ import annotations

from services.infra.audit import AuditIndex, AuditMapping

MAPPING = AuditMapping(
    internal=frozenset({"IdempotencyKey"}),
    subjects={"MailTemplate": "Mail template", "HeldMailDecision": "Held mail"},
    summaries={
        "MailTemplate.Edited": "Mail template edited",
        "MailTemplate.Changed": "Mail template edited",
        "MailTemplate.Reset": "Mail template back to the shipped text",
        "HeldMailDecision.Decided": lambda v: f"Held mail {v.get('decision') or 'decided'}",
    },
)


class MailGatewayAuditIndex(AuditIndex):
    mapping = MAPPING
