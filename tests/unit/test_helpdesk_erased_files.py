"""Erased customers' ticket files: which files a customer's tickets name, and a deletion
that keeps a file put again while it was being erased."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from contracts.errors import NotFound
from services.helpdesk.attachments import LocalFileStore
from services.helpdesk.erased_files import files_of, note_statement


def test_a_file_nothing_put_again_is_deleted(tmp_path):
    store = LocalFileStore(tmp_path)
    file_id = store.put(b"erase me")
    assert store.discard(file_id, unless_put_since=time.time() + 1)
    with pytest.raises(NotFound):
        store.get(file_id)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert not store.discard(file_id, unless_put_since=time.time())  # gone already


def test_a_file_put_again_since_the_check_began_is_kept(tmp_path):
    store = LocalFileStore(tmp_path)
    file_id = store.put(b"shared bytes")
    path = next(p for p in tmp_path.rglob("*") if p.is_file())
    os.utime(path, (1_000_000, 1_000_000))  # put long ago
    began = time.time() - 1
    assert store.put(b"shared bytes") == file_id  # another customer attaches it again
    assert not store.discard(file_id, unless_put_since=began)
    assert store.get(file_id) == b"shared bytes"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [file_id]


def test_the_files_a_customers_tickets_name():
    tickets = [
        SimpleNamespace(
            messages=[
                {"attachments": [{"id": "a" * 64}, {"id": "b" * 64}]},
                {"attachments": []},
                {"attachments": "[erased]"},
            ]
        ),
        SimpleNamespace(messages=[{"attachments": [{"id": "a" * 64}]}, {}]),
    ]
    assert files_of(tickets) == ["a" * 64, "b" * 64]
    statement, params = note_statement(["a" * 64], "now")
    assert "erased_files" in statement and params == ("now", ["a" * 64])
