"""The attachment rules and the content-addressed file store."""

import hashlib

import pytest

from contracts.errors import NotFound, TooLarge, UnsupportedType
from services.helpdesk.attachments import (
    AttachmentRules,
    LocalFileStore,
    check_file,
    check_message,
    clean_filename,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
GIF = b"GIF89a" + b"\0" * 32
JPG = b"\xff\xd8\xff\xe0" + b"\0" * 32
BMP = b"BM" + b"\0" * 32
EXE = b"MZ\x90\x00" + b"\0" * 60
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 60
RULES = AttachmentRules()


@pytest.mark.parametrize(
    "name, content, content_type",
    [
        ("a.png", PNG, "image/png"),
        ("a.gif", GIF, "image/gif"),
        ("a.jpg", JPG, "image/jpeg"),
        ("a.JPEG", JPG, "image/jpeg"),
        ("a.bmp", BMP, "image/bmp"),
        ("a.txt", "Привет".encode(), "text/plain"),
        ("a.html", b"<p>hi</p>", "text/html"),
        ("a.htm", b"<p>hi</p>", "text/html"),
    ],
)
def test_the_default_kinds_are_accepted_with_their_real_type(name, content, content_type):
    described = check_file(name, content, RULES)
    assert described["content_type"] == content_type
    assert described["id"] == hashlib.sha256(content).hexdigest()
    assert described["size"] == len(content)


@pytest.mark.parametrize(
    "name, content",
    [
        ("tool.exe", EXE),  # extension not allowed
        ("noext", b"text"),
        ("cat.png", EXE),  # an executable named .png
        ("cat.png", GIF),  # a picture, but not the one it says
        ("cat.jpg", b"just text"),
        ("readme.txt", ELF),  # an executable named .txt
        ("readme.txt", b"\xff\xfe\x00bin\x00"),
        ("page.html", PNG),
    ],
)
def test_refused_by_extension_or_content(name, content):
    with pytest.raises(UnsupportedType):
        check_file(name, content, RULES)


def test_staff_can_allow_more_kinds_and_executables_stay_refused():
    rules = AttachmentRules(allowed_extensions=("pdf", "log", "zip"))
    assert check_file("a.pdf", b"%PDF-1.7\n" + b"\0" * 32, rules)["content_type"] == (
        "application/pdf"
    )
    assert check_file("run.log", b"started\n", rules)["content_type"] == "text/plain"
    with pytest.raises(UnsupportedType):
        check_file("a.pdf", b"not a pdf at all", rules)
    with pytest.raises(UnsupportedType):
        check_file("a.zip", EXE, rules)
    with pytest.raises(UnsupportedType):
        check_file("a.png", PNG, rules)  # no longer allowed


def test_size_limits_per_file_and_per_message():
    rules = AttachmentRules(max_file_bytes=10, max_message_bytes=15)
    assert check_file("a.txt", b"x" * 10, rules)["size"] == 10
    with pytest.raises(TooLarge):
        check_file("a.txt", b"x" * 11, rules)
    with pytest.raises(TooLarge):
        check_message([("a.txt", b"x" * 8), ("b.txt", b"y" * 8)], rules)
    assert len(check_message([("a.txt", b"x" * 7), ("b.txt", b"y" * 8)], rules)) == 2


def test_filenames_lose_paths_and_odd_characters():
    assert clean_filename("../../etc/passwd.txt") == "passwd.txt"
    assert clean_filename("C:\\Users\\me\\report.txt") == "report.txt"
    assert clean_filename('a"b;c.txt') == "a_b_c.txt"
    assert clean_filename("...") == "file"


def test_the_store_keeps_each_content_once_under_its_hash(tmp_path):
    store = LocalFileStore(tmp_path)
    first = store.put(b"hello")
    assert first == hashlib.sha256(b"hello").hexdigest()
    assert store.put(b"hello") == first
    assert store.get(first) == b"hello"
    assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1
    with pytest.raises(NotFound):
        store.get("0" * 64)
    with pytest.raises(NotFound):
        store.get("../../etc/passwd")
