"""Web pages on the gateway's HTTP server, beside the JSON API.

    @page("GET", "/dashboard", client=True)
    def web_dashboard(self, call: PageCall):
        return call.render("client/dashboard.html", balance=...)

A page method gets a `PageCall`: the request, its form, who is logged in (from the
session cookie: the same server-side session a Bearer token names), the page language,
and `services` to call the back-end services as that person, exactly as API routes do.
It answers `call.render(...)` or `call.redirect(...)`. What every page gets here, once:

- The session cookie `hostledger_session` is HttpOnly, SameSite=Lax, and Secure when
  HOSTLEDGER_PUBLIC_URL is an https:// address (the site is served over HTTPS).
- Every request that is not GET/HEAD carries the CSRF token of its session in the
  hidden form field `csrf_token` (pages without a session: of a random `hostledger_csrf`
  cookie), and none comes from another origin: else 403, before the page runs.
- Content-Security-Policy with scripts and styles from this site only (no inline
  script or style), no framing (frame-ancestors 'none', X-Frame-Options DENY),
  Referrer-Policy same-origin.
- The language: the client's own setting, else the browser's Accept-Language.
- A service error the page does not handle itself becomes a page in that language: 401
  sends to the login page (and back afterwards), 403, 404, 429 and 503 say so.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import eventlet
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup
from nameko.exceptions import UnknownService
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from contracts.customers import is_client_area_path
from contracts.errors import HostledgerError, Unauthorized, ValidationFailed
from contracts.fields import text_problem
from gateway.http import (
    SAFE_METHODS,
    SESSION_COOKIE,
    GatewayEntrypoint,
    Services,
    client_address,
    client_may,
    csrf_token,
    open_before_two_factor_setup,
    roles_of,
    same_site,
    two_factor_setup_refusal,
)
from gateway.web import i18n
from gateway.web.i18n import N_
from services.infra.context import REQUEST_HEADER
from services.infra.inbox import is_transient
from services.infra.settings import settings

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
# a browser without a session gets one of these, so that its forms carry a CSRF token too
PRE_SESSION_COOKIE = "hostledger_csrf"
CSRF_FIELD = "csrf_token"
LOGIN_URL = "/login"
HOME_URL = "/dashboard"
# the staff panel
STAFF_LOGIN_URL = "/staff/login"
STAFF_HOME_URL = "/staff/"
# the staff member's own account: where two-factor authentication is set up
STAFF_ACCOUNT_URL = "/staff/account"
# the customer the staff panel's lists are filtered by, until cleared (a customer id)
STAFF_FILTER_COOKIE = "hostledger_staff_customer"
ALL_STAFF_ROLES = ("admin", "support", "billing", "auditor")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)


def served_over_https() -> bool:
    """The site's public address (HOSTLEDGER_PUBLIC_URL) is https: cookies are Secure."""
    return settings().public_url.lower().startswith("https://")


# -- templates ---------------------------------------------------------------------------


@functools.cache
def static_version(name: str) -> str:
    """A digest of a static file, in its URL, so a browser may keep it for a year."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"/static/{name}?v={static_version(name)}"


@pass_context
def _gettext(context, message: str) -> str:
    return context["translations"].gettext(message)


@pass_context
def _ngettext(context, singular: str, plural: str, n: int) -> str:
    return context["translations"].ngettext(singular, plural, n)


@pass_context
def _pgettext(context, ctxt: str, message: str) -> str:
    return context["translations"].pgettext(ctxt, message)


@pass_context
def _npgettext(context, ctxt: str, singular: str, plural: str, n: int) -> str:
    return context["translations"].npgettext(ctxt, singular, plural, n)


def _formatter(fn):
    """A template filter that writes a value in the page's language."""

    @pass_context
    def write(context, value, *args, **kwargs):
        return fn(value, context["language"], *args, **kwargs)

    return write


# what a customer's erased personal value reads as (services.infra.personal_data)
ERASED = "[erased]"


@pass_context
def _personal(context, value, empty: str = "—", plain: bool = False):
    """A customer's field as staff pages show it: an erased value as the translated word
    "erased", muted (`plain`: the word alone, for a page title); none as `empty`."""
    if value == ERASED:
        label = context["translations"].gettext("erased")
        return label if plain else Markup('<span class="muted erased">{}</span>').format(label)
    if value is None or value == "":
        return empty
    return value


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(WEB_DIR / "templates"),
        autoescape=select_autoescape(default=True),
        extensions=["jinja2.ext.i18n", "jinja2.ext.do"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # the catalogue comes with each page's context: one environment serves every language
    env.install_gettext_callables(
        _gettext, _ngettext, newstyle=True, pgettext=_pgettext, npgettext=_npgettext
    )
    env.globals.update(static=static_url, language_names=i18n.LANGUAGE_NAMES)
    env.filters.update(
        money=_formatter(i18n.money),
        date=_formatter(i18n.date),
        datetime=_formatter(i18n.datetime),
        number=_formatter(i18n.number),
        personal=_personal,
    )
    env.tests["erased"] = lambda value: value == ERASED
    return env


templates = _environment()


def render(
    template: str, language: str, status: int = 200, headers: dict | None = None, **context
) -> Response:
    """A page in `language`, with the headers every page has."""
    translations = i18n.translations(language)
    html = templates.get_template(template).render(
        language=language, translations=translations, **context
    )
    response = Response(html, status=status, mimetype="text/html", headers=headers)
    return with_page_headers(response)


def with_page_headers(response: Response) -> Response:
    h = response.headers
    h["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "same-origin"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h.setdefault("Cache-Control", "no-store")
    h["Vary"] = "Cookie, Accept-Language"
    if served_over_https():
        h["Strict-Transport-Security"] = "max-age=31536000"
    return response


def page_not_found(request: Request) -> Response:
    """A browser's request for a page that is not there (no session is looked up)."""
    language = i18n.negotiate(request)
    return error_page(language, 404, request)


# translated in the template (N_ marks them for the catalogue)
ERROR_TITLES = {
    400: N_("This request is not valid"),
    403: N_("You may not see this page"),
    404: N_("There is no such page"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong on our side"),
    503: N_("Try again in a moment"),
}


def error_page(language: str, status: int, request: Request, detail: str | None = None, **context):
    """A page that says what went wrong, in the person's language. `detail` is a message
    already in that language; `context`: what else error.html may show (`link`: (address,
    words) of the way on; `return_to_staff`: the button back to the staff panel, with
    `csrf_token`)."""
    status = status if status in ERROR_TITLES else 500
    headers = {"Retry-After": "30"} if status in (429, 503) else None
    return render(
        "error.html",
        language,
        status=status,
        headers=headers,
        status_code=status,
        title_msgid=ERROR_TITLES[status],
        detail=detail,
        path=request.path,
        **context,
    )


# The services' own messages (contracts/, marshmallow) a page shows translated; others
# become "Check this value". Add a service message here when a page meets it.
SERVICE_MESSAGES = {
    N_("Missing data for required field."),
    N_("Not a valid email address."),
    N_("Not a valid integer."),
    N_("Not a valid number."),
    N_("Not a valid date."),
    N_("Not a valid UUID."),
    N_("Field may not be null."),
    N_("Unknown field."),
}


# -- the page entrypoint ----------------------------------------------------------------


class FormErrors(dict):
    """`{"field": ["message", ...]}`; `"_form"` for what concerns no one field. Messages
    are in the page's language."""

    def add(self, name: str, message: str) -> FormErrors:
        self.setdefault(name, []).append(message)
        return self


@dataclass
class PageCall:
    request: Request
    services: Services
    language: str = i18n.LANGUAGES[0]
    # the session's principal, as `customers.resolve_session` answers (None: nobody)
    principal: dict | None = None
    # the logged-in client's customer record (client pages)
    customer: dict | None = None
    token: str | None = None
    # cookies the answer sets: name -> value (None: delete)
    cookies: dict = field(default_factory=dict)
    _csrf_seed: str | None = None
    # the logged-in client person's own style and favourite pages (`personal`)
    _personal: dict | None = None
    # the staff panel's customer filter (False: not read yet)
    _filter: str | bool | None = False
    _filtered: dict | bool | None = False

    # -- who and where --

    @property
    def customer_id(self) -> str:
        return self.principal["customer_id"]

    @property
    def path(self) -> dict:
        """The values of the page's URL (`/invoices/<uuid:invoice_id>`)."""
        return getattr(self.request, "path_values", None) or {}

    @property
    def address(self) -> str | None:
        return client_address(self.request)

    def may(self, *permissions: str) -> bool:
        """The client's user holds one of `permissions` (the API's rule: `client_may`)."""
        return self.principal is not None and client_may(self.principal, permissions)

    @property
    def staff_id(self) -> str:
        return self.principal["staff_id"]

    def can(self, spec: str) -> bool:
        """The logged-in staff member's role may call the API route `"METHOD /api/v1/..."`
        (pages show an action only to whom its route allows it)."""
        who = self.principal or {}
        return who.get("kind") == "staff" and who.get("role") in roles_of(spec)

    # -- the staff panel's customer filter --

    def customer_filter(self) -> str | None:
        """The customer the staff panel's lists show, or None for all. `?customer=<id>` on
        any staff page sets it (kept in a cookie while staff move between lists),
        `?customer=` clears it."""
        if self._filter is not False:
            return self._filter
        asked = self.request.args.get("customer")
        if asked is not None:
            chosen = _uuid_or_none(asked)
            self.cookies[STAFF_FILTER_COOKIE] = chosen
        else:
            chosen = _uuid_or_none(self.request.cookies.get(STAFF_FILTER_COOKIE, ""))
        self._filter = chosen
        return chosen

    @property
    def filtered_customer(self) -> dict | None:
        """The filter's customer record ({"id", "number", "name", ...}), asked once; None
        without a filter, or when that customer is not there (the filter is then cleared)."""
        if self._filtered is False:
            self._filtered = None
            chosen = self.customer_filter()
            if chosen is not None:
                try:
                    self._filtered = self.services.customers.get_customer(chosen)
                except HostledgerError:
                    self.cookies[STAFF_FILTER_COOKIE] = None
                    self._filter = None
        return self._filtered

    @property
    def csrf(self) -> str:
        return csrf_token(self._csrf_seed) if self._csrf_seed else ""

    # -- language --

    def gettext(self, message: str, **variables) -> str:
        text = i18n.translations(self.language).gettext(message)
        return text % variables if variables else text

    def ngettext(self, singular: str, plural: str, n: int, **variables) -> str:
        text = i18n.translations(self.language).ngettext(singular, plural, n)
        return text % dict(variables, num=n)

    # -- the form --

    def form(self, *names: str) -> tuple[dict, FormErrors]:
        """The posted fields `names` as text (stripped; passwords untouched), and errors
        for any that is not text a person could have typed."""
        values, errors = {}, FormErrors()
        for name in names:
            value = self.request.form.get(name, "")
            if "password" not in name:
                value = value.strip()
            problem = text_problem(value)
            if problem:
                errors.add(name, self.gettext("Use letters, digits and punctuation only."))
                value = ""
            values[name] = value
        return values, errors

    def service_errors(
        self, exc: ValidationFailed, errors: FormErrors | None = None, messages: dict | None = None
    ) -> FormErrors:
        """A service's refusal as errors next to the fields it names, in the page's
        language: `messages` gives a field's own sentence (a msgid marked with N_); else
        the service's message when the catalogue has it (SERVICE_MESSAGES), else a
        sentence that asks the person to check that field. A field the form does not
        show lands under `_form`."""
        errors = errors if errors is not None else FormErrors()
        messages = messages or {}
        shown = set(self.request.form.keys()) | set(messages)
        for name, problems in (exc.fields or {}).items():
            top = str(name).split(".")[0]
            key = top if top in shown else "_form"
            if top in messages:
                errors.add(key, self.gettext(messages[top]))
                continue
            for problem in problems if isinstance(problems, list) else [problems]:
                text = problem if isinstance(problem, str) else None
                if text in SERVICE_MESSAGES:
                    errors.add(key, self.gettext(text))
                else:
                    errors.add(key, self.gettext("Check this value: it was not accepted."))
        if not errors:
            errors.add("_form", self.gettext("Check this value: it was not accepted."))
        return errors

    def page_args(self, page_size: int = 20) -> tuple[int, int]:
        """`?page=` of a paged list (1 when absent or not a page number), and its size."""
        try:
            number = int(self.request.args.get("page", "1"))
        except ValueError:
            number = 1
        return (number if 1 <= number <= 10_000 else 1), page_size

    # -- answers --

    def render(self, template: str, status: int = 200, **context) -> Response:
        personal = self.personal
        theme = personal.get("theme")
        context.setdefault("theme", theme if theme in ("light", "dark") else None)
        context.setdefault("favourites", personal.get("favourites") or [])
        context.setdefault("pinnable", bool(personal) and is_client_area_path(self.request.path))
        # the logged-in client's record, unless the page shows a customer of its own
        context.setdefault("customer", self.customer)
        if (self.principal or {}).get("kind") == "staff":
            context.setdefault("can", self.can)
            context.setdefault("filtered_customer", self.filtered_customer)
        response = render(
            template,
            self.language,
            status=status,
            principal=self.principal,
            csrf_token=self.csrf,
            current_path=self.request.path,
            **context,
        )
        return self._with_cookies(response)

    @property
    def personal(self) -> dict:
        """The logged-in client person's own settings, {"theme", "favourites"} (each user
        of a client has its own; `{}` for anyone else), asked once per request."""
        if self._personal is None:
            self._personal = {}
            who = self.principal or {}
            if who.get("kind") == "client" and who.get("customer_id"):
                self._personal = self.services.customers.personal_settings(
                    who["customer_id"], who.get("user_id")
                )
        return self._personal

    def redirect(self, url: str, **query) -> Response:
        """303 See Other to a page of this site (a form's answer: reloading it does not
        post again)."""
        target = url + ("?" + urlencode(query) if query else "")
        response = Response(status=303, headers={"Location": target})
        return self._with_cookies(with_page_headers(response))

    def start_session(self, token: str) -> None:
        self.cookies[SESSION_COOKIE] = token
        self.cookies[PRE_SESSION_COOKIE] = None
        self._csrf_seed = token

    def end_session(self) -> None:
        self.cookies[SESSION_COOKIE] = None

    def _with_cookies(self, response: Response) -> Response:
        secure = served_over_https()
        for name, value in self.cookies.items():
            if value is None:
                response.delete_cookie(name, path="/", secure=secure, httponly=True, samesite="Lax")
            else:
                response.set_cookie(
                    name, value, path="/", secure=secure, httponly=True, samesite="Lax"
                )
        return response


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


def safe_next(url: str | None) -> str | None:
    """A path on this site to go back to after logging in, or None (never elsewhere)."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url:
        return None
    if any(ord(c) < 0x20 for c in url):
        return None
    return url


class Page(GatewayEntrypoint):
    def __init__(
        self,
        method: str,
        url: str,
        client: bool = False,
        permissions: tuple[str, ...] | None = None,
        session: bool = True,
        staff: bool | str = False,
        **kwargs,
    ):
        """`client`: only for a logged-in client (anyone else goes to the login page);
        `permissions`: a client's user needs one of them (or `full`); `session`: False
        for answers that need no session at all (static files): no cookie is read.
        `staff`: only for a logged-in staff member (anyone else goes to the staff login
        page): True for every role, or the API route `"METHOD /api/v1/..."` whose roles the
        page allows (a page that shows or does what a route does allows whom it allows)."""
        self.client = client
        self.permissions = permissions
        self.session = session
        self.staff = staff
        super().__init__(method, url, **kwargs)

    def setup(self):
        super().setup()
        self.server.page_not_found = page_not_found

    def response_from_exception(self, exc):
        log.error("a page failed outside its worker", exc_info=exc)
        return Response("Something went wrong on our side.", status=500, mimetype="text/plain")

    def run(self, service, method, request: Request) -> Response:
        """In the worker: session, CSRF, language, then the page; errors as pages."""
        call = PageCall(request=request, services=service.services)
        call.language = i18n.negotiate(request)
        try:
            with eventlet.Timeout(self.start_deadline(call.services)):
                if not self.session:
                    return method(service, call)
                self._csrf_seed(call)
                if request.method not in SAFE_METHODS:
                    if not self._csrf_ok(call):
                        return call._with_cookies(
                            error_page(
                                call.language,
                                403,
                                request,
                                call.gettext(
                                    "This form has expired or came from another site. Go back, "
                                    "reload the page and send it again."
                                ),
                            )
                        )
                    call.services.context[REQUEST_HEADER] = f"request|{uuid.uuid4()}"
                self._authenticate(call)
                if self.client and (call.principal is None or call.principal["kind"] != "client"):
                    if call.principal is not None:  # a staff session: not the client area
                        return call._with_cookies(
                            error_page(
                                call.language,
                                403,
                                request,
                                call.gettext(
                                    "This is the client area; staff have their own panel."
                                ),
                            )
                        )
                    return call.redirect(LOGIN_URL, next=request.full_path.rstrip("?"))
                if self.permissions and not call.may(*self.permissions):
                    return call._with_cookies(error_page(call.language, 403, request))
                if self.client or self.permissions:
                    refused = self._acting_refusal(call)
                    if refused is not None:
                        return refused
                if self.staff:
                    refused = self._staff_refusal(call)
                    if refused is not None:
                        return refused
                return method(service, call)
        except Unauthorized:
            call.end_session()
            return call.redirect(LOGIN_URL, next=request.full_path.rstrip("?"))
        except HostledgerError as exc:
            return call._with_cookies(error_page(call.language, exc.status, request))
        except HTTPException as exc:
            return call._with_cookies(error_page(call.language, exc.code or 500, request))
        except (UnknownService, eventlet.Timeout):
            return call._with_cookies(error_page(call.language, 503, request))
        except Exception as exc:
            if is_transient(exc):  # the broker or a database away for a moment
                log.warning("a page met a transient failure: %s: %s", type(exc).__name__, exc)
                return call._with_cookies(error_page(call.language, 503, request))
            log.exception("unhandled error on page %s %s", request.method, request.path)
            return call._with_cookies(error_page(call.language, 500, request))

    def _staff_refusal(self, call: PageCall) -> Response | None:
        """None when the session is a staff member's whose role the page allows; else
        the answer: the staff login page, or 403 saying why."""
        principal, request = call.principal, call.request
        if principal is None:
            return call.redirect(STAFF_LOGIN_URL, next=request.full_path.rstrip("?"))
        if principal["kind"] != "staff":
            if principal.get("impersonator"):
                message = call.gettext(
                    "You are in a client's area: use “Return to the staff panel” at the top "
                    "of the client's pages first."
                )
            else:
                message = call.gettext("This is the staff panel; clients have their own area.")
            return call._with_cookies(error_page(call.language, 403, request, message))
        if two_factor_setup_refusal(principal) is not None and not self.open_before_setup:
            # the staff policy: two-factor authentication first, on the member's own page
            if request.method in SAFE_METHODS:
                return call.redirect(STAFF_ACCOUNT_URL)
            message = call.gettext(
                "Your administrator requires two-factor authentication for every staff "
                "member. Set it up on your account page first."
            )
            link = (STAFF_ACCOUNT_URL, call.gettext("Set up two-factor authentication"))
            return call._with_cookies(error_page(call.language, 403, request, message, link=link))
        roles = ALL_STAFF_ROLES if self.staff is True else roles_of(self.staff)
        if principal.get("role") not in roles:
            return call._with_cookies(
                error_page(
                    call.language,
                    403,
                    request,
                    call.gettext("Your role in the staff may not see or do this."),
                )
            )
        return None

    @property
    def open_before_setup(self) -> bool:
        """A staff page a member reaches while two-factor authentication is mandatory and
        theirs is not set up: one whose route the API leaves open then (their own
        account, setting it up)."""
        if not isinstance(self.staff, str):
            return False
        return open_before_two_factor_setup(self.staff.split(" ", 1)[1])

    def _acting_refusal(self, call: PageCall) -> Response | None:
        """A client's area entered by a staff member who must set up two-factor
        authentication first (the staff policy) answers 403, with the way back to the
        staff panel; else None."""
        if two_factor_setup_refusal(call.principal) is None:
            return None
        message = call.gettext(
            "Your administrator requires two-factor authentication for every staff member. "
            "Return to the staff panel and set it up before acting in a client's area."
        )
        return call._with_cookies(
            error_page(
                call.language,
                403,
                call.request,
                message,
                return_to_staff=True,
                csrf_token=call.csrf,
            )
        )

    def _csrf_seed(self, call: PageCall) -> None:
        """What this browser's CSRF token is bound to: its session cookie, else its
        pre-session cookie (made now when it has neither)."""
        call.token = call.request.cookies.get(SESSION_COOKIE) or None
        if call.token is not None:
            call._csrf_seed = call.token
        else:
            self._pre_session_seed(call)

    def _pre_session_seed(self, call: PageCall) -> None:
        seed = call.request.cookies.get(PRE_SESSION_COOKIE) or None
        if seed is None:
            seed = secrets.token_urlsafe(32)
            call.cookies[PRE_SESSION_COOKIE] = seed
        call._csrf_seed = seed

    def _csrf_ok(self, call: PageCall) -> bool:
        request = call.request
        origin = request.headers.get("Origin")
        if origin is not None and not same_site(request):
            return False
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            return False
        sent = request.form.get(CSRF_FIELD, "")
        return bool(sent) and hmac.compare_digest(sent, call.csrf)

    def _authenticate(self, call: PageCall) -> None:
        if call.token is None:
            return
        try:
            # who, and for a client its record and the person's own settings, in one call
            session = call.services.customers.page_session(call.token)
        except Unauthorized:
            # an ended or expired session: forget the cookie, carry on as nobody (whose
            # forms the next request takes without that cookie)
            call.end_session()
            call.token = None
            self._pre_session_seed(call)
            return
        principal = call.principal = session["principal"]
        self.act_for(call.request, call.services, principal)
        if principal["kind"] == "client":
            call.customer = session["customer"]
            call._personal = session["personal"]
            call.language = i18n.negotiate(call.request, call.customer.get("language"))


def page(method: str, url: str, **options):
    """Declare a web page (see `Page`). The method takes `(self, call: PageCall)`."""
    return Page.declare(method, url, **options)
