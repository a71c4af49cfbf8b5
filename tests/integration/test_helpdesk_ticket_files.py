"""Which tickets name which file (`ticket_files`), and the erased customer's files it
finds: a ticket no list shows yet, a merged ticket's messages, content another customer or
a guest attached too. The helpdesk application on databases of the test's own, its read
models held back unless a test brings them up."""

from __future__ import annotations

import uuid

import pytest

from services.helpdesk.attachments import LocalFileStore
from services.helpdesk.erased_files import TicketFiles
from services.helpdesk.readmodels import HelpdeskLists
from services.infra.readmodels import Follower


def _png(tag: str) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + tag.encode().ljust(64, b"\0")


@pytest.fixture
def helpdesk(cfg, tmp_path):
    from services.helpdesk.application import Helpdesk

    app = Helpdesk(cfg=cfg, files=LocalFileStore(tmp_path / "files"))
    yield app
    app.close()


@pytest.fixture
def department(helpdesk):
    return helpdesk.create_department(
        {
            "name": "Files",
            "client_visible": True,
            "fields": [],
            "staff_ids": [],
            "addresses": [],
            "accept_guests": True,
        }
    )


def _customer() -> dict:
    return {"id": str(uuid.uuid4()), "language": "en"}


def _ticket(helpdesk, department, customer: dict | None, *files: bytes, guest=None):
    refs = helpdesk.store_files([(f"f{i}.png", c) for i, c in enumerate(files)])
    author = {"kind": "client" if customer else "mail", "id": None, "name": "Someone"}
    return helpdesk.open_ticket(
        department,
        "Files",
        "see attached",
        author,
        customer=customer,
        guest_email=guest,
        attachments=refs,
    )


def _kept(helpdesk) -> set[str]:
    root = helpdesk.files.root
    return {p.name for p in root.rglob("*") if p.is_file()}


def _rows(helpdesk) -> list[tuple]:
    with helpdesk.datastore.transaction() as curs:
        curs.execute(
            "SELECT file_id, named_by::text, customer_id::text FROM ticket_files"
            " ORDER BY file_id, named_by"
        )
        return [tuple(r.values()) for r in curs.fetchall()]


def _erase(helpdesk, customer: dict) -> list[str]:
    assert helpdesk.erase_customer(customer["id"], "test")
    return helpdesk.sweep_erased_files()


def test_the_files_of_a_ticket_no_list_shows_yet_are_deleted(helpdesk, department):
    erased, other = _customer(), _customer()
    own, shared, guests = _png("own"), _png("shared"), _png("guest")
    ticket = _ticket(helpdesk, department, erased, own, shared)
    _ticket(helpdesk, department, other, shared)
    _ticket(helpdesk, department, None, guests, guest="guest@example.com")
    ids = {c: helpdesk.files.put(c) for c in (own, shared, guests)}
    Follower(helpdesk, HelpdeskLists())  # its tables, held back: no row yet
    with helpdesk.datastore.transaction() as curs:
        curs.execute("SELECT count(*) AS n FROM ticket_list")
        assert curs.fetchone()["n"] == 0  # no list shows the ticket
    # a later staff reply with the guest's content on the erased customer's ticket
    staff_refs = helpdesk.store_files([("staff.png", guests)])
    helpdesk.add_message(
        ticket.id, "here", {"kind": "staff", "id": None, "name": "S"}, attachments=staff_refs
    )

    deleted = _erase(helpdesk, erased)

    assert deleted == [ids[own]]
    assert _kept(helpdesk) == {ids[shared], ids[guests]}
    with helpdesk.datastore.transaction() as curs:
        curs.execute("SELECT count(*) AS n FROM erased_files")
        assert curs.fetchone()["n"] == 0
    # the model dropped the erased customer's rows when it projected the erasure
    helpdesk.ticket_files.catch_up()
    assert {(f, c) for f, _, c in _rows(helpdesk)} == {
        (ids[shared], other["id"]),
        (ids[guests], None),
    }


def test_a_merged_tickets_files_go_with_its_customer_and_shared_ones_stay(helpdesk, department):
    erased, other = _customer(), _customer()
    first, merged, shared = _png("first"), _png("merged"), _png("merged shared")
    target = _ticket(helpdesk, department, erased, first)
    source = _ticket(helpdesk, department, erased, merged, shared)
    _ticket(helpdesk, department, other, shared)
    ids = {c: helpdesk.files.put(c) for c in (first, merged, shared)}
    helpdesk.merge(target.id, source.id)
    helpdesk.ticket_files.catch_up()
    named_by_target = {f for f, t, _ in _rows(helpdesk) if t == str(target.id)}
    assert named_by_target == {ids[first], ids[merged], ids[shared]}

    deleted = _erase(helpdesk, erased)

    assert sorted(deleted) == sorted([ids[first], ids[merged]])
    assert _kept(helpdesk) == {ids[shared]}


def test_a_file_of_two_customers_goes_with_the_second_erasure(helpdesk, department):
    first, second = _customer(), _customer()
    shared = _png("two customers")
    _ticket(helpdesk, department, first, shared)
    _ticket(helpdesk, department, second, shared)
    file_id = helpdesk.files.put(shared)

    assert _erase(helpdesk, first) == []
    assert _kept(helpdesk) == {file_id}
    assert _erase(helpdesk, second) == [file_id]
    assert _kept(helpdesk) == set()


def test_rebuilt_after_an_erasure_the_model_is_the_live_one(helpdesk, department):
    erased, other = _customer(), _customer()
    _ticket(helpdesk, department, erased, _png("a"), _png("b"))
    _ticket(helpdesk, department, other, _png("b"), _png("c"))
    helpdesk.ticket_files.catch_up()  # projected while the key opened them
    _erase(helpdesk, erased)
    helpdesk.ticket_files.catch_up()
    live = _rows(helpdesk)
    assert {c for _, _, c in live} == {other["id"]}

    rebuilt = Follower(helpdesk, TicketFiles())
    rebuilt.rebuild()

    assert _rows(helpdesk) == live
    assert rebuilt.status()["skipped"] == 0
