"""Erasure and ticket files, through the running system: the files only the erased
customer's tickets named leave the data directory; a file with the same content that
another customer attached stays and still downloads; a file of the erased customer's
ticket answers a clear 404, never a 500.

On a stack of its own: it counts the files of the stack's whole data directory."""

from __future__ import annotations

import hashlib
import uuid

from tests.erasure_support import listed_department, ok, own_stack

PASSWORD = "attachment erasure password 1"


def _png(tag: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + tag.ljust(64, b"\0")


stack = own_stack("ea")


def _kept(stack) -> set[str]:
    """The files in the data directory (by name: the SHA-256 of their content)."""
    root = stack.logs / "data"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _delete_and_erase(stack, customer_id: str) -> None:
    admin = stack.admin_token
    r = stack.http("DELETE", f"/api/v1/staff/customers/{customer_id}?confirm=true", admin)
    assert r.status_code in (200, 204), r.text
    ok(
        stack.http(
            "POST",
            f"/api/v1/staff/customers/{customer_id}/erase",
            admin,
            json={"reason": "files test"},
        ),
        202,
    )


def _client_ticket(stack, department: dict, customer: dict, files: list) -> dict:
    token = stack.login(customer["username"], PASSWORD)
    return ok(
        stack.http(
            "POST",
            "/api/v1/client/tickets",
            token,
            data={"department_id": department["id"], "subject": "Files", "body": "x"},
            files=[("files", (name, content, "image/png")) for name, content in files],
        ),
        201,
    )


def test_only_the_erased_customers_own_files_leave_the_disk(stack):
    tag = uuid.uuid4().hex[:8]
    admin = stack.admin_token
    own, shared, staff_file = (
        _png(b"own " + tag.encode()),
        _png(b"shared " + tag.encode()),
        _png(b"staff " + tag.encode()),
    )
    own_id, shared_id, staff_id = (hashlib.sha256(c).hexdigest() for c in (own, shared, staff_file))
    department = listed_department(stack, f"Files {tag}")

    erased = stack.register_customer(email=f"erased.{tag}@files.example", password=PASSWORD)
    other = stack.register_customer(email=f"other.{tag}@files.example", password=PASSWORD)
    erased_ticket = _client_ticket(
        stack, department, erased, [("own.png", own), ("shared.png", shared)]
    )
    other_ticket = _client_ticket(stack, department, other, [("same.png", shared)])
    # a staff reply with a file on the erased customer's ticket goes with it
    ok(
        stack.http(
            "POST",
            f"/api/v1/staff/tickets/{erased_ticket['id']}/replies",
            admin,
            data={"body": "see the file"},
            files=[("files", ("staff.png", staff_file, "image/png"))],
        ),
        201,
    )
    assert {own_id, shared_id, staff_id} <= _kept(stack)
    before = _kept(stack)

    def download(ticket_id: str, file_id: str):
        return stack.http("GET", f"/api/v1/staff/tickets/{ticket_id}/attachments/{file_id}", admin)

    assert download(erased_ticket["id"], own_id).content == own

    # erased at once: whether the ticket lists show its tickets yet or not
    _delete_and_erase(stack, erased["id"])
    stack.wait_until(lambda: own_id not in _kept(stack), timeout=60, what="the own file deleted")
    stack.wait_until(lambda: staff_id not in _kept(stack), timeout=30, what="the staff file")
    assert _kept(stack) == before - {own_id, staff_id}
    assert shared_id in _kept(stack)
    with stack.db("helpdesk") as conn:
        [(noted,)] = conn.execute("SELECT count(*) FROM erased_files").fetchall()
    assert noted == 0

    # the other customer's file downloads as before, by staff and by its customer
    r = download(other_ticket["id"], shared_id)
    assert r.status_code == 200 and r.content == shared
    token = stack.login(other["username"], PASSWORD)
    r = stack.http(
        "GET", f"/api/v1/client/tickets/{other_ticket['id']}/attachments/{shared_id}", token
    )
    assert r.status_code == 200 and r.content == shared

    # the erased ticket's files: a clear 404 (the shared one too: not on it any more)
    for file_id in (own_id, shared_id, staff_id):
        r = download(erased_ticket["id"], file_id)
        assert r.status_code == 404, r.text
        error = r.json()["error"]
        assert error["code"] == "not_found" and "erased" in error["message"], error
    # the other customer can attach that content again: it is kept anew
    again = _client_ticket(stack, department, other, [("own-again.png", own)])
    assert own_id in _kept(stack)
    assert download(again["id"], own_id).content == own


def test_a_merged_tickets_files_leave_the_disk_and_content_another_customer_named_stays(stack):
    tag = uuid.uuid4().hex[:8]
    admin = stack.admin_token
    first, merged, shared = (_png(f"{w} {tag}".encode()) for w in ("first", "merged", "both"))
    first_id, merged_id, shared_id = (
        hashlib.sha256(c).hexdigest() for c in (first, merged, shared)
    )
    department = listed_department(stack, f"Merged files {tag}")
    erased = stack.register_customer(email=f"merged.{tag}@files.example", password=PASSWORD)
    other = stack.register_customer(email=f"keeps.{tag}@files.example", password=PASSWORD)
    target = _client_ticket(stack, department, erased, [("first.png", first)])
    source = _client_ticket(stack, department, erased, [("m.png", merged), ("s.png", shared)])
    _client_ticket(stack, department, other, [("same.png", shared)])
    ok(
        stack.http(
            "POST",
            f"/api/v1/staff/tickets/{target['id']}/merge",
            admin,
            json={"ticket_id": source["id"]},
        )
    )
    # the merged messages' files are the target ticket's now
    r = stack.http("GET", f"/api/v1/staff/tickets/{target['id']}/attachments/{merged_id}", admin)
    assert r.status_code == 200 and r.content == merged
    before = _kept(stack)
    assert {first_id, merged_id, shared_id} <= before

    _delete_and_erase(stack, erased["id"])

    stack.wait_until(
        lambda: not ({first_id, merged_id} & _kept(stack)), timeout=60, what="the files deleted"
    )
    assert _kept(stack) == before - {first_id, merged_id}
    with stack.db("helpdesk") as conn:
        [(noted,)] = conn.execute("SELECT count(*) FROM erased_files").fetchall()
        rows = conn.execute(
            "SELECT customer_id::text FROM ticket_files WHERE file_id = ANY(%s)",
            ([first_id, merged_id, shared_id],),
        ).fetchall()
    assert noted == 0
    # once the model projected the erasure, only the other customer's ticket names one
    assert rows == [(other["id"],)]
    r = stack.http("GET", f"/api/v1/staff/tickets/{target['id']}/attachments/{merged_id}", admin)
    assert r.status_code == 404 and "erased" in r.json()["error"]["message"], r.text
