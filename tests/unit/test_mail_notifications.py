"""Notifications out, pure parts: templates in a sandbox, who gets what, ticket threading,
the message's headers, dot-stuffing."""

import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest

from contracts.customers import PasswordChanged
from contracts.helpdesk import ticket_message_of
from services.mailgateway import compose, notifications, templates, ticket_mail
from services.mailgateway.outbox import _dot_stuffed

CUSTOMER = {
    "id": str(uuid.uuid4()),
    "email": "client@example.org",
    "language": "fr",
    "contact_person": "Jeanne",
}


@pytest.mark.parametrize("language", templates.LANGUAGES)
@pytest.mark.parametrize("kind", templates.KINDS)
def test_every_shipped_template_renders_in_every_language(kind, language):
    template = templates.shipped()[kind, language]
    subject, body = templates.render(template, templates.SAMPLE_CONTEXT)
    assert subject and "\n" not in subject and body.strip()
    if kind in templates.TICKET_KINDS:
        assert subject.startswith("[#123456]")
    if kind == "account_credentials":
        assert "sample-password" in body
    else:
        assert "sample-password" not in body + subject


def test_money_is_formatted_in_the_templates_language():
    ctx = dict(templates.SAMPLE_CONTEXT, total=123456)
    bodies = {
        lang: templates.render(templates.shipped()["invoice_issued", lang], ctx)[1]
        for lang in templates.LANGUAGES
    }
    assert "€1,234.56" in bodies["en"]
    assert "1\xa0234,56\xa0€" in bodies["fr"] or "1\u202f234,56\xa0€" in bodies["fr"]
    assert "1\xa0234,56\xa0€" in bodies["ru"]


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ self.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ range(10**9) | list }}",
        "{{ undefined_name }}",
        "{% for %}",
    ],
)
def test_an_edited_template_that_reaches_for_the_server_or_breaks_is_refused(body):
    with pytest.raises(templates.TemplateInvalid) as refused:
        templates.check("invoice_issued", "en", "Subject", body)
    assert refused.value.field == "body"


def test_ticket_subjects_must_keep_the_tracking_number():
    with pytest.raises(templates.TemplateInvalid) as refused:
        templates.check("ticket_reply", "en", "Answer", "{{ message }}")
    assert refused.value.field == "subject"
    assert templates.check("ticket_reply", "en", "[#{{ tracking_number }}] x", "{{ message }}")


def test_a_customer_who_turned_a_kind_off_is_skipped_and_security_mail_is_not():
    off = {"invoice_issued": False}
    n = notifications.for_customer(
        key="k1",
        kind="invoice_issued",
        customer=CUSTOMER,
        settings=off,
        context={},
        domain="d.example",
        company="Co",
    )
    assert (n.status, n.recipient, n.language) == ("skipped", "client@example.org", "fr")
    n = notifications.for_customer(
        key="k2",
        kind="account_credentials",
        customer=CUSTOMER,
        settings={k: False for k in notifications.SETTING_OF if notifications.SETTING_OF[k]},
        context={"username": "j"},
        domain="d.example",
        company="Co",
        secret="pw",
    )
    assert n.status == "pending" and n.secret == "pw" and "pw" not in str(n.context)
    gone = notifications.for_customer(
        key="k3",
        kind="account_credentials",
        customer=None,
        settings=None,
        context={},
        domain="d.example",
        company="Co",
        secret="pw",
    )
    assert gone.status == "skipped" and gone.secret is None


def test_a_password_change_alert_is_sent_while_fresh_and_skipped_when_stale():
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert notifications.stale_alert(at, at + timedelta(hours=1)) is None
    reason = notifications.stale_alert(at, at + notifications.ALERT_MAX_AGE + timedelta(1))
    assert reason
    n = notifications.for_customer(
        key="k4",
        kind="password_changed",
        customer=CUSTOMER,
        settings={k: False for k in notifications.SETTING_OF if notifications.SETTING_OF[k]},
        context={"changed_by": "client"},
        domain="d.example",
        company="Co",
    )
    assert n.status == "pending"  # no setting turns the alert off
    stale = notifications.for_customer(
        key="k5",
        kind="password_changed",
        customer=CUSTOMER,
        settings=None,
        context={},
        domain="d.example",
        company="Co",
        skip_reason=reason,
    )
    assert (stale.status, stale.reason) == ("skipped", reason)


def test_the_password_changed_event_names_who_changed_it_and_nothing_secret():
    customer_id, staff_id = uuid.uuid4(), str(uuid.uuid4())
    state = {
        "customer_id": customer_id,
        "originator_id": customer_id,
        "password_hash": "$argon2id$v=19$secret",
        "timestamp": datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
        "actor": {"kind": "client", "id": str(customer_id)},
        "on_behalf_of": None,
    }
    by_client = PasswordChanged().dump(state)
    assert by_client == {
        "customer_id": str(customer_id),
        "changed_by": "client",
        "staff_id": None,
        "occurred_at": "2026-11-01T12:00:00+00:00",
    }
    acting = dict(state, on_behalf_of={"kind": "staff", "id": staff_id})
    by_staff = PasswordChanged().dump(acting)
    assert (by_staff["changed_by"], by_staff["staff_id"]) == ("staff", staff_id)
    assert PasswordChanged().load(by_staff)["customer_id"] == customer_id


def _payload(**extra):
    p = {
        "ticket_id": str(uuid.uuid4()),
        "tracking_number": "ABC12345",
        "department_id": str(uuid.uuid4()),
        "department_name": "Support",
        "reply_address": "support@provider.example",
        "customer_id": CUSTOMER["id"],
        "guest_email": None,
        "subject": "Down",
        "language": "fr",
        "forbid_replies": False,
        "message_id": str(uuid.uuid4()),
        "body": "Text",
        "author_kind": "client",
        "author_name": "Jeanne",
        "internal": False,
        "notify_staff_ids": [],
        "notify_client": False,
        "mail_message_id": None,
        "via": "mail",
    }
    p.update(extra)
    return p


def test_a_ticket_opened_by_mail_is_acknowledged_in_its_thread():
    p = _payload(mail_message_id="<first@client.example>")
    mails, statements = ticket_mail.for_event(
        ref="helpdesk:1",
        event_type="TicketOpened",
        payload=p,
        client=ticket_mail.client_of(p, CUSTOMER),
        client_prefs={},
        staff=[{"email": "sam@provider.example", "language": "en", "active": True}],
        threads={},
        domain="provider.example",
    )
    ack, staff = mails
    assert (ack.kind, ack.recipient, ack.in_reply_to) == (
        "ticket_opened",
        "client@example.org",
        "<first@client.example>",
    )
    assert ticket_message_of(ack.message_id) == p["message_id"]
    assert ack.message_id != staff.message_id and staff.kind == "staff_ticket"
    assert ack.context["from"] == '"Support" <support@provider.example>'
    assert len(statements) == 3  # the client's mail, the acknowledgement, the staff mail


def test_a_staff_reply_answers_the_latest_message_and_refers_to_the_first():
    p = _payload(author_kind="staff", notify_client=True)
    threads = {
        "client@example.org": ticket_mail.Thread("<first@client.example>", "<hl.latest@p>"),
    }
    (reply,), _ = ticket_mail.for_event(
        ref="helpdesk:2",
        event_type="TicketMessageAdded",
        payload=p,
        client=ticket_mail.client_of(p, CUSTOMER),
        client_prefs={"ticket_reply": True},
        staff=[],
        threads=threads,
        domain="provider.example",
    )
    assert reply.kind == "ticket_reply" and reply.in_reply_to == "<hl.latest@p>"
    assert reply.context["references"] == ["<first@client.example>", "<hl.latest@p>"]


def test_internal_notes_never_reach_the_client_and_guests_get_mail_too():
    p = _payload(internal=True, notify_client=True)
    mails, _ = ticket_mail.for_event(
        ref="helpdesk:3",
        event_type="TicketNoteAdded",
        payload=p,
        client=ticket_mail.client_of(p, CUSTOMER),
        client_prefs={},
        staff=[],
        threads={},
        domain="provider.example",
    )
    assert mails == []
    guest = _payload(customer_id=None, guest_email="guest@else.example", language="ru")
    (ack,), _ = ticket_mail.for_event(
        ref="helpdesk:4",
        event_type="TicketOpened",
        payload=guest,
        client=ticket_mail.client_of(guest, None),
        client_prefs=None,
        staff=[],
        threads={},
        domain="provider.example",
    )
    assert (ack.recipient, ack.language, ack.customer_id) == ("guest@else.example", "ru", None)


def test_the_built_message_carries_our_headers():
    msg = compose.build(
        sender="Support <support@provider.example>",
        recipient="client@example.org",
        subject="[#ABC] Привет",
        body="Текст\n.leading dot\n",
        message_id="<hlm.x@provider.example>",
        in_reply_to="<a@b>",
        references=["<r@b>", "<a@b>"],
    )
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Subject"] == "[#ABC] Привет"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["In-Reply-To"].strip() == "<a@b>"
    assert parsed["References"].split() == ["<r@b>", "<a@b>"]
    assert parsed.get_content().replace("\r\n", "\n") == "Текст\n.leading dot\n"


def test_dot_stuffing_ends_the_data_once():
    assert _dot_stuffed(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert _dot_stuffed(b"no newline") == b"no newline\r\n.\r\n"
