"""Typed errors that cross service boundaries.

A service raises these; nameko carries them over RPC as the same classes (see
services/infra/rpc.py), and the gateway turns each into the HTTP status and the
one JSON error shape of API.md.
"""

from __future__ import annotations


class HostledgerError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, fields: dict | None = None):
        # args travel over RPC and rebuild the error there: only what is set
        super().__init__(*((message, fields) if fields is not None else (message,)))
        self.message = message
        self.fields = fields

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        return {"error": error}


class ValidationFailed(HostledgerError):
    """Bad input. `fields` maps each field name to its messages."""

    code = "validation_error"
    status = 400

    def __init__(self, message: str, fields: dict | None = None):
        super().__init__(message, fields if fields is not None else {})


class Unauthorized(HostledgerError):
    code = "unauthorized"
    status = 401


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class PasswordRequired(Unauthorized):
    code = "password_required"


class TwoFactorRequired(Unauthorized):
    """The password was right and the account has two-factor authentication on: send a
    code too. `challenge`: for the web's second step only (never in an API answer), a
    short-lived token that stands for the right password."""

    code = "two_factor_required"

    def __init__(self, message: str, fields: dict | None = None, challenge: str | None = None):
        super().__init__(message, fields)
        self.challenge = challenge or None
        # travels over RPC, where None would arrive as the text "None"
        self.args = (message, fields if fields is not None else {}, challenge or "")


class Forbidden(HostledgerError):
    code = "forbidden"
    status = 403


class TwoFactorSetupRequired(Forbidden):
    """Two-factor authentication is mandatory for staff and this staff member (or the
    staff member acting as this client) has not set it up yet: nothing but setting it
    up, who am I, one's own account and logging out answers until then."""

    code = "two_factor_setup_required"
    # the messages: a staff member's own session, and a client's area they act in
    STAFF = (
        "An administrator has made two-factor authentication mandatory for staff and yours "
        "is not set up yet: set it up first (POST /api/v1/auth/2fa/enrol, then "
        "POST /api/v1/auth/2fa/confirm). Until then only /api/v1/auth/*, /api/v1/me and "
        "/api/v1/staff/account answer."
    )
    ACTING = (
        "An administrator has made two-factor authentication mandatory for staff and yours "
        "is not set up yet: go back to your staff session (POST /api/v1/auth/return) and "
        "set it up before acting as a client."
    )


class NotFound(HostledgerError):
    code = "not_found"
    status = 404


class Conflict(HostledgerError):
    code = "conflict"
    status = 409


class TooLarge(HostledgerError):
    code = "too_large"
    status = 413


class UnsupportedType(HostledgerError):
    code = "unsupported_type"
    status = 415


class RateLimited(HostledgerError):
    """`retry_after`: seconds until the caller may try again (the HTTP Retry-After)."""

    code = "rate_limited"
    status = 429
    default_retry_after = 60

    def __init__(self, message: str, fields: dict | None = None, retry_after: int | None = None):
        super().__init__(message, fields)
        self.retry_after = int(retry_after) if retry_after else self.default_retry_after
        # travels over RPC, where None would arrive as the text "None"
        self.args = (message, fields if fields is not None else {}, self.retry_after)


class Unavailable(HostledgerError):
    """Not now, try again: the infrastructure behind the request failed for a moment (a
    dropped database connection, a lock not taken in time, a request whose caller had
    already stopped waiting). Nothing was changed. `retry_after` as for RateLimited."""

    code = "unavailable"
    status = 503
    default_retry_after = 5

    def __init__(self, message: str, fields: dict | None = None, retry_after: int | None = None):
        super().__init__(message, fields)
        self.retry_after = int(retry_after) if retry_after else self.default_retry_after
        # travels over RPC, where None would arrive as the text "None"
        self.args = (message, fields if fields is not None else {}, self.retry_after)


ALL_ERRORS = (
    HostledgerError,
    ValidationFailed,
    Unauthorized,
    InvalidCredentials,
    PasswordRequired,
    TwoFactorRequired,
    Forbidden,
    TwoFactorSetupRequired,
    NotFound,
    Conflict,
    TooLarge,
    UnsupportedType,
    RateLimited,
    Unavailable,
)


def from_marshmallow(err, message: str = "The request is not valid.") -> ValidationFailed:
    """A marshmallow ValidationError as our ValidationFailed, naming each field."""
    messages = err.messages
    if not isinstance(messages, dict):
        messages = {"_schema": messages if isinstance(messages, list) else [str(messages)]}
    return ValidationFailed(message, fields=flatten_fields(messages))


def flatten_fields(messages: dict, prefix: str = "") -> dict[str, list[str]]:
    """Nested errors as one flat map of dotted paths, as the API names fields everywhere:
    {"items": {"0": {"addons": {"1": [...]}}}} -> {"items.0.addons.1": [...]}; a nested
    schema's own error (`_schema`) is named by its path."""
    out: dict[str, list[str]] = {}
    for key, value in messages.items():
        if key == "_schema" and prefix:
            name = prefix
        else:
            name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and set(value) <= {"key", "value"}:
            # a Dict field's entry: its key or its value is wrong; name the entry
            for part in value.values():
                nested = part if isinstance(part, dict) else {"_schema": part}
                for inner, texts in flatten_fields(nested, name).items():
                    out.setdefault(inner, []).extend(texts)
        elif isinstance(value, dict):
            for inner, texts in flatten_fields(value, name).items():
                out.setdefault(inner, []).extend(texts)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, dict):
                    for inner, texts in flatten_fields(item, name).items():
                        out.setdefault(inner, []).extend(texts)
                else:
                    out.setdefault(name, []).append(str(item))
        else:
            out.setdefault(name, []).append(str(value))
    return out
