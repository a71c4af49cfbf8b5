"""Ticket attachments: the rules a file must pass, and where its bytes are kept.

Files live outside the event store, content-addressed by their SHA-256 under the data
directory (`HOSTLEDGER_DATA_DIR`); events only name them. `FileStore` is the small
interface an object store can replace. The content of a file is checked against its
extension: a picture must be that picture, a text file must be text, and an
executable is refused whatever it is called.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import filetype

from contracts.errors import NotFound, TooLarge, UnsupportedType, ValidationFailed

DEFAULT_EXTENSIONS = ("txt", "gif", "html", "htm", "jpg", "jpeg", "png", "bmp")
DEFAULT_MAX_FILE_BYTES = 5 * 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024

# extensions whose content must be text (no magic number of its own)
TEXT_EXTENSIONS = {"txt", "html", "htm", "csv", "log", "xml", "json", "md", "eml"}
# the detected kind each extension must have, where the two spellings differ
SAME_KIND = {"jpeg": "jpg", "jpg": "jpg", "tif": "tif", "tiff": "tif", "htm": "html"}
# what is never accepted, whatever the file is called
EXECUTABLE_KINDS = {"exe", "elf", "dex", "dcm", "macho", "msi", "swf", "crx", "deb", "rpm"}
CONTENT_TYPES = {
    "txt": "text/plain",
    "html": "text/html",
    "htm": "text/html",
    "csv": "text/csv",
    "json": "application/json",
    "xml": "application/xml",
}

_SAFE_NAME = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


@dataclass(frozen=True)
class AttachmentRules:
    allowed_extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


def clean_filename(filename: str) -> str:
    """The name kept for a download: no path, no control or shell characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = _SAFE_NAME.sub("_", name).strip(". ")
    return name[:200] or "file"


def extension_of(filename: str) -> str:
    _, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and _ else ""


def check_file(filename: str, content: bytes, rules: AttachmentRules) -> dict:
    """The attachment's description (id, filename, content_type, size) if `content` may be
    attached under `filename`; 413 too large, 415 refused extension or content."""
    name = clean_filename(filename)
    ext = extension_of(name)
    if ext not in rules.allowed_extensions:
        allowed = ", ".join(rules.allowed_extensions)
        raise UnsupportedType(
            f"Files of type .{ext or '(none)'} are not accepted; allowed: {allowed}.",
            {"files": [f"{name}: extension not allowed."]},
        )
    if len(content) > rules.max_file_bytes:
        raise TooLarge(
            f"{name} is larger than {rules.max_file_bytes} bytes.",
            {"files": [f"{name}: larger than {rules.max_file_bytes} bytes."]},
        )
    content_type = _content_type_for(name, ext, content)
    return {
        "id": hashlib.sha256(content).hexdigest(),
        "filename": name,
        "content_type": content_type,
        "size": len(content),
    }


def check_message(files: list[tuple[str, bytes]], rules: AttachmentRules) -> list[dict]:
    """Every file of one message checked, and their sum against the per-message limit."""
    total = sum(len(content) for _, content in files)
    if total > rules.max_message_bytes:
        raise TooLarge(
            f"The files of one message may not exceed {rules.max_message_bytes} bytes.",
            {"files": [f"{total} bytes in all; at most {rules.max_message_bytes}."]},
        )
    return [check_file(name, content, rules) for name, content in files]


def _content_type_for(name: str, ext: str, content: bytes) -> str:
    refused = UnsupportedType(
        f"The content of {name} is not a .{ext} file.",
        {"files": [f"{name}: content does not match its extension."]},
    )
    kind = filetype.guess(content[:8192])
    if kind is not None and kind.extension in EXECUTABLE_KINDS:
        raise refused
    if ext in TEXT_EXTENSIONS:
        if kind is not None or b"\x00" in content:
            raise refused
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise refused from None
        return CONTENT_TYPES.get(ext, "text/plain")
    if filetype.get_type(ext=SAME_KIND.get(ext, ext)) is not None:
        # a kind with a signature: the content must carry that signature
        if kind is None or SAME_KIND.get(kind.extension, kind.extension) != SAME_KIND.get(ext, ext):
            raise refused
        return kind.mime
    return kind.mime if kind is not None else "application/octet-stream"


# -- where the bytes are kept ------------------------------------------------------------


class FileStore(Protocol):
    def put(self, content: bytes) -> str:
        """Keep `content`; answer its id (SHA-256 hex). Keeping the same bytes twice is one."""

    def get(self, file_id: str) -> bytes:
        """The bytes kept under `file_id`; NotFound when there are none."""

    def discard(self, file_id: str, unless_put_since: float) -> bool:
        """Delete the file, unless it was put (again) at or after `unless_put_since` (a
        time.time() instant); True when it was deleted."""


_FILE_ID = re.compile(r"^[0-9a-f]{64}$")


class LocalFileStore:
    """Files under `<root>/ab/cd/<sha256>`, written to a temporary name and renamed, so a
    reader never sees half a file."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, file_id: str) -> Path:
        if not _FILE_ID.match(file_id):
            raise NotFound("No such file.")
        return self.root / file_id[:2] / file_id[2:4] / file_id

    def put(self, content: bytes) -> str:
        file_id = hashlib.sha256(content).hexdigest()
        path = self._path(file_id)
        try:
            # kept already: marked as put again, so that an erasure deleting it keeps it
            os.utime(path)
            return file_id
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return file_id

    def get(self, file_id: str) -> bytes:
        try:
            return self._path(file_id).read_bytes()
        except FileNotFoundError:
            raise NotFound("No such file.") from None

    def discard(self, file_id: str, unless_put_since: float) -> bool:
        """Move the file aside first (a put from then on writes it anew), then delete it,
        or put it back when it was put again since `unless_put_since`."""
        path = self._path(file_id)
        aside = path.with_name(f".erasing-{file_id}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        if aside.stat().st_mtime >= unless_put_since:
            try:
                os.link(aside, path)  # unless it was written anew meanwhile
            except FileExistsError:
                pass
            aside.unlink()
            return False
        aside.unlink()
        return True


def decode_upload(item: dict) -> tuple[str, bytes]:
    """One uploaded file as it travels over RPC: {"filename", "content": base64}."""
    import base64
    import binascii

    try:
        return str(item["filename"]), base64.b64decode(item["content"], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise ValidationFailed(
            "An attached file is not readable.", {"files": ["Not a valid file."]}
        ) from None
