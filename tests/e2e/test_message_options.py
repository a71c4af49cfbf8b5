"""Messages to customers, point by point: recipients by group, project or the customer
list's filters; the text in each customer's language (English the fallback) and a reply
template to start from; forbid replies (a mail that invites none; never with a violation
notice); a violation notice mailed whatever the client's settings; and when its deadline
passes, the action taken, an internal note saying so, and a mail to the staff member
who answers for it."""

import uuid
from datetime import UTC, datetime, timedelta

from services.infra.clock import FileClock
from tests.e2e.test_access import mail_settled
from tests.e2e.test_helpdesk import _department, _staff_with_notifications
from tests.e2e.test_mail_out import sent_to, wait_mail
from tests.e2e.test_orders import _paid_order, _service


def _send(stack, token, **body):
    return stack.http("POST", "/api/v1/staff/messages", token, json=body)


def _ticket_of(stack, message, customer_id):
    [ticket] = [t for t in message["tickets"] if t["customer_id"] == customer_id]
    r = stack.http("GET", f"/api/v1/staff/tickets/{ticket['ticket_id']}", stack.admin_token)
    assert r.status_code == 200, r.text
    return r.json()


def _client_token(stack, customer):
    creds = customer["credentials"]
    return stack.login(creds["username"], creds["password"])


def test_recipients_by_group_project_and_the_customer_lists_filters(stack):
    tag = uuid.uuid4().hex[:8]
    department = _department(stack, fields=[])
    project_id = stack.http(
        "POST",
        "/api/v1/staff/projects",
        stack.admin_token,
        json={"name": f"Brand {tag}", "sender_email": "billing@brand.example"},
    ).json()["id"]
    group_id = stack.http(
        "POST", "/api/v1/staff/customer-groups", stack.admin_token, json={"name": f"G {tag}"}
    ).json()["id"]
    in_project = stack.register_customer(contact_person=f"Pia {tag}", project_id=project_id)
    in_group = stack.register_customer(contact_person=f"Gus {tag}", language="ru")
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/customers/{in_group['id']}",
        stack.admin_token,
        json={"group_ids": [group_id]},
    )
    assert r.status_code == 200, r.text
    stack.wait_until(
        lambda: (
            stack.http(
                "GET", "/api/v1/staff/customers", stack.admin_token, params={"name": tag}
            ).json()["total"]
            == 2
            and stack.http(
                "GET", "/api/v1/staff/customers", stack.admin_token, params={"group_id": group_id}
            ).json()["total"]
            == 1
        ),
        what="the customer list",
    )
    common = {"department_id": department["id"], "subject": "Hello", "body": "News."}

    def recipients(**choice):
        r = _send(stack, stack.admin_token, **common, **choice)
        assert r.status_code == 201, r.text
        return {t["customer_id"] for t in r.json()["tickets"]}

    assert recipients(group_id=group_id) == {in_group["id"]}
    assert recipients(project_id=project_id) == {in_project["id"]}
    assert recipients(filter={"name": tag}) == {in_project["id"], in_group["id"]}
    # the same filter, only the customers whose language is Russian
    assert recipients(filter={"name": tag}, strict_language=True, language="ru") == {in_group["id"]}
    # one way to name them, and not an empty one
    r = _send(stack, stack.admin_token, **common, group_id=group_id, all=True)
    assert r.status_code == 400
    assert set(r.json()["error"]["fields"]) == {"group_id", "all"}
    r = _send(stack, stack.admin_token, **common, filter={})
    assert r.status_code == 400 and "customer_ids" in r.json()["error"]["fields"]
    r = _send(stack, stack.admin_token, **common, filter={"group_id": "not-an-id"})
    assert r.status_code == 400


def test_each_customer_reads_its_own_language_and_a_template_starts_the_text(stack):
    department = _department(stack, fields=[])
    _, sam_token = _staff_with_notifications(stack)
    russian = stack.register_customer(language="ru", contact_person="Иван Петров")
    french = stack.register_customer(language="fr", contact_person="Luc Martin")
    english = stack.register_customer(language="en", contact_person="Ann Lee")
    r = stack.http(
        "POST",
        "/api/v1/staff/reply-templates",
        stack.admin_token,
        json={
            "name": f"Greeting {uuid.uuid4().hex[:6]}",
            "bodies": {"en": "Dear %client_person%,", "ru": "Здравствуйте, %client_person%!"},
        },
    )
    assert r.status_code == 201, r.text
    template = r.json()
    r = _send(
        stack,
        sam_token,
        customer_ids=[russian["id"], french["id"], english["id"]],
        department_id=department["id"],
        subject="Maintenance",
        body="Tonight. %admin_name%",
        translations={
            "ru": {"subject": "Работы", "body": "Сегодня ночью. %admin_name%"},
            "fr": {"subject": "Maintenance ce soir", "body": "Ce soir. %admin_name%"},
        },
        template_id=template["id"],
    )
    assert r.status_code == 201, r.text
    message = r.json()
    assert message["languages"] == ["en", "fr", "ru"]
    seen = {c["id"]: _ticket_of(stack, message, c["id"]) for c in (russian, french, english)}
    assert seen[russian["id"]]["subject"] == "Работы"
    assert seen[russian["id"]]["messages"][0]["body"] == (
        "Здравствуйте, Иван Петров!\n\nСегодня ночью. Sam Support"
    )
    # French has no template text: English's starts it
    assert seen[french["id"]]["subject"] == "Maintenance ce soir"
    assert seen[french["id"]]["messages"][0]["body"] == "Dear Luc Martin,\n\nCe soir. Sam Support"
    assert seen[english["id"]]["messages"][0]["body"] == "Dear Ann Lee,\n\nTonight. Sam Support"
    # with a template the body may be empty; without one it may not
    r = _send(
        stack,
        sam_token,
        customer_ids=[english["id"]],
        department_id=department["id"],
        subject="Hi",
        body="",
        template_id=template["id"],
    )
    assert r.status_code == 201, r.text
    assert _ticket_of(stack, r.json(), english["id"])["messages"][0]["body"] == "Dear Ann Lee,"
    r = _send(
        stack,
        sam_token,
        customer_ids=[english["id"]],
        department_id=department["id"],
        subject="Hi",
        body=" ",
    )
    assert r.status_code == 400 and "body" in r.json()["error"]["fields"]
    r = _send(
        stack,
        sam_token,
        customer_ids=[english["id"]],
        department_id=department["id"],
        subject="Hi",
        body="x",
        template_id=str(uuid.uuid4()),
    )
    assert r.status_code == 400 and "template_id" in r.json()["error"]["fields"]


def test_forbid_replies_mail_invites_no_answer_and_never_goes_with_a_violation(stack):
    department = _department(stack, fields=[])
    customer = stack.register_customer(language="en")
    r = _send(
        stack,
        stack.admin_token,
        customer_ids=[customer["id"]],
        department_id=department["id"],
        subject="Planned works",
        body="Nothing to do on your side.",
        forbid_replies=True,
    )
    assert r.status_code == 201, r.text
    [mail] = wait_mail(stack, customer["email"])
    text = mail.get_content()
    assert "Nothing to do on your side." in text
    assert "needs no answer" in text and "Reply to this message" not in text

    r = _send(
        stack,
        stack.admin_token,
        customer_ids=[customer["id"]],
        department_id=department["id"],
        subject="Abuse",
        body="Spam.",
        forbid_replies=True,
        abuse={
            "deadline": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "action": "move_to_active",
        },
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert set(error["fields"]) == {"forbid_replies", "abuse"}
    assert "forbid_replies" in error["message"] and "abuse" in error["message"]


def test_a_violation_notice_is_mailed_whatever_the_clients_settings(stack):
    department = _department(stack, fields=[])
    customer = stack.register_customer(language="fr")
    token = _client_token(stack, customer)
    r = stack.http(
        "PUT", "/api/v1/client/notification-settings", token, json={"ticket_reply": False}
    )
    assert r.status_code == 200, r.text
    deadline = datetime(2030, 5, 1, 18, 30, tzinfo=UTC)
    common = {"customer_ids": [customer["id"]], "department_id": department["id"]}
    r = _send(stack, stack.admin_token, **common, subject="Info", body="An ordinary message.")
    assert r.status_code == 201, r.text
    r = _send(
        stack,
        stack.admin_token,
        **common,
        subject="Avis d'infraction",
        body="Des courriels indésirables partent de votre serveur.",
        abuse={"deadline": deadline.isoformat(), "action": "suspend_services"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["abuse"]["action"] == "suspend_services"
    [mail] = wait_mail(stack, customer["email"])
    assert "Avis d'infraction" in mail["Subject"]
    text = mail.get_content()
    assert "avis d'infraction" in text and "2030-05-01 18:30 UTC" in text
    # the ordinary message stays unsent: the client turned it off. The mail gateway takes
    # the helpdesk's events in order, so the ordinary ticket's was taken before the
    # notice's; a mail it queued would be sent by the time none waits
    stack.wait_until(lambda: mail_settled(stack, customer["id"]), what="no mail waiting")
    assert len(sent_to(stack, customer["email"])) == 1


def test_a_passed_deadline_acts_notes_it_on_the_ticket_and_tells_the_sender(stack):
    department = _department(stack, fields=[])
    sender, sender_token = _staff_with_notifications(stack, wanted=False)
    customer_id = _paid_order(stack, "violation")[1]["customer_id"]
    stack.wait_until(
        lambda: (_service(stack, customer_id) or {}).get("status") == "active", what="active"
    )
    r = _send(
        stack,
        sender_token,
        customer_ids=[customer_id],
        department_id=department["id"],
        subject="Phishing page",
        body="Remove it.",
        assign_to_me=True,
        abuse={
            "deadline": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
            "action": "suspend_services",
            "penalty_points": 2,
            "comment": "reported by a bank",
        },
    )
    assert r.status_code == 201, r.text
    [ticket] = r.json()["tickets"]
    try:
        FileClock.set_offset(stack.clock_file, timedelta(hours=1))
        stack.wait_until(
            lambda: _service(stack, customer_id)["status"] == "suspended",
            what="services suspended at the deadline",
        )
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    seen = stack.http("GET", f"/api/v1/staff/tickets/{ticket['ticket_id']}", sender_token).json()
    assert seen["abuse"]["state"] == "acted"
    [note] = [m for m in seen["messages"] if m["internal"]]
    assert "passed without an answer" in note["body"] and "suspended" in note["body"]
    # the staff member who sent it hears of it, though they asked for no ticket mail
    [mail] = wait_mail(stack, sender["email"])
    assert seen["tracking_number"] in mail["Subject"]
    assert "passed without an answer" in mail.get_content()


def test_a_messages_files_go_out_with_each_customers_mail(stack):
    department = _department(stack, fields=[])
    first, second = stack.register_customer(), stack.register_customer(language="ru")
    r = stack.http(
        "POST",
        "/api/v1/staff/messages",
        stack.admin_token,
        data={
            "customer_ids": [first["id"], second["id"]],
            "department_id": department["id"],
            "subject": "New price list",
            "body": "See the file.",
        },
        files=[("files", ("prices.txt", b"Hosting: 5 EUR", "text/plain"))],
    )
    assert r.status_code == 201, r.text
    for customer in (first, second):
        [mail] = wait_mail(stack, customer["email"])
        assert "See the file." in mail.get_body(("plain",)).get_content()
        [attached] = list(mail.iter_attachments())
        assert attached.get_filename() == "prices.txt"
        assert attached.get_content_type() == "text/plain"
        assert attached.get_content().strip() == "Hosting: 5 EUR"


def test_a_message_naming_an_unknown_customer_is_refused_naming_it(stack):
    known = [stack.register_customer() for _ in range(3)]
    unknown = str(uuid.uuid4())
    department = _department(stack)
    subject = f"Named {uuid.uuid4().hex[:6]}"
    r = _send(
        stack,
        stack.admin_token,
        customer_ids=[c["id"] for c in known[:2]] + [unknown, known[2]["id"]],
        department_id=department["id"],
        subject=subject,
        body="Dear %client_person%, nothing to see.",
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["fields"] == {"customer_ids": [f"{unknown}: unknown."]}
    listed = stack.http("GET", "/api/v1/staff/messages", stack.admin_token).json()["items"]
    assert subject not in [m["subject"] for m in listed]  # nothing recorded
