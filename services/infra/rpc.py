"""RPC plumbing shared by services and the gateway.

Our typed errors travel as themselves (not as nameko's RemoteError), so a caller can
`except NotFound`, and the gateway can map them to HTTP without parsing strings.
"""

from __future__ import annotations

import eventlet
from marshmallow import Schema, ValidationError
from nameko.exceptions import UnknownService, deserialize_to_instance
from nameko.rpc import rpc as _rpc

from contracts.errors import ALL_ERRORS, HostledgerError, from_marshmallow
from services.infra import shutdown as _stops_gracefully  # noqa: F401 - `nameko run`'s stop
from services.infra.requests import once_per_request
from services.infra.settings import settings

for _error in ALL_ERRORS:
    deserialize_to_instance(_error)
# a service that another service asked is not there: the gateway's 503, however deep
deserialize_to_instance(UnknownService)


def ask(proxy, method: str, *args):
    """`proxy.method(*args)`: a question to another service that the request waits on.
    When it does not answer within half the gateway's wait, UnknownService (a 503), so
    that the request never goes on after its caller has been told it failed."""
    timer = eventlet.Timeout(settings().rpc_timeout / 2)
    try:
        return getattr(proxy, method)(*args)
    except eventlet.Timeout as exc:
        if exc is not timer:
            raise
        raise UnknownService(proxy.service_name) from None
    finally:
        timer.cancel()


def rpc(fn=None, **kwargs):
    """nameko's @rpc, with our errors declared expected (logged as answers, not crashes),
    run once per request (services.infra.requests)."""
    kwargs.setdefault("expected_exceptions", (HostledgerError,))
    if fn is None:
        return lambda method: _rpc(**kwargs)(once_per_request(method))
    return _rpc(**kwargs)(once_per_request(fn))


def load(schema_cls: type[Schema], data, partial: bool = False) -> dict:
    """Validate an RPC payload against its contract; ValidationFailed names each bad field."""
    if not isinstance(data, dict):
        from contracts.errors import ValidationFailed

        raise ValidationFailed(
            "The payload must be a JSON object.", {"_schema": ["Not an object."]}
        )
    try:
        return schema_cls().load(data, partial=partial)
    except ValidationError as err:
        raise from_marshmallow(err) from None
