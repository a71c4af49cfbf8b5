"""The gateway's HTTP layer on nameko: JSON routes, auth, one error shape, access logs.

    @route("POST", "/api/v1/staff/customers", body=RegisterCustomerRequest,
           roles=("admin", "support"), status=201, response=CustomerSchema)
    def register_customer(self, call: Call) -> dict: ...

A route method gets a `Call`: the validated body, the path values, the query, who
is calling (`principal`), and `services` to call the back-end services as that
person. Every answer is JSON; every error has the shape of API.md, including
unknown routes, wrong methods, malformed or oversized bodies.

Input rules every route gets here, before its own schemas: a JSON body nests arrays and
objects at most MAX_JSON_DEPTH deep (and is at most MAX_BODY_BYTES long); query
parameters and path values are text without control characters or lone surrogates (a
400 naming the one at fault); every error body has `fields` (`{}` when no field is at
fault).

Idempotency-Key (API.md): a route declared `idempotent=True` (creates something or moves
money) honours the header: the same key with the same request answers the first answer
again (same status, nothing done twice), with another request a 409. The key is bound
to the caller here, in one place (`staff:<id>|key`, `client:<customer id>|key`,
`public|key`), so one caller's key never meets another's. Such a route either passes
`call.idempotency_key` on to a service command that keeps it with its own events
(`idempotent="service"`), or lets this layer keep the first answer (`idempotent=True`:
the key is claimed in the customers service before the route runs, so concurrent
requests with one key run it once).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import eventlet
from marshmallow import Schema, ValidationError, fields
from nameko.exceptions import UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener, ServiceProxy
from nameko.web.handlers import HttpRequestHandler
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from contracts.errors import (
    Conflict,
    Forbidden,
    HostledgerError,
    TooLarge,
    TwoFactorSetupRequired,
    Unauthorized,
    UnsupportedType,
    ValidationFailed,
    from_marshmallow,
)
from contracts.fields import text_problem
from gateway import metrics as http_metrics
from gateway.session_events import SessionChanges, SessionEvents
from gateway.session_events import resolve as resolve_session
from gateway.webserver import DrainingWebServer
from services.infra import context, logs
from services.infra import rpc as _registers_errors  # noqa: F401 - typed errors over RPC
from services.infra.context import (
    ACTOR_HEADER,
    DEADLINE_HEADER,
    ON_BEHALF_OF_HEADER,
    REQUEST_HEADER,
    REQUEST_ID_HEADER,
    Actor,
)
from services.infra.inbox import is_transient
from services.infra.requests import without_secrets
from services.infra.settings import settings

access_log = logging.getLogger("hostledger.access")
log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
# a multipart body with files (ticket attachments); the helpdesk applies its own,
# configurable, per-file and per-message limits below this
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
# how deep arrays and objects may nest in a JSON body (or a JSON form field)
MAX_JSON_DEPTH = 64
STATUS_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_type",
    429: "rate_limited",
}


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    text = json.dumps(payload, ensure_ascii=False, default=str)
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (echoed input): escaped, still JSON
        body = json.dumps(payload, default=str).encode("ascii")
    return Response(body, status=status, headers=headers, mimetype="application/json")


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    """The one error shape: `fields` always present (`{}` when no field is at fault)."""
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_response(error: HostledgerError, headers: dict | None = None) -> Response:
    headers = dict(headers or {})
    if error.status in (429, 503):  # always says when to try again
        headers.setdefault("Retry-After", str(getattr(error, "retry_after", None) or 60))
    return json_response(error_body(error.code, error.message, error.fields), error.status, headers)


# -- who is calling: the address behind trusted proxies, cookie sessions and CSRF --------

SESSION_COOKIE = "hostledger_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _ip(value: str | None):
    try:
        return ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None


def client_address(request: Request) -> str | None:
    """The caller's address: the peer, or, when the peer is a trusted proxy
    (HOSTLEDGER_TRUSTED_PROXIES), the nearest X-Forwarded-For hop that is not one."""
    proxies = settings().trusted_proxies
    address = _ip(request.remote_addr)
    if address is None or not proxies:
        return request.remote_addr
    hops = [h for v in request.headers.getlist("X-Forwarded-For") for h in v.split(",")]
    for hop in reversed(hops):
        if not any(address in net for net in proxies):
            break
        ip = _ip(hop)
        if ip is None:
            break
        address = ip
    return str(address)


def csrf_token(session_token: str) -> str:
    """What a page sends in X-CSRF-Token beside its session cookie (bound to the session)."""
    return hashlib.sha256(b"hostledger-csrf:" + session_token.encode()).hexdigest()


def same_site(request: Request) -> bool:
    """The request comes from one of our own pages (its Origin is this site)."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return False
    own = {request.host_url.rstrip("/"), settings().public_url.rstrip("/")}
    return origin.rstrip("/") in own


def csrf_ok(request: Request, session_token: str) -> bool:
    if request.method in SAFE_METHODS:
        return True
    sent = request.headers.get(CSRF_HEADER, "")
    return hmac.compare_digest(sent, csrf_token(session_token)) or same_site(request)


def client_may(principal: dict, permissions: tuple[str, ...]) -> bool:
    """A client's session holds one of `permissions` (the customer itself and a user with
    `full` hold them all): the one rule the API's routes and the web pages both apply."""
    granted = set(principal.get("permissions") or ())
    return "full" in granted or bool(granted & set(permissions))


def open_before_two_factor_setup(url: str) -> bool:
    """The API route `url` (as declared) answers a staff member who must set up two-factor
    authentication first (the staff policy makes it mandatory): what they need to set it
    up and to leave, who they are, and their own account. The web pages allow the same,
    through the route each names."""
    return (
        url.startswith("/api/v1/auth/")
        or url == "/api/v1/me"
        or url == "/api/v1/staff/account"
        or url.startswith("/api/v1/staff/account/")
    )


def two_factor_setup_refusal(principal: dict | None) -> TwoFactorSetupRequired | None:
    """The refusal a session meets on every other route while two-factor authentication
    is mandatory for staff and its staff member has not set it up (the customers service
    says so in the session's answer: `two_factor_setup_required`, the acting member's in
    `impersonator` for a client session entered from a staff one), else None."""
    if not principal:
        return None
    if principal.get("two_factor_setup_required"):
        return TwoFactorSetupRequired(TwoFactorSetupRequired.STAFF)
    if (principal.get("impersonator") or {}).get("two_factor_setup_required"):
        return TwoFactorSetupRequired(TwoFactorSetupRequired.ACTING)
    return None


def unavailable(message: str) -> Response:
    return json_response(error_body("unavailable", message), 503, {"Retry-After": "5"})


def internal_error() -> Response:
    return json_response(error_body("internal_error", "Something went wrong on our side."), 500)


# a JSON string (skipped whole) or a bracket: enough to measure nesting without parsing
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def parse_json(raw: bytes | str, name: str = "_body"):
    """JSON text as Python values; ValidationFailed naming `name` when it is not JSON, or
    nests arrays and objects more than MAX_JSON_DEPTH deep (measured before parsing, so
    that no body can exhaust the parser's recursion)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise ValidationFailed("The body is not UTF-8.", {name: ["Not UTF-8."]}) from None
    depth = 0
    few = text.count("[") + text.count("{") <= MAX_JSON_DEPTH
    for token in () if few else _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                message = f"Arrays and objects nest at most {MAX_JSON_DEPTH} deep."
                raise ValidationFailed(f"The JSON is nested too deep. {message}", {name: [message]})
        elif bracket in ("]", "}"):
            depth -= 1
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValidationFailed(
            f"The body is not valid JSON: {exc}", {name: ["Not valid JSON."]}
        ) from None


def check_request_text(request: Request) -> None:
    """Query parameters (names and values) and path values are text without control
    characters or lone surrogates: else a 400 naming the parameter."""
    texts = [("query parameter", key, key) for key in request.args]
    texts += [("query parameter", key, value) for key, value in request.args.items(multi=True)]
    texts += [
        ("path value", key, value)
        for key, value in (getattr(request, "path_values", None) or {}).items()
        if isinstance(value, str)
    ]
    for what, name, value in texts:
        problem = text_problem(value)
        if problem:
            raise ValidationFailed(
                f"The {what} {name!r} is not valid: {problem}", {name: [problem]}
            )


def http_error(exc: HTTPException) -> Response:
    code = STATUS_CODES.get(exc.code, "error")
    if isinstance(exc, NotFound):
        message = "There is no such route."
    elif isinstance(exc, MethodNotAllowed):
        message = (
            f"This route does not take this method; it takes {', '.join(exc.valid_methods or [])}."
        )
    elif isinstance(exc, RequestEntityTooLarge):
        message = f"The request body is larger than {MAX_BODY_BYTES} bytes."
    else:
        message = exc.description or exc.name
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    return json_response(error_body(code, message), exc.code or 500, headers)


# -- the server: unknown routes, sizes, access log --------------------------------------


class JsonWsgiApp:
    def __init__(self, server):
        self.server = server
        self.url_map = server.make_url_map()

    def __call__(self, environ, start_response):
        # the caller's X-Request-Id (when it is a valid one) or a new one: every line this
        # request logs, in every process, and every event it stores name it
        request_id = logs.request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        environ["hostledger.request_id"] = request_id
        with context.tracing(request_id):
            return self.answer(environ, start_response)

    def answer(self, environ, start_response):
        started = time.perf_counter()
        limit = MAX_BODY_BYTES
        request = Request(environ, shallow=True)
        request.max_content_length = MAX_BODY_BYTES
        request.request_id = environ["hostledger.request_id"]
        route_url = None  # the matched route's template, for the metrics
        try:
            length = request.content_length
            if length is not None and length > MAX_UPLOAD_BYTES:
                raise RequestEntityTooLarge()
            adapter = self.url_map.bind_to_environ(environ)
            provider, values = adapter.match()
            route_url = provider.url
            # routes that take files take larger bodies; every other route 1 MiB
            limit = MAX_UPLOAD_BYTES if getattr(provider, "files", False) else MAX_BODY_BYTES
            request.max_content_length = limit
            if length is not None and length > limit:
                raise RequestEntityTooLarge()
            request.path_values = values
            response = provider.handle_request(request)
        except RequestEntityTooLarge:
            response = error_response(
                TooLarge(f"The request body is larger than this route takes ({limit} bytes).")
            )
        except NotFound as exc:
            # a person's browser asking for a page that is not there gets a page
            page = self.server.page_not_found
            response = page(request) if page and wants_page(request) else http_error(exc)
        except HTTPException as exc:
            response = http_error(exc)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = internal_error()
        response.headers["X-Request-Id"] = request.request_id
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        elapsed = time.perf_counter() - started
        http_metrics.observe(request.method, route_url, response.status_code, elapsed)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        access_log.info(
            "%s %s %s %.2f ms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={  # fields of their own in a JSON line (services.infra.logs)
                "request_id": request.request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "remote": request.remote_addr,
                "principal": environ.get("hostledger.principal"),
            },
        )
        return response(environ, start_response)


def wants_page(request: Request) -> bool:
    """A browser's request outside the JSON API: it prefers HTML to JSON."""
    if request.path.startswith("/api/"):
        return False
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality("application/json")


class JsonWebServer(DrainingWebServer):
    # answers a request no route matched when a browser wants a page (gateway.web sets it)
    page_not_found = None

    def get_wsgi_app(self):
        return JsonWsgiApp(self)

    def context_data_from_headers(self, request):
        # the request id goes to the worker, and on with every RPC the worker makes
        return {REQUEST_ID_HEADER: request.request_id}

    def process_request(self, sock, address):
        # answers go out at once: with Nagle's algorithm a response of a few segments
        # waits for the client's delayed ACK (about 40 ms)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().process_request(sock, address)


# -- calling services as someone --------------------------------------------------------


class Services:
    """`services.customers.login(...)`: RPC to any service, carrying who is acting."""

    def __init__(self, worker_ctx, reply_listener, sessions=None):
        self._worker_ctx = worker_ctx
        self._reply_listener = reply_listener
        # the instance's session cache (gateway/session_cache.py), None: none
        self.sessions = sessions

    def act_as(self, actor: Actor | None, on_behalf_of: Actor | None = None) -> None:
        data = self._worker_ctx.data
        data.pop(ACTOR_HEADER, None)
        data.pop(ON_BEHALF_OF_HEADER, None)
        if actor is not None:
            data[ACTOR_HEADER] = actor.header()
        if on_behalf_of is not None:
            data[ON_BEHALF_OF_HEADER] = on_behalf_of.header()
        # the rest of the request's log lines name who it acts as
        context.current.actor, context.current.on_behalf_of = actor, on_behalf_of

    @property
    def context(self) -> dict:
        """What every call of this request carries to the services (RPC context data)."""
        return self._worker_ctx.data

    def __getattr__(self, service: str) -> ServiceProxy:
        proxy = ServiceProxy(self._worker_ctx, service, self._reply_listener)
        if service == "customers" and self.sessions is not None:
            # its calls that end or change sessions drop them from this instance's cache
            return SessionChanges(proxy, self.sessions, self._worker_ctx.data.get(ACTOR_HEADER))
        return proxy


class ServiceRpc(DependencyProvider):
    rpc_reply_listener = ReplyListener()
    # this instance's subscription to the customers service's events: its session cache
    session_events = SessionEvents()

    def setup(self):
        logs.set_process_name(self.container.service_name)

    def get_dependency(self, worker_ctx):
        return Services(worker_ctx, self.rpc_reply_listener, self.session_events.cache)

    def worker_setup(self, worker_ctx):
        """The worker's log lines name its request (services.infra.logs)."""
        request_id = worker_ctx.data.get(REQUEST_ID_HEADER)
        context.current.request_id = request_id if logs.valid_request_id(request_id) else None
        context.current.actor = context.current.on_behalf_of = None

    def worker_teardown(self, worker_ctx):
        context.current.request_id = None
        context.current.actor = context.current.on_behalf_of = None


# -- routes -------------------------------------------------------------------------------


@dataclass
class Call:
    request: Request
    services: Services
    path: dict = field(default_factory=dict)
    body: dict | None = None
    query: dict = field(default_factory=dict)
    principal: dict | None = None
    token: str | None = None
    # uploaded files of a multipart body: [{"filename", "content_type", "content": base64}]
    files: list = field(default_factory=list)
    # the request's Idempotency-Key bound to the caller (idempotent routes only), or None
    idempotency_key: str | None = None

    @property
    def customer_id(self) -> str:
        """The client's own customer (routes for clients only)."""
        return self.principal["customer_id"]

    @property
    def address(self) -> str | None:
        """The caller's address (X-Forwarded-For only from trusted proxies)."""
        return client_address(self.request)

    @property
    def actor(self) -> Actor | None:
        return actor_of(self.principal) if self.principal else None


def actor_of(principal: dict) -> Actor:
    """Who a session's principal acts as in events."""
    if principal["kind"] == "staff":
        return Actor("staff", principal["staff_id"])
    return Actor("client", principal["customer_id"])


class GatewayEntrypoint(HttpRequestHandler):
    """What API routes and web pages share: one HTTP server, the worker gets the
    entrypoint with the request, a deadline for every service call of the request, and
    the logged-in principal named in the access log and in the events it causes."""

    server = JsonWebServer()

    def get_url_rule(self):
        return Rule(self.url, methods=[self.method])

    def stop(self):
        # the process is stopping: no new connections, the requests in flight answered,
        # while the services they call can still be reached (gateway.webserver)
        self.server.drain()
        super().stop()

    def handle_request(self, request):
        request.shallow = False
        return super().handle_request(request)

    def get_entrypoint_parameters(self, request):
        # the worker gets this entrypoint too, to validate and shape as declared here
        return (self, request), {}

    def response_from_result(self, result):
        return result

    @staticmethod
    def start_deadline(services: Services) -> float:
        """How long the gateway waits for this request; once that has passed, no command
        of it changes anything (the services check the deadline before they save)."""
        wait = settings().rpc_timeout
        services.context[DEADLINE_HEADER] = repr(time.time() + wait)
        return wait

    @staticmethod
    def act_for(request: Request, services: Services, principal: dict) -> None:
        """The rest of the request acts as `principal` (on behalf of the client when staff
        act in a client's area)."""
        request.environ["hostledger.principal"] = (
            f"{principal['kind']}:{principal.get('staff_id') or principal.get('customer_id')}"
        )
        impersonator = principal.get("impersonator")
        services.act_as(
            actor_of(principal), Actor("staff", impersonator["staff_id"]) if impersonator else None
        )

    @classmethod
    def declare(cls, method: str, url: str, **options):
        """The decorator of a service method taking `(self, call)`: the worker runs it
        through this entrypoint's `run`."""

        def decorate(fn):
            entry = cls.decorator(method, url, **options)

            @functools.wraps(fn)
            def worker(self, provider, request: Request):
                return provider.run(self, fn, request)

            return entry(worker)

        return decorate


class Route(GatewayEntrypoint):
    def __init__(
        self,
        method: str,
        url: str,
        body: type[Schema] | None = None,
        query: type[Schema] | None = None,
        response: type[Schema] | None = None,
        roles: tuple[str, ...] | None = None,
        client: bool | tuple[str, ...] = False,
        status: int = 200,
        partial: bool = False,
        summary: str = "",
        tags: tuple[str, ...] = (),
        files: bool = False,
        idempotent: bool | str = False,
        **kwargs,
    ):
        """`roles`: staff roles allowed; `client`: a logged-in client may call it.
        With neither, the route is public. `files`: the body may also come as
        multipart/form-data, the same fields plus files. `idempotent`: honours an
        Idempotency-Key, True (this layer keeps the first answer) or "service" (the
        route passes `call.idempotency_key` to a command that keeps it)."""
        if idempotent not in (False, True, "service"):
            raise ValueError(f"idempotent={idempotent!r}: False, True or 'service'")
        self.idempotent = idempotent
        self.files = files
        self.body_schema = body
        self.query_schema = query
        self.response_schema = response
        self.roles = roles
        self.client = client
        self.status = status
        self.partial = partial
        self.summary = summary
        self.tags = tags
        super().__init__(method, url, **kwargs)

    @property
    def public(self) -> bool:
        return self.roles is None and not self.client

    def response_from_exception(self, exc):
        if isinstance(exc, HostledgerError):
            return error_response(exc)
        if isinstance(exc, HTTPException):
            return http_error(exc)
        if is_transient(exc):  # the broker or a database away for a moment: not our bug
            log.warning("a route met a transient failure: %s: %s", type(exc).__name__, exc)
            return unavailable("A service or the message broker is not reachable right now.")
        log.error("unhandled error in a route", exc_info=exc)
        return internal_error()

    def run(self, service, method, request: Request) -> Response:
        """In the worker: authenticate, validate, call, and shape the answer."""
        call = Call(request=request, services=service.services, path=dict(request.path_values))
        try:
            with eventlet.Timeout(self.start_deadline(call.services)):
                check_request_text(request)
                self._authenticate(call)
                call.query = self._load_query(request)
                call.body = self._load_body(request)
                call.files = getattr(request, "uploads", [])
                if self.method not in SAFE_METHODS:
                    # every command of this request is carried out once, however often
                    # its RPC is delivered (services.infra.requests): the caller's key
                    # names the request, or one made for it
                    key = idempotency_key(request, call.principal)
                    call.services.context[REQUEST_HEADER] = key or f"request|{uuid.uuid4()}"
                    if self.idempotent:
                        call.idempotency_key = key
                if self.idempotent is True and call.idempotency_key:
                    return self._run_once(service, method, call)
                result = method(service, call)
        except HostledgerError as exc:
            return error_response(exc)
        except HTTPException as exc:
            return http_error(exc)
        except UnknownService as exc:
            return unavailable(f"The {exc.args[0] if exc.args else ''} service is not running.")
        except eventlet.Timeout:
            return unavailable("A service did not answer in time.")
        if isinstance(result, Response):
            return result
        return json_response(result, self.status)

    def _run_once(self, service, method, call: Call) -> Response:
        """Run the route once per Idempotency-Key: a repeat answers the first answer."""
        customers = call.services.customers
        key, digest = call.idempotency_key, request_digest(self, call)
        stale = settings().rpc_timeout * 2
        claim = customers.claim_request_key(key, digest, stale)
        waited = 0.0
        while claim["state"] == "busy":  # the first request with this key is running
            if waited >= settings().rpc_timeout / 2:
                raise Conflict(
                    "A request with this Idempotency-Key is still being answered; "
                    "try again in a moment.",
                    {IDEMPOTENCY_HEADER: ["In use by a request still running."]},
                )
            eventlet.sleep(0.1)
            waited += 0.1
            claim = customers.claim_request_key(key, digest, stale)
        if claim["state"] == "done":
            return json_response(claim["answer"], claim["status"])
        try:
            result = method(service, call)
        except BaseException:
            customers.release_request_key(key, digest)
            raise
        if isinstance(result, Response):  # not JSON: not kept, the key may be used again
            customers.release_request_key(key, digest)
            return result
        answer = json.loads(json.dumps(result, default=str))
        # a repeat answers the same object, without what is shown once (a password)
        customers.finish_request_key(
            key, digest, self.status, without_secrets(answer), answer_customer(call, answer)
        )
        return json_response(answer, self.status)

    def _authenticate(self, call: Call) -> None:
        header = call.request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        from_cookie = False
        if token is None:
            token = call.request.cookies.get(SESSION_COOKIE) or None
            from_cookie = token is not None
        if from_cookie and not csrf_ok(call.request, token):
            # a cookie comes with any request the browser makes, even one another site
            # started: it counts only with the session's CSRF token or from our own origin
            if not self.public:
                raise Forbidden(
                    f"A request with a session cookie that changes something needs the "
                    f"{CSRF_HEADER} header of the session (or must come from this site)."
                )
            token = None
        call.token = token
        if self.public and not token:
            return
        if not token:
            raise Unauthorized("Log in first: send 'Authorization: Bearer <token>'.")
        try:
            # from this instance's session cache when it holds the session, else asked
            principal = resolve_session(call.services, token)
        except Unauthorized:
            if self.public:
                return
            raise
        if from_cookie:
            principal = dict(principal, csrf_token=csrf_token(token))
        call.principal = principal
        self.act_for(call.request, call.services, principal)
        if self.public:
            return
        refusal = two_factor_setup_refusal(principal)
        if refusal is not None and not open_before_two_factor_setup(self.url):
            raise refusal
        if principal["kind"] == "staff":
            if self.roles is None or principal.get("role") not in self.roles:
                raise Forbidden("Your role may not do this.")
        elif not self.client:
            raise Forbidden("This route is for staff.")
        elif isinstance(self.client, tuple) and not client_may(principal, self.client):
            raise Forbidden("Your user may not do this for the customer.")

    def _load_query(self, request: Request) -> dict:
        if self.query_schema is None:
            return {}
        try:
            return self.query_schema().load(request.args.to_dict(flat=True))
        except ValidationError as err:
            raise from_marshmallow(err, "The query string is not valid.") from None

    def _load_body(self, request: Request) -> dict | None:
        if self.body_schema is None:
            return None
        if self.files and request.mimetype == "multipart/form-data":
            return self._load_multipart(request)
        raw = request.get_data(cache=True)
        if len(raw) > MAX_BODY_BYTES:
            raise TooLarge(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
        if request.mimetype != "application/json":
            if self.files:
                raise UnsupportedType("Send the body as application/json or multipart/form-data.")
            raise UnsupportedType("Send the body as application/json.")
        data = parse_json(raw) if raw else None
        if not isinstance(data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", {"_body": ["Expected a JSON object."]}
            )
        try:
            return self.body_schema().load(data, partial=self.partial)
        except ValidationError as err:
            raise from_marshmallow(err) from None

    def _load_multipart(self, request: Request) -> dict:
        """The form's fields as the body (nested values as JSON text, `name[key]` for a
        dict entry, a repeated name for a list), its files in `request.uploads`."""
        try:
            form, uploads = request.form, request.files
        except ValueError:
            raise ValidationFailed(
                "The multipart body is malformed.", {"_body": ["Not valid multipart."]}
            ) from None
        data: dict = {}
        declared = self.body_schema().fields
        for key in form:
            nested = _BRACKETED.match(key)
            if nested:
                data.setdefault(nested.group(1), {})[nested.group(2)] = form[key]
                continue
            values = form.getlist(key)
            field_obj = declared.get(key) or next(
                (f for f in declared.values() if f.data_key == key), None
            )
            if isinstance(field_obj, fields.List) and not _looks_json(values[0]):
                data[key] = values
            elif isinstance(field_obj, fields.List | fields.Dict | fields.Nested):
                data[key] = parse_json(values[0], key)
            else:
                data[key] = values[0]
        request.uploads = [
            {
                "filename": f.filename or "file",
                "content_type": f.mimetype or "application/octet-stream",
                "content": base64.b64encode(f.read()).decode("ascii"),
            }
            for name in uploads
            for f in uploads.getlist(name)
        ]
        try:
            return self.body_schema().load(data, partial=self.partial)
        except ValidationError as err:
            raise from_marshmallow(err) from None


IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request: Request, principal: dict | None) -> str | None:
    """The request's Idempotency-Key bound to the caller, or None without one: the one
    place a key is scoped, so no route can let one caller's key meet another's."""
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    if raw is None or raw == "":
        return None
    problem = text_problem(raw)
    if problem or len(raw) > MAX_IDEMPOTENCY_KEY:
        problem = problem or f"At most {MAX_IDEMPOTENCY_KEY} characters."
        raise ValidationFailed(
            f"The {IDEMPOTENCY_HEADER} header is not valid: {problem}",
            {IDEMPOTENCY_HEADER: [problem]},
        )
    if not principal:
        caller = "public"
    elif principal["kind"] == "staff":
        caller = f"staff:{principal['staff_id']}"
    else:
        caller = f"client:{principal['customer_id']}"
    return f"{caller}|{raw}"


def answer_customer(call: Call, answer) -> str | None:
    """The customer a kept first answer concerns, kept with it so that the customer's
    erasure takes it (services/infra/application.py): the client who asked, else the
    customer the path or the answer names."""
    principal = call.principal or {}
    if principal.get("kind") != "staff" and principal.get("customer_id"):
        return str(principal["customer_id"])
    if call.path.get("customer_id"):
        return str(call.path["customer_id"])
    if isinstance(answer, dict) and isinstance(answer.get("customer_id"), str):
        return answer["customer_id"]
    return None


def request_digest(route: Route, call: Call) -> str:
    """What identifies a request for its Idempotency-Key: the route, its path values,
    the body as validated, and the files' contents."""
    files = [
        (f["filename"], f["content_type"], hashlib.sha256(f["content"].encode()).hexdigest())
        for f in call.files
    ]
    request = {
        "route": f"{route.method} {route.url}",
        "path": call.path,
        "body": call.body,
        "files": files,
    }
    text = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


_BRACKETED = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[([A-Za-z0-9_.\-]+)\]$")


def _looks_json(value: str) -> bool:
    return value.strip()[:1] in ("[", "{")


# every declared route's staff roles: "METHOD /url" -> roles (None: no staff role)
ROUTE_ROLES: dict[str, tuple[str, ...] | None] = {}


def route(method: str, url: str, **options):
    """Declare a gateway route (see `Route`). The method takes `(self, call)`."""

    def decorate(fn):
        worker = Route.declare(method, url, **options)(fn)
        worker.route_options = (method, url, options)  # for the reference and the rules' tests
        ROUTE_ROLES[f"{method} {url}"] = options.get("roles")
        return worker

    return decorate


def roles_of(spec: str) -> tuple[str, ...]:
    """The staff roles the route `"METHOD /api/v1/..."` allows (the staff panel's pages
    and buttons use them, so a page allows exactly whom its route allows). KeyError for a
    route that is not declared."""
    return ROUTE_ROLES[spec] or ()
