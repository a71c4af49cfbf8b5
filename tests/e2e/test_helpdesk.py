"""The helpdesk: departments, tickets, attachments, messages to customers, abuse notices,
mail in."""

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.errors import ValidationFailed
from services.infra.clock import FileClock
from tests.e2e.test_orders import _paid_order, _service

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02" + b"\0" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\0" * 64


def _department(stack, **extra):
    body = {
        "name": f"Support {uuid.uuid4().hex[:6]}",
        "client_visible": True,
        "fields": [{"name": "domain", "label": "Domain", "required": True}],
        "addresses": [f"support-{uuid.uuid4().hex[:6]}@provider.example"],
    }
    body.update(extra)
    r = stack.http("POST", "/api/v1/staff/departments", stack.admin_token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _client(stack, **fields):
    customer = stack.register_customer(**fields)
    creds = customer["credentials"]
    return customer, stack.login(creds["username"], creds["password"])


def _open(stack, token, department, **extra):
    body = {
        "department_id": department["id"],
        "subject": "My site is down",
        "body": "Since this morning.",
        "fields": {"domain": "example.org"},
    }
    body.update(extra)
    r = stack.http("POST", "/api/v1/client/tickets", token, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _two_more_deadline_runs(stack):
    """Until the helpdesk's deadline timer finished two runs more than when this was
    called (a run under way then counts once): one whole run began after it was called."""
    labels = {"job": "run_deadlines", "outcome": "ok"}
    since = stack.metric("helpdesk", "hostledger_scheduler_runs_total", **labels)
    stack.wait_metric("helpdesk", "hostledger_scheduler_runs_total", since + 2, **labels)


def _published(stack, type_, ticket_id):
    return [
        e["payload"]
        for e in stack.published("helpdesk")
        if e["type"] == type_ and e["aggregate_id"] == ticket_id
    ]


def _staff_with_notifications(stack, role="support", wanted=True):
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    r = stack.http(
        "POST",
        "/api/v1/staff/staff",
        stack.admin_token,
        json={
            "username": name,
            "name": "Sam Support",
            "role": role,
            "password": "staff-password-1",
            "email": f"{name}@provider.example",
            "notifications": {"new_ticket": wanted, "ticket_reply": wanted},
        },
    )
    assert r.status_code == 201, r.text
    return r.json(), stack.login(name, "staff-password-1")


def test_the_whole_ticket_story_for_a_client_and_for_staff(stack):
    sam, sam_token = _staff_with_notifications(stack)
    quiet, _ = _staff_with_notifications(stack, wanted=False)
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": "Nobody's", "staff_ids": [str(uuid.uuid4())]},
    )
    assert r.status_code == 400 and "staff_ids" in r.json()["error"]["fields"]
    department = _department(stack, staff_ids=[sam["id"], quiet["id"]])
    customer, token = _client(stack)
    _other, other_token = _client(stack)

    # one incoming address feeds one department
    stack.wait_until(
        lambda: (
            department["id"]
            in [
                d["id"]
                for d in stack.http("GET", "/api/v1/staff/departments", sam_token).json()["items"]
            ]
        ),
        what="the department listed",
    )
    r = stack.http(
        "POST",
        "/api/v1/staff/departments",
        stack.admin_token,
        json={"name": "Copy", "addresses": [department["addresses"][0].upper()]},
    )
    assert r.status_code == 409 and "addresses" in r.json()["error"]["fields"]

    listed = stack.http("GET", "/api/v1/client/departments", token).json()["items"]
    assert any(d["id"] == department["id"] and d["fields"][0]["required"] for d in listed)
    # a required extra field left out: 400 naming it, no ticket
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        token,
        json={"department_id": department["id"], "subject": "s", "body": "b"},
    )
    assert r.status_code == 400 and "domain" in r.json()["error"]["fields"]

    # a department closed to clients is neither listed nor open to them
    hidden = _department(stack, client_visible=False, fields=[])
    assert hidden["id"] not in [d["id"] for d in listed]
    r = stack.http(
        "POST",
        "/api/v1/client/tickets",
        token,
        json={"department_id": hidden["id"], "subject": "s", "body": "b"},
    )
    assert r.status_code == 400 and "department_id" in r.json()["error"]["fields"]

    ticket = _open(stack, token, department)
    assert (ticket["status"], ticket["progress"]) == ("open", "open")
    assert ticket["fields"] == {"domain": "example.org"} and "state" not in ticket
    number = ticket["tracking_number"]
    assert len(number) >= 8 and number != _open(stack, token, department)["tracking_number"]
    [opened] = _published(stack, "TicketOpened", ticket["id"])
    assert opened["tracking_number"] == number and opened["customer_id"] == customer["id"]
    assert opened["notify_staff_ids"] == [sam["id"]]  # only who asked to be told
    assert opened["department_name"] == department["name"] and opened["language"] == "en"

    # staff see it at once by id, and in the department's list
    seen = stack.http("GET", f"/api/v1/staff/tickets/{ticket['id']}", sam_token).json()
    assert seen["messages"][0]["body"] == "Since this morning."
    stack.wait_until(
        lambda: any(
            t["id"] == ticket["id"]
            for t in stack.http(
                "GET",
                "/api/v1/staff/tickets",
                sam_token,
                params={"department_id": department["id"], "status": "open"},
            ).json()["items"]
        ),
        what="department list",
    )

    # an internal note, then an answer
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/replies",
        sam_token,
        json={"body": "Customer is on the old cluster.", "internal": True},
    )
    assert r.status_code == 201, r.text
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/replies",
        sam_token,
        json={"body": "We restarted your server."},
    )
    assert r.status_code == 201 and r.json()["status"] == "answered"
    mine = stack.http("GET", f"/api/v1/client/tickets/{ticket['id']}", token).json()
    assert [m["body"] for m in mine["messages"]] == [
        "Since this morning.",
        "We restarted your server.",
    ]
    assert "old cluster" not in str(mine)
    # nor in any event meant for the client's mail
    for type_ in ("TicketOpened", "TicketMessageAdded"):
        assert "old cluster" not in str(_published(stack, type_, ticket["id"]))
    [note] = _published(stack, "TicketNoteAdded", ticket["id"])
    assert note["internal"] is True and note["notify_client"] is False
    [answer] = _published(stack, "TicketMessageAdded", ticket["id"])
    assert answer["notify_client"] is True and answer["author_kind"] == "staff"

    # the client answers: appended at once, visible to staff at once
    r = stack.http(
        "POST", f"/api/v1/client/tickets/{ticket['id']}/replies", token, json={"body": "Thanks!"}
    )
    assert r.status_code == 201 and r.json()["progress"] == "customer_reply"
    assert r.json()["status"] == "open"
    staff_view = stack.http("GET", f"/api/v1/staff/tickets/{ticket['id']}", sam_token).json()
    assert staff_view["messages"][-1]["body"] == "Thanks!"
    assert (staff_view["status"], staff_view["state"]) == ("customer_reply", "open")
    assert [m["internal"] for m in staff_view["messages"]] == [False, True, False, False]

    # another customer sees nothing of it
    for path in ("", "/replies"):
        method = "POST" if path else "GET"
        r = stack.http(
            method, f"/api/v1/client/tickets/{ticket['id']}{path}", other_token, json={"body": "x"}
        )
        assert r.status_code == 404
    assert stack.http("GET", "/api/v1/client/tickets", other_token).json()["total"] == 0

    # assign, archive, reopen, close
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/assign",
        sam_token,
        json={"staff_id": sam["id"]},
    )
    assert r.status_code == 200 and r.json()["assigned_to"] == sam["id"]
    r = stack.http("POST", f"/api/v1/client/tickets/{ticket['id']}/archive", token)
    assert r.status_code == 200 and r.json()["status"] == "archived"

    def client_list(status):
        return [
            t["id"]
            for t in stack.http(
                "GET", "/api/v1/client/tickets", token, params={"status": status}
            ).json()["items"]
        ]

    stack.wait_until(lambda: ticket["id"] in client_list("archived"), what="archived")
    assert ticket["id"] not in client_list("open")
    r = stack.http("POST", f"/api/v1/client/tickets/{ticket['id']}/reopen", token)
    assert r.status_code == 200 and r.json()["status"] == "open"
    stack.wait_until(lambda: ticket["id"] in client_list("open"), what="reopened")
    r = stack.http(
        "PATCH", f"/api/v1/staff/tickets/{ticket['id']}", sam_token, json={"status": "closed"}
    )
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert _published(stack, "TicketClosed", ticket["id"])
    r = stack.http(
        "POST", f"/api/v1/client/tickets/{ticket['id']}/replies", token, json={"body": "Again"}
    )
    assert r.status_code == 201 and r.json()["progress"] == "customer_reply"
    # the reply went to the assignee only
    replies = _published(stack, "TicketMessageAdded", ticket["id"])
    assert replies[-1]["notify_staff_ids"] == [sam["id"]]
    stack.wait_until(
        lambda: (
            [
                t["status"]
                for t in stack.http(
                    "GET",
                    "/api/v1/staff/tickets",
                    sam_token,
                    params={"assigned_to": sam["id"], "customer_id": customer["id"]},
                ).json()["items"]
            ]
            == ["customer_reply"]
        ),
        what="assigned list",
    )

    # the department's totals, per status, and the same after replaying the whole log
    def totals():
        def total(**params):
            return stack.http(
                "GET",
                "/api/v1/staff/tickets",
                sam_token,
                params=dict(params, department_id=department["id"]),
            ).json()["total"]

        return (
            total(),
            total(status="customer_reply"),
            total(status="open"),
            total(status="closed"),
        )

    stack.wait_until(lambda: totals() == (2, 1, 1, 0), what="the department's totals")
    with stack.rpc() as rpc:
        rpc.helpdesk.rebuild_read_model("helpdesk_lists")
        # the dashboard's counts of every department in one call say the same
        counts = rpc.helpdesk.ticket_counts(["open", "customer_reply", "closed"])
        mine = {c["status"]: c["count"] for c in counts if c["department_id"] == department["id"]}
        assert mine == {"open": 1, "customer_reply": 1}
        for bad in ([], ["lost"], "open"):
            with pytest.raises(ValidationFailed) as refused:
                rpc.helpdesk.ticket_counts(bad)
            assert "statuses" in refused.value.fields
    assert totals() == (2, 1, 1, 0)


def test_a_clients_status_filter_means_the_status_the_list_shows(stack):
    department = _department(stack)
    _customer, token = _client(stack)
    answered = _open(stack, token, department, subject="Answered")
    waiting = _open(stack, token, department, subject="Waiting")
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{answered['id']}/replies",
        stack.admin_token,
        json={"body": "Done."},
    )
    assert r.status_code == 201 and r.json()["status"] == "answered"  # staff: the progress

    def rows(status):
        r = stack.http("GET", "/api/v1/client/tickets", token, params={"status": status})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert all(row["status"] == status for row in items), items
        return {row["id"]: row for row in items}

    def standing(row):
        return (row["status"], row["progress"]) if row else None

    row = stack.wait_until(
        lambda: (row := rows("open").get(answered["id"])) and row["progress"] == "answered" and row,
        what="the answer in the client's open list",
    )
    assert standing(row) == ("open", "answered") and "state" not in row
    assert standing(rows("open")[waiting["id"]]) == ("open", "open")
    mine = stack.http("GET", f"/api/v1/client/tickets/{answered['id']}", token).json()
    assert standing(mine) == ("open", "answered")

    r = stack.http("POST", f"/api/v1/client/tickets/{answered['id']}/archive", token)
    assert r.status_code == 200 and standing(r.json()) == ("archived", "answered")
    row = stack.wait_until(
        lambda: rows("archived").get(answered["id"]), what="the client's archived list"
    )
    assert standing(row) == ("archived", "answered")
    assert answered["id"] not in rows("open") and waiting["id"] not in rows("archived")
    mine = stack.http("GET", f"/api/v1/client/tickets/{answered['id']}", token).json()
    assert standing(mine) == ("archived", "answered")
    everything = stack.http("GET", "/api/v1/client/tickets", token).json()["items"]
    assert sorted(standing(t) for t in everything) == [("archived", "answered"), ("open", "open")]
    # staff keep the progress as status, open or archived as state
    staff_view = stack.http("GET", f"/api/v1/staff/tickets/{answered['id']}", stack.admin_token)
    assert (staff_view.json()["status"], staff_view.json()["state"]) == ("answered", "archived")


def _upload(stack, token, department, files, path="/api/v1/client/tickets"):
    data = {
        "department_id": department["id"],
        "subject": "See the file",
        "body": "Attached.",
        "fields[domain]": "example.org",
    }
    return stack.http("POST", path, token, data=data, files=files)


def test_every_attachment_rule(stack):
    department = _department(stack)
    _customer, token = _client(stack)
    _, other_token = _client(stack)

    r = _upload(
        stack,
        token,
        department,
        [
            ("files", ("screen.png", PNG, "image/png")),
            ("files", ("page.html", b"<script>alert(1)</script>", "text/html")),
        ],
    )
    assert r.status_code == 201, r.text
    ticket = r.json()
    assert ticket["fields"] == {"domain": "example.org"}
    png, html = ticket["messages"][0]["attachments"]
    assert png["filename"] == "screen.png" and png["size"] == len(PNG)
    assert png["content_type"] == "image/png"

    base = f"/api/v1/client/tickets/{ticket['id']}/attachments"
    r = stack.http("GET", f"{base}/{png['id']}", token)
    assert r.status_code == 200 and r.content == PNG
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    r = stack.http("GET", f"{base}/{html['id']}", token)
    assert r.status_code == 200 and r.content == b"<script>alert(1)</script>"
    assert "html" not in r.headers["Content-Type"]  # never rendered inline
    assert r.headers["Content-Disposition"].startswith("attachment;")
    # another customer's attachment: 404, as if it did not exist
    assert stack.http("GET", f"{base}/{png['id']}", other_token).status_code == 404
    r = stack.http(
        "GET", f"/api/v1/staff/tickets/{ticket['id']}/attachments/{png['id']}", stack.admin_token
    )
    assert r.status_code == 200 and r.content == PNG

    # a file on an internal note is staff's only
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{ticket['id']}/replies",
        stack.admin_token,
        data={"body": "Server log", "internal": "true"},
        files=[("files", ("server.txt", b"root password hint", "text/plain"))],
    )
    assert r.status_code == 201, r.text
    [secret] = r.json()["messages"][-1]["attachments"]
    assert stack.http("GET", f"{base}/{secret['id']}", token).status_code == 404
    r = stack.http(
        "GET",
        f"/api/v1/staff/tickets/{ticket['id']}/attachments/{secret['id']}",
        stack.admin_token,
    )
    assert r.status_code == 200 and r.content == b"root password hint"

    # refused by extension, by content, too large: nothing is opened
    before = stack.http("GET", "/api/v1/client/tickets", token).json()["total"]
    r = _upload(
        stack, token, department, [("files", ("tool.exe", EXE, "application/x-msdownload"))]
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_type"
    r = _upload(stack, token, department, [("files", ("cat.png", EXE, "image/png"))])
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_type"
    r = _upload(
        stack, token, department, [("files", ("notes.txt", b"\x7fELF\x02\x01" * 20, "text/plain"))]
    )
    assert r.status_code == 415
    r = stack.http(
        "PATCH",
        "/api/v1/staff/helpdesk-settings",
        stack.admin_token,
        json={"max_file_bytes": 1000, "allowed_extensions": ["txt", "png", "log"]},
    )
    assert r.status_code == 200, r.text
    try:
        r = _upload(stack, token, department, [("files", ("big.txt", b"a" * 1001, "text/plain"))])
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        r = _upload(stack, token, department, [("files", ("page.html", b"<p>hi</p>", "text/html"))])
        assert r.status_code == 415  # html no longer allowed
        r = _upload(stack, token, department, [("files", ("app.log", b"started", "text/plain"))])
        assert r.status_code == 201, r.text
        # per message: two files under the per-file limit but over the per-message one
        stack.http(
            "PATCH",
            "/api/v1/staff/helpdesk-settings",
            stack.admin_token,
            json={"max_message_bytes": 1500},
        )
        r = stack.http(
            "POST",
            f"/api/v1/client/tickets/{ticket['id']}/replies",
            token,
            data={"body": "two files"},
            files=[
                ("files", ("a.txt", b"a" * 900, "text/plain")),
                ("files", ("b.txt", b"b" * 900, "text/plain")),
            ],
        )
        assert r.status_code == 413
    finally:
        stack.http(
            "PATCH",
            "/api/v1/staff/helpdesk-settings",
            stack.admin_token,
            json={
                "max_file_bytes": 5 * 1024 * 1024,
                "max_message_bytes": 10 * 1024 * 1024,
                "allowed_extensions": ["txt", "gif", "html", "htm", "jpg", "jpeg", "png", "bmp"],
            },
        )
    after = stack.http("GET", f"/api/v1/client/tickets/{ticket['id']}", token).json()
    assert len(after["messages"]) == 1  # the refused reply left nothing (the note is hidden)
    assert stack.wait_until(
        lambda: stack.http("GET", "/api/v1/client/tickets", token).json()["total"] == before + 1,
        what="one more ticket (the .log one)",
    )


def test_templates_with_macros_in_the_clients_language_and_merge(stack):
    department = _department(stack, fields=[])
    _customer, token = _client(stack, language="fr", contact_person="Jeanne Client")
    r = stack.http(
        "POST",
        "/api/v1/staff/reply-templates",
        stack.admin_token,
        json={
            "name": "Greeting",
            "bodies": {
                "en": "Hello %client_person%, %admin_name% here.",
                "fr": "Bonjour %client_person%, ici %admin_name%.",
            },
        },
    )
    assert r.status_code == 201, r.text
    template = r.json()
    first = _open(stack, token, department, fields={})
    second = _open(stack, token, department, subject="Another", body="Second problem.")
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{first['id']}/replies",
        stack.admin_token,
        json={"body": "", "template_id": template["id"]},
    )
    assert r.status_code == 201, r.text
    assert r.json()["messages"][-1]["body"] == "Bonjour Jeanne Client, ici Administrator."
    listed = stack.http("GET", "/api/v1/staff/reply-templates", stack.admin_token).json()
    assert template["id"] in [t["id"] for t in listed["items"]]

    # merge: same customer only
    _, other_token = _client(stack)
    foreign = _open(stack, other_token, department, fields={})
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{first['id']}/merge",
        stack.admin_token,
        json={"ticket_id": foreign["id"]},
    )
    assert r.status_code == 409
    r = stack.http(
        "POST",
        f"/api/v1/staff/tickets/{first['id']}/merge",
        stack.admin_token,
        json={"ticket_id": second["id"]},
    )
    assert r.status_code == 200, r.text
    merged = r.json()
    assert "Second problem." in [m["body"] for m in merged["messages"]]
    assert merged["merged_tracking_numbers"] == [second["tracking_number"]]
    gone = stack.http("GET", f"/api/v1/staff/tickets/{second['id']}", stack.admin_token).json()
    assert gone["status"] == "closed" and gone["merged_into"] == first["id"]
    # moved to another department, with a higher priority
    billing_department = _department(stack, fields=[])
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/tickets/{first['id']}",
        stack.admin_token,
        json={"department_id": billing_department["id"], "priority": "high"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["department_name"] == billing_department["name"]
    assert r.json()["priority"] == "high"
    stack.wait_until(
        lambda: (
            [
                t["id"]
                for t in stack.http(
                    "GET",
                    "/api/v1/staff/tickets",
                    stack.admin_token,
                    params={"department_id": billing_department["id"]},
                ).json()["items"]
            ]
            == [first["id"]]
        ),
        what="the ticket in its new department",
    )
    r = stack.http(
        "PATCH",
        f"/api/v1/staff/tickets/{first['id']}",
        stack.admin_token,
        json={"department_id": str(uuid.uuid4())},
    )
    assert r.status_code == 400
    # a reply to the merged ticket lands on the one it was merged into
    r = stack.http(
        "POST", f"/api/v1/client/tickets/{second['id']}/replies", token, json={"body": "Hi"}
    )
    assert r.status_code == 201 and r.json()["id"] == first["id"]


def test_message_to_all_of_one_language_forbid_replies_and_assign_to_me(stack):
    department = _department(stack, fields=[])
    sam, sam_token = _staff_with_notifications(stack)
    fr_customer, fr_token = _client(stack, language="fr", contact_person="Luc Martin")
    en_customer, en_token = _client(stack, language="en")
    # "all" is every customer in the event store: one registered a moment ago too
    r = stack.http(
        "POST",
        "/api/v1/staff/messages",
        sam_token,
        data={
            "all": "true",
            "strict_language": "true",
            "language": "fr",
            "department_id": department["id"],
            "subject": "Maintenance",
            "body": "Bonjour %client_person%, maintenance ce soir. %admin_name%",
            "forbid_replies": "true",
        },
        files=[("files", ("plan.txt", b"22:00-23:00", "text/plain"))],
    )
    assert r.status_code == 201, r.text
    # beyond the inline limit the rest is opened in the background: wait until all are
    done = stack.wait_until(
        lambda: (
            (
                m := stack.http(
                    "GET", f"/api/v1/staff/messages/{r.json()['id']}", stack.admin_token
                ).json()
            )["status"]
            == "sent"
            and m
        ),
        what="the message sent to everyone",
    )
    sent = done["tickets"]
    customers = {t["customer_id"] for t in sent}
    assert fr_customer["id"] in customers and en_customer["id"] not in customers
    [ticket] = stack.wait_until(
        lambda: [
            t
            for t in stack.http("GET", "/api/v1/client/tickets", fr_token).json()["items"]
            if t["subject"] == "Maintenance"
        ],
        what="the client's list",
    )
    ticket = stack.http("GET", f"/api/v1/client/tickets/{ticket['id']}", fr_token).json()
    assert ticket["messages"][0]["body"] == "Bonjour Luc Martin, maintenance ce soir. Sam Support"
    assert ticket["forbid_replies"] is True
    # the file is kept once and shared by every copy
    file_ids = {
        stack.http("GET", f"/api/v1/staff/tickets/{t['ticket_id']}", sam_token).json()["messages"][
            0
        ]["attachments"][0]["id"]
        for t in sent
    }
    assert len(file_ids) == 1
    r = stack.http(
        "POST", f"/api/v1/client/tickets/{ticket['id']}/replies", fr_token, json={"body": "ok"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert stack.http("GET", "/api/v1/client/tickets", en_token).json()["total"] == 0

    # "move the ticket to me when the client answers"; sent twice with one Idempotency-Key
    message = {
        "customer_ids": [en_customer["id"]],
        "department_id": department["id"],
        "subject": "Your invoice",
        "body": "Please check.",
        "assign_to_me": True,
    }
    key = {"Idempotency-Key": uuid.uuid4().hex}
    r = stack.http("POST", "/api/v1/staff/messages", sam_token, json=message, headers=dict(key))
    assert r.status_code == 201, r.text
    [sent] = r.json()["tickets"]
    again = stack.http("POST", "/api/v1/staff/messages", sam_token, json=message, headers=dict(key))
    assert again.status_code == 201 and again.json()["tickets"] == [sent]
    r = stack.http(
        "POST",
        "/api/v1/staff/messages",
        sam_token,
        json=dict(message, body="Something else"),
        headers=dict(key),
    )
    assert r.status_code == 409
    assert sent["customer_id"] == en_customer["id"]
    r = stack.http(
        "POST",
        f"/api/v1/client/tickets/{sent['ticket_id']}/replies",
        en_token,
        json={"body": "Checked."},
    )
    assert r.status_code == 201, r.text
    staff_view = stack.http("GET", f"/api/v1/staff/tickets/{sent['ticket_id']}", sam_token).json()
    assert staff_view["assigned_to"] == sam["id"] and staff_view["status"] == "customer_reply"


def test_abuse_deadline_passing_suspends_the_customers_services(stack):
    department = _department(stack, fields=[])
    silent = _paid_order(stack, "abuse")[1]["customer_id"]
    answering_order = _paid_order(stack, "answers")[1]
    answering = answering_order["customer_id"]
    for customer_id in (silent, answering):
        stack.wait_until(
            lambda c=customer_id: (_service(stack, c) or {}).get("status") == "active",
            what="active",
        )
    deadline = datetime.now(UTC) + timedelta(hours=2)
    r = stack.http(
        "POST",
        "/api/v1/staff/messages",
        stack.admin_token,
        json={
            "customer_ids": [silent, answering],
            "department_id": department["id"],
            "subject": "Abuse report: spam from your server",
            "body": "Stop it.",
            "abuse": {
                "deadline": deadline.isoformat(),
                "action": "suspend_services",
                "penalty_points": 1,
                "comment": "spam",
            },
        },
    )
    assert r.status_code == 201, r.text
    sent = {t["customer_id"]: t for t in r.json()["tickets"]}
    # a notice whose action is to bring the ticket back among the active requests
    quiet = stack.register_customer()
    r = stack.http(
        "POST",
        "/api/v1/staff/messages",
        stack.admin_token,
        json={
            "customer_ids": [quiet["id"]],
            "department_id": department["id"],
            "subject": "Abuse report: open relay",
            "body": "Close it.",
            "abuse": {"deadline": deadline.isoformat(), "action": "move_to_active"},
        },
    )
    assert r.status_code == 201, r.text
    [to_active] = r.json()["tickets"]
    with stack.rpc() as rpc:
        answered = rpc.helpdesk.staff_ticket(sent[answering]["ticket_id"])
    assert answered["abuse"]["state"] == "pending"
    # the answering customer replies before the deadline
    creds = answering_order["credentials"]
    token = stack.login(creds["username"], creds["password"])
    r = stack.http(
        "POST",
        f"/api/v1/client/tickets/{sent[answering]['ticket_id']}/replies",
        token,
        json={"body": "We removed the spammer."},
    )
    assert r.status_code == 201, r.text
    _two_more_deadline_runs(stack)  # a whole run before the deadline does nothing
    assert not _published(stack, "AbuseDeadlinePassed", sent[silent]["ticket_id"])
    assert _service(stack, silent)["status"] == "active"
    try:
        FileClock.set_offset(stack.clock_file, timedelta(hours=3))
        _two_more_deadline_runs(stack)  # a whole run past the deadline
        stack.wait_until(
            lambda: _service(stack, silent)["status"] == "suspended",
            what="services suspended by the abuse deadline",
        )
        assert _service(stack, answering)["status"] == "active"
    finally:
        FileClock.set_offset(stack.clock_file, timedelta(0))
    [passed] = _published(stack, "AbuseDeadlinePassed", sent[silent]["ticket_id"])
    assert passed["action"] == "suspend_services"
    [request] = _published(stack, "ServicesSuspensionRequested", sent[silent]["ticket_id"])
    assert request["customer_id"] == silent
    assert not _published(stack, "AbuseDeadlinePassed", sent[answering]["ticket_id"])
    with stack.rpc() as rpc:
        active = stack.wait_until(
            lambda: (
                (t := rpc.helpdesk.staff_ticket(to_active["ticket_id"]))["abuse"]["state"]
                == "acted"
                and t
            ),
            what="the notice acted on",
        )
    assert active["status"] == "customer_reply"
    assert not _published(stack, "ServicesSuspensionRequested", to_active["ticket_id"])


def test_penalty_points_past_the_threshold_suspend_every_service(stack):
    department = _department(stack, fields=[])
    _, order = _paid_order(stack, "points")
    customer_id = order["customer_id"]
    stack.wait_until(
        lambda: (_service(stack, customer_id) or {}).get("status") == "active", what="active"
    )
    r = stack.http(
        "PATCH",
        "/api/v1/staff/helpdesk-settings",
        stack.admin_token,
        json={"penalty_threshold": 10},
    )
    assert r.status_code == 200 and r.json()["penalty_threshold"] == 10

    def notice(points):
        r = stack.http(
            "POST",
            "/api/v1/staff/messages",
            stack.admin_token,
            json={
                "customer_ids": [customer_id],
                "department_id": department["id"],
                "subject": "Abuse",
                "body": "Phishing page on your site.",
                "abuse": {
                    "deadline": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
                    "action": "move_to_active",
                    "penalty_points": points,
                    "comment": "phishing",
                },
            },
        )
        assert r.status_code == 201, r.text
        return r.json()["tickets"][0]

    try:
        notice(6)
        points = stack.http(
            "GET", f"/api/v1/staff/customers/{customer_id}/penalty-points", stack.admin_token
        ).json()
        assert points == {
            "customer_id": customer_id,
            "penalty_points": 6,
            "threshold_passed": False,
        }
        assert _service(stack, customer_id)["status"] == "active"
        second = notice(5)
        stack.wait_until(
            lambda: _service(stack, customer_id)["status"] == "suspended",
            what="suspended past the threshold",
        )
        [request] = _published(stack, "ServicesSuspensionRequested", second["ticket_id"])
        assert "threshold" in request["reason"]
    finally:
        stack.http(
            "PATCH",
            "/api/v1/staff/helpdesk-settings",
            stack.admin_token,
            json={"penalty_threshold": 100},
        )


def _mail(**fields):
    mail = {
        "message_id": f"<{uuid.uuid4().hex}@client.example>",
        "sender": "stranger@elsewhere.example",
        "recipient": "nobody@provider.example",
        "subject": "Help",
        "body": "Please help.",
    }
    mail.update(fields)
    return mail


def test_mail_opens_appends_dedupes_and_keeps_refused_files_as_notes(stack):
    from contracts.helpdesk import outgoing_message_id

    sam, _ = _staff_with_notifications(stack)
    department = _department(stack, fields=[], staff_ids=[sam["id"]])
    address = department["addresses"][0]
    customer, token = _client(stack)
    with stack.rpc() as rpc:
        first = _mail(
            sender=customer["email"],
            recipient=address.upper(),
            attachments=[
                {"filename": "log.txt", "content": base64.b64encode(b"error 42").decode()},
                {"filename": "virus.png", "content": base64.b64encode(EXE).decode()},
            ],
        )
        opened = rpc.helpdesk.receive_mail(first)
        assert opened["outcome"] == "opened", opened
        again = rpc.helpdesk.receive_mail(first)
        assert again == dict(opened, outcome="duplicate")
        ticket = rpc.helpdesk.staff_ticket(opened["ticket_id"])
        assert ticket["customer_id"] == customer["id"] and ticket["via"] == "mail"
        [kept] = ticket["messages"][0]["attachments"]
        assert kept["filename"] == "log.txt"
        assert "virus.png" in ticket["messages"][1]["body"] and ticket["messages"][1]["internal"]

        # an answer to our notification mail (In-Reply-To: our Message-ID) is appended
        ours = outgoing_message_id(ticket["messages"][0]["id"], "client", "provider.example")
        stack.wait_until(
            lambda: rpc.helpdesk.staff_tickets({"customer_id": customer["id"]})["total"] == 1,
            what="the ticket's messages indexed",
        )
        reply = rpc.helpdesk.receive_mail(
            _mail(sender=customer["email"], recipient=address, in_reply_to=[ours], body="More.")
        )
        assert reply["outcome"] == "appended" and reply["ticket_id"] == opened["ticket_id"]
        # a From header alone is no staff answer: staff's unverified mail is a note
        noted = rpc.helpdesk.receive_mail(
            _mail(sender=sam["email"], recipient=address, in_reply_to=[ours], body="Forged?")
        )
        assert noted["outcome"] == "noted" and noted["ticket_id"] == opened["ticket_id"]
        last = rpc.helpdesk.staff_ticket(opened["ticket_id"])["messages"][-1]
        assert last["internal"] and last["author_kind"] != "staff" and "Forged?" in last["body"]
        # the department's staff answer by mail too when our mail server verified the
        # sender: a staff answer, which the client sees
        answered = rpc.helpdesk.receive_mail(
            _mail(
                sender=sam["email"].upper(),
                recipient=address,
                in_reply_to=[ours],
                body="Done.",
                sender_verified=True,
            )
        )
        assert answered["outcome"] == "appended"
        by_mail = rpc.helpdesk.staff_ticket(opened["ticket_id"])
        assert by_mail["status"] == "answered"
        assert by_mail["messages"][-1]["author_kind"] == "staff"
        # the tracking number in the subject, from a stranger: a new (guest) ticket instead
        stranger = rpc.helpdesk.receive_mail(
            _mail(recipient=address, subject=f"Re: [#{opened['tracking_number']}] Help")
        )
        assert stranger["outcome"] == "opened" and stranger["ticket_id"] != opened["ticket_id"]
        guest = rpc.helpdesk.staff_ticket(stranger["ticket_id"])
        assert guest["customer_id"] is None and guest["guest_email"] == "stranger@elsewhere.example"
        # the guest's own follow-up, by the tracking number, is appended to the guest ticket
        follow = rpc.helpdesk.receive_mail(
            _mail(recipient=address, subject=f"Re: [#{stranger['tracking_number']}] Help")
        )
        assert follow["outcome"] == "appended" and follow["ticket_id"] == stranger["ticket_id"]
        # mail from one of the customer's users is the customer's
        user_email = f"user-{uuid.uuid4().hex[:6]}@client.example"
        r = stack.http(
            "POST",
            "/api/v1/client/users",
            token,
            json={
                "username": f"u-{uuid.uuid4().hex[:6]}",
                "email": user_email,
                "name": "Una User",
                "permissions": ["support"],
            },
        )
        assert r.status_code == 201, r.text
        stack.wait_until(
            lambda: rpc.customers.people_with_email(user_email.upper())["customer"],
            what="the user found by e-mail",
        )
        by_user = rpc.helpdesk.receive_mail(_mail(sender=user_email, recipient=address))
        assert by_user["outcome"] == "opened"
        user_ticket = rpc.helpdesk.staff_ticket(by_user["ticket_id"])
        assert user_ticket["customer_id"] == customer["id"]
        assert user_ticket["messages"][0]["author_name"] == "Una User"
        # no department takes this address
        refused = rpc.helpdesk.receive_mail(_mail(recipient="unknown@provider.example"))
        assert refused["outcome"] == "refused"
        # a department that takes no mail from unknown senders
        closed = _department(stack, fields=[], accept_guests=False)
        refused = rpc.helpdesk.receive_mail(_mail(recipient=closed["addresses"][0]))
        assert refused["outcome"] == "refused"
        assert (
            rpc.helpdesk.receive_mail(
                _mail(sender=customer["email"], recipient=closed["addresses"][0])
            )["outcome"]
            == "opened"
        )
        # a bounce of our mail about the ticket becomes an internal note on it
        bounce = rpc.helpdesk.receive_mail(
            _mail(sender="mailer-daemon@provider.example", recipient=address, bounce_of=ours)
        )
        assert bounce["outcome"] == "bounce_noted" and bounce["ticket_id"] == opened["ticket_id"]
        assert rpc.helpdesk.staff_ticket(opened["ticket_id"])["messages"][-1]["internal"]
    mine = stack.http("GET", f"/api/v1/client/tickets/{opened['ticket_id']}", token).json()
    assert [m["body"] for m in mine["messages"]] == ["Please help.", "More.", "Done."]
    assert all("virus" not in m["body"] for m in mine["messages"])


def test_an_address_feeds_one_department_even_when_claimed_at_once(stack):
    from concurrent.futures import ThreadPoolExecutor

    address = f"sales-{uuid.uuid4().hex[:6]}@provider.example"

    def create(n):
        return stack.http(
            "POST",
            "/api/v1/staff/departments",
            stack.admin_token,
            json={"name": f"Sales {n}", "addresses": [address]},
        )

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(create, range(6)))
    assert sorted(r.status_code for r in answers) == [201] + [409] * 5
    [owner] = [r.json() for r in answers if r.status_code == 201]
    # mail is routed by the address at once, without waiting for any list
    with stack.rpc() as rpc:
        opened = rpc.helpdesk.receive_mail(_mail(recipient=address.upper()))
        assert opened["outcome"] == "opened"
        assert rpc.helpdesk.staff_ticket(opened["ticket_id"])["department_id"] == owner["id"]
        # given up, the address can feed another department
        r = stack.http(
            "PATCH",
            f"/api/v1/staff/departments/{owner['id']}",
            stack.admin_token,
            json={"addresses": []},
        )
        assert r.status_code == 200, r.text
        other = _department(stack, addresses=[address])
        again = rpc.helpdesk.receive_mail(_mail(recipient=address))
        assert rpc.helpdesk.staff_ticket(again["ticket_id"])["department_id"] == other["id"]


def _message_to(stack, token, customers, department, **extra):
    body = {
        "customer_ids": [c["id"] for c in customers],
        "department_id": department["id"],
        "subject": f"Migration {uuid.uuid4().hex[:6]}",
        "body": "Dear %client_person%, your server moves tonight.",
    }
    body.update(extra)
    return body, stack.http("POST", "/api/v1/staff/messages", token, json=body)


def _listed_message(stack, token, message_id):
    r = stack.http("GET", "/api/v1/staff/messages", token, params={"page_size": 200})
    assert r.status_code == 200, r.text
    return next((m for m in r.json()["items"] if m["id"] == message_id), None)


def _one_ticket_each(stack, token, message, customers, subject):
    """Every customer has exactly the ticket the message recorded for them. Checked once the
    list shows the message sent: the lists follow the log in order, so every ticket opened
    before the message was marked sent is listed by then."""
    stack.wait_until(
        lambda: (_listed_message(stack, token, message["id"]) or {}).get("status") == "sent",
        what="the message listed as sent",
    )
    recorded = {t["customer_id"]: t["ticket_id"] for t in message["tickets"]}
    assert set(recorded) == {c["id"] for c in customers}
    for customer in customers:
        items = stack.http(
            "GET",
            "/api/v1/staff/tickets",
            token,
            params={"customer_id": customer["id"], "page_size": 200},
        ).json()["items"]
        mine = [t["id"] for t in items if t["subject"] == subject]
        assert mine == [recorded[customer["id"]]], (customer["id"], mine)


def test_a_message_to_more_customers_than_the_inline_limit_completes_in_the_background(stack):
    department = _department(stack, fields=[])
    _, sam_token = _staff_with_notifications(stack)
    _, billing_token = stack.staff_member("billing")
    stack.start("helpdesk", instance="2")  # two background senders: still one ticket each
    try:
        customers = [stack.register_customer(contact_person=f"Person {i}") for i in range(7)]
        _send_in_the_background(stack, department, sam_token, billing_token, customers)
    finally:
        stack.stop("helpdesk-2")


def _send_in_the_background(stack, department, sam_token, billing_token, customers):
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {
        "customer_ids": [c["id"] for c in customers],
        "department_id": department["id"],
        "subject": f"Migration {uuid.uuid4().hex[:6]}",
        "body": "Dear %client_person%, your server moves tonight.",
    }
    r = stack.http("POST", "/api/v1/staff/messages", sam_token, json=body, headers=dict(key))
    assert r.status_code == 201, r.text
    started = r.json()
    # the test stack opens at most 3 tickets inside the request (HOSTLEDGER_BROADCAST_INLINE)
    assert started["status"] == "sending" and started["count"] == 7
    assert [t["customer_id"] for t in started["tickets"]] == [c["id"] for c in customers[:3]]
    path = f"/api/v1/staff/messages/{started['id']}"
    sent = stack.wait_until(
        lambda: (m := stack.http("GET", path, sam_token).json())["status"] == "sent" and m,
        what="the message sent",
    )
    assert sent["count"] == 7 and sent["opened"] == 7 and len(sent["tickets"]) == 7
    assert sent["tickets"][:3] == started["tickets"]
    assert len({t["ticket_id"] for t in sent["tickets"]}) == 7
    _one_ticket_each(stack, sam_token, sent, customers, body["subject"])
    # macros filled in per customer by the background sender too
    last = sent["tickets"][-1]
    ticket = stack.http("GET", f"/api/v1/staff/tickets/{last['ticket_id']}", sam_token).json()
    assert ticket["messages"][0]["body"] == "Dear Person 6, your server moves tonight."
    assert ticket["messages"][0]["author_name"] == "Sam Support"
    # the same key and body: the same message; another body: 409
    again = stack.http("POST", "/api/v1/staff/messages", sam_token, json=body, headers=dict(key))
    assert again.status_code == 201 and again.json()["id"] == started["id"]
    assert again.json() == started  # the first answer again (API.md); GET shows it now
    other = dict(body, body="Something else")
    r = stack.http("POST", "/api/v1/staff/messages", sam_token, json=other, headers=dict(key))
    assert r.status_code == 409
    listed = _listed_message(stack, sam_token, started["id"])
    assert listed["count"] == 7 and listed["opened"] == 7 and listed["subject"] == body["subject"]
    # the same roles as sending
    assert stack.http("GET", path, billing_token).status_code == 403
    assert stack.http("GET", "/api/v1/staff/messages", billing_token).status_code == 403
    assert stack.http("GET", f"/api/v1/staff/messages/{uuid.uuid4()}", sam_token).status_code == 404
    # bad input records nothing
    before = stack.http("GET", "/api/v1/staff/messages", sam_token).json()["total"]
    _, r = _message_to(stack, sam_token, [*customers, {"id": str(uuid.uuid4())}], department)
    assert r.status_code == 400 and "customer_ids" in r.json()["error"]["fields"]
    stack.wait_projected("helpdesk")  # a recorded message would show now
    assert stack.http("GET", "/api/v1/staff/messages", sam_token).json()["total"] == before


def test_a_message_sending_in_the_background_survives_a_helpdesk_crash(stack):
    department = _department(stack, fields=[])
    customers = [stack.register_customer() for _ in range(8)]
    # nothing else is sending, so the first background batch is this message's
    stack.wait_until(
        lambda: all(
            m["status"] == "sent"
            for m in stack.http(
                "GET", "/api/v1/staff/messages", stack.admin_token, params={"page_size": 200}
            ).json()["items"]
        ),
        timeout=120,
        what="earlier messages sent",
    )
    # this helpdesk dies after opening its first background batch, before recording it
    stack.restart("helpdesk", {"HOSTLEDGER_FAILPOINTS": "helpdesk.broadcast.before_record"})
    try:
        stack.wait_for_service("helpdesk")
        body, r = _message_to(stack, stack.admin_token, customers, department)
        assert r.status_code == 201, r.text
        started = r.json()
        assert started["status"] == "sending" and len(started["tickets"]) == 3
        stack.wait_until(
            lambda: stack.procs["helpdesk"].poll() is not None, what="the helpdesk crashed"
        )
    finally:
        stack.restart("helpdesk")
        stack.wait_for_service("helpdesk")
    path = f"/api/v1/staff/messages/{started['id']}"
    sent = stack.wait_until(
        lambda: (m := stack.http("GET", path, stack.admin_token).json())["status"] == "sent" and m,
        timeout=120,
        what="the message sent after the restart",
    )
    assert sent["count"] == 8 and sent["opened"] == 8
    _one_ticket_each(stack, stack.admin_token, sent, customers, body["subject"])

    # the tickets opened before the crash were recorded, not opened a second time
    def opened():
        return [
            e
            for e in stack.published("helpdesk")
            if e["type"] == "TicketOpened" and e["payload"]["subject"] == body["subject"]
        ]

    stack.wait_until(lambda: len(opened()) >= 8, what="the tickets published")
    assert len(opened()) == 8
