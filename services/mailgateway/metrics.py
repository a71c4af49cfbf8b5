"""The mail gateway's metrics: its outbox (read when Prometheus scrapes) and the mail
the mail-in process takes (counted as it comes)."""

from __future__ import annotations

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from services.infra import clock

MAIL_IN = Counter(
    "hostledger_mail_in_messages_total",
    "Incoming messages by how they came (smtp, imap) and the answer: taken (250),"
    " deferred (451: the MTA or the next poll tries again), refused (5xx).",
    ["via", "result"],
)
IMAP_POLLS = Counter(
    "hostledger_imap_polls_total",
    "Polls of a mailbox by outcome (ok, failed).",
    ["mailbox", "outcome"],
)


def smtp_result(reply: str) -> str:
    """taken, deferred or refused, from an SMTP reply line."""
    code = (reply or "")[:1]
    return {"2": "taken", "4": "deferred"}.get(code, "refused")


def outbox_probe(app):
    """The outbox's depth (notifications waiting to be sent: pending, and sending now)
    and the age of the oldest pending one, in one query on the pending rows' index."""

    def probe():
        with app.datastore.transaction() as curs:
            curs.execute(
                "SELECT count(*) AS n, min(created_at) AS oldest FROM mail_outbox"
                " WHERE status = 'pending'"
            )
            row = curs.fetchone()
        depth = GaugeMetricFamily(
            "hostledger_outbox_depth",
            "Notifications waiting in the mail outbox (status pending).",
            labels=["service"],
        )
        depth.add_metric([app.service], row["n"])
        age = GaugeMetricFamily(
            "hostledger_outbox_oldest_age_seconds",
            "Age of the oldest notification waiting in the outbox (0 when none waits),"
            " on the service's clock.",
            labels=["service"],
        )
        oldest = row["oldest"]
        seconds = max((clock.now() - oldest).total_seconds(), 0.0) if oldest else 0.0
        age.add_metric([app.service], seconds)
        return [depth, age]

    return probe
