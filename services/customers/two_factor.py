"""Two-factor authentication (TOTP, RFC 6238) of the accounts one logs in to: a
customer, a customer's user, a staff member. Mixed into the Customers application.

    enrol        a new secret for the logged-in account (not in force yet): its
                 otpauth:// address and QR code to scan; again, a new one
    confirm      a current code of that secret turns it on: one-time recovery codes,
                 answered once (only their hashes are kept)
    disable      the password and a current code (or a recovery code) turn it off
                 (never a staff member's while the staff policy makes it mandatory)
    reset        staff (administrators, support) turn a client's off, saying why
    login        once it is on, a login needs a current code or a recovery code too:
                 without one, 401 two_factor_required (and, for the web's second
                 step, a short-lived challenge that stands for the password)

Secrets never go into events: the secret, when the last code was accepted and the
recovery codes' hashes live in the tables below, written in the same transaction as
the event that turns it on or off (a save's `also`); the events (domain.TwoFactorAccount)
carry who did it, when, and why. A wrong code counts as a wrong password does (the
login limits of application.py); a code is accepted for one step either side of now,
by the injectable clock, and never twice (each accepted step is kept, and a code for
that step or an earlier one is refused).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import DataError, IntegrityError

from contracts.errors import (
    Conflict,
    Forbidden,
    InvalidCredentials,
    NotFound,
    TwoFactorRequired,
    Unauthorized,
    ValidationFailed,
)
from services.customers import totp
from services.customers.domain import (
    Customer,
    CustomerUser,
    Project,
    StaffMember,
    TwoFactorAccount,
)
from services.infra import clock, context
from services.infra.context import Actor

log = logging.getLogger(__name__)

ISSUER = "hostledger"
# how long the web's second step may follow the password, and how many wrong codes it takes
CHALLENGE_LIFETIME = timedelta(minutes=10)
CHALLENGE_TRIES = 5
# staff who may reset a client's two-factor authentication
RESET_ROLES = ("admin", "support")
# a staff member's own, while the staff policy makes it mandatory: it stays on
MANDATORY_FOR_STAFF = (
    "An administrator has made two-factor authentication mandatory for staff: yours "
    "cannot be turned off while it is."
)
MANDATORY_FOR_STAFF_FIELD = "Mandatory for staff: it cannot be turned off."

SCHEMA = (
    # one row per account that started enrolling: the secret (confirmed_at NULL until a
    # code of it was confirmed) and the last time step a code was accepted for
    """
    CREATE TABLE IF NOT EXISTS two_factor (
        owner_id uuid PRIMARY KEY,
        secret text NOT NULL,
        created_at timestamptz NOT NULL,
        confirmed_at timestamptz,
        last_step bigint NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS two_factor_recovery (
        code_hash text PRIMARY KEY,
        owner_id uuid NOT NULL,
        used_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS two_factor_recovery_owner ON two_factor_recovery (owner_id)",
    # a login whose password was right, waiting for its code (the web's second step):
    # only the challenge token's hash is kept
    """
    CREATE TABLE IF NOT EXISTS login_challenges (
        token_hash text PRIMARY KEY,
        owner_id uuid NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        failures integer NOT NULL DEFAULT 0,
        used_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS login_challenges_expiry ON login_challenges (expires_at)",
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _wrong_code() -> InvalidCredentials:
    return InvalidCredentials(
        "The code is wrong, too old, or was used already.",
        {"otp": ["Not a current code of your app, nor an unused recovery code."]},
    )


class TwoFactorCommands:
    """Mixed into services.customers.application.Customers (which provides the sessions,
    the login limits and the repository used here)."""

    # -- whose account ---------------------------------------------------------------------

    def _session_account(self, token: str, changing: bool) -> TwoFactorAccount:
        """The account the session `token` is logged in to. Staff acting in a client's
        panel may look, not change it (`changing`)."""
        return self._session_account_and_row(token, changing)[0]

    def _session_account_and_row(self, token: str, changing: bool):
        row = self._session_row(token)
        if changing and row["impersonator_id"]:
            raise Forbidden(
                "While acting in a client's panel, staff cannot change the client's "
                "two-factor authentication."
            )
        try:
            if row["kind"] == "staff":
                return self.get_staff(row["staff_id"]), row
            if row["user_id"]:
                return self._get(row["user_id"], CustomerUser, "user"), row
            return self.get_customer(row["customer_id"]), row
        except NotFound:
            raise Unauthorized("The session's account no longer exists.") from None

    def _issuer(self, account: TwoFactorAccount) -> str:
        """The name the app lists the account under: the customer's project (brand)."""
        customer_id = getattr(account, "customer_id", None)
        customer = self.get_customer_or_none(customer_id) if customer_id else account
        project_id = getattr(customer, "project_id", None)
        if project_id:
            try:
                project = self.repository.get(project_id)
            except AggregateNotFoundError:
                project = None
            if isinstance(project, Project):
                return project.name
        return ISSUER

    def _secret_row(self, owner_id: UUID) -> dict | None:
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT secret, created_at, confirmed_at, last_step FROM two_factor"
                " WHERE owner_id = %s",
                (owner_id,),
            )
            return curs.fetchone()

    def _recovery_left(self, owner_id: UUID) -> int:
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT count(*) AS n FROM two_factor_recovery WHERE owner_id = %s"
                " AND used_at IS NULL",
                (owner_id,),
            )
            return curs.fetchone()["n"]

    def _enrolment(self, account: TwoFactorAccount, secret: str) -> dict:
        uri = totp.provisioning_uri(secret, account.username, self._issuer(account))
        return {
            "secret": secret,
            "otpauth_uri": uri,
            "qr_code": totp.qr_code(uri),
            "digits": totp.DIGITS,
            "period": totp.PERIOD,
            "algorithm": totp.ALGORITHM,
        }

    # -- the account holder's commands -------------------------------------------------------

    def two_factor_status(self, token: str, with_secret: bool = False) -> dict:
        """Whether it is on, how many recovery codes are left, and whether an enrolment
        waits for its confirmation (with `with_secret`: that enrolment's secret, address
        and QR code, for the page that shows them again; never while staff act)."""
        account, session = self._session_account_and_row(token, changing=False)
        row = self._secret_row(account.id)
        on = bool(account.two_factor)
        pending = not on and row is not None and row["confirmed_at"] is None
        answer = {
            "enabled": on,
            "pending": pending,
            "recovery_codes_left": self._recovery_left(account.id) if on else 0,
            "enabled_at": None,
            "enrolment": None,
        }
        if on and row is not None and row["confirmed_at"] is not None:
            answer["enabled_at"] = clock.isoformat(row["confirmed_at"])
        if pending and with_secret and not session["impersonator_id"]:
            answer["enrolment"] = self._enrolment(account, row["secret"])
        return answer

    def enrol_two_factor(self, token: str) -> dict:
        """A new secret for the session's account, in force once a code of it is
        confirmed. Enrolling again replaces a secret not confirmed yet."""
        account = self._session_account(token, changing=True)
        if account.two_factor:
            raise Conflict(
                "Two-factor authentication is on already: turn it off first to use "
                "another app or phone."
            )
        secret = totp.new_secret()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO two_factor AS t (owner_id, secret, created_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (owner_id) DO UPDATE SET secret = excluded.secret,"
                " created_at = excluded.created_at, last_step = 0"
                " WHERE t.confirmed_at IS NULL RETURNING owner_id",
                (account.id, secret, clock.now()),
            )
            written = curs.fetchone() is not None
        if not written:
            raise Conflict("Two-factor authentication was turned on meanwhile.")
        return self._enrolment(account, secret)

    def confirm_two_factor(self, token: str, code: str) -> dict:
        """A current code of the enrolled secret turns it on; the answer carries the
        recovery codes, shown this once. A wrong code counts as a wrong password."""
        account = self._session_account(token, changing=True)
        if account.two_factor:
            raise Conflict("Two-factor authentication is on already.")
        row = self._secret_row(account.id)
        if row is None or row["confirmed_at"] is not None:
            raise Conflict(
                "Nothing to confirm: enrol first (POST /api/v1/auth/2fa/enrol).",
                {"otp": ["Enrol first."]},
            )
        keys = {"pair": f"pair:{account.id}|2fa", "account": f"account:{account.id}"}
        self._reserve(keys)
        step = totp.matching_step(row["secret"], code, clock.now())
        if step is None:
            raise ValidationFailed(
                "The code is not the current code of this secret: check the phone's "
                "clock, or wait for the next code.",
                {"otp": ["Not the current code of the app."]},
            )
        self._give_back(keys)
        codes = totp.new_recovery_codes()
        account.enable_two_factor(recovery_codes=len(codes))
        also = [
            # the secret confirmed is still the one enrolled (not replaced meanwhile): else
            # a division by zero undoes the whole save
            (
                "WITH confirmed AS (UPDATE two_factor SET confirmed_at = %s, last_step = %s"
                " WHERE owner_id = %s AND secret = %s AND confirmed_at IS NULL RETURNING 1)"
                " SELECT 1 / (SELECT count(*) FROM confirmed)",
                (clock.now(), step, account.id, row["secret"]),
            ),
            *self._new_recovery_statements(account.id, codes),
        ]
        try:
            self.save(account, also=also)
        except (IntegrityError, DataError):
            raise Conflict(
                "Two-factor authentication changed meanwhile; look at it again."
            ) from None
        return {"enabled": True, "recovery_codes": codes}

    @staticmethod
    def _new_recovery_statements(owner_id: UUID, codes: list[str]) -> list[tuple]:
        return [
            ("DELETE FROM two_factor_recovery WHERE owner_id = %s", (owner_id,)),
            (
                "INSERT INTO two_factor_recovery (code_hash, owner_id)"
                " SELECT unnest(%s::text[]), %s",
                ([totp.recovery_hash(c) for c in codes], owner_id),
            ),
        ]

    @staticmethod
    def _forget_statements(owner_id: UUID) -> list[tuple]:
        return [
            ("DELETE FROM two_factor WHERE owner_id = %s", (owner_id,)),
            ("DELETE FROM two_factor_recovery WHERE owner_id = %s", (owner_id,)),
            ("DELETE FROM login_challenges WHERE owner_id = %s", (owner_id,)),
        ]

    def disable_two_factor(
        self, token: str, password: str, otp: str | None, recovery_code: str | None
    ) -> dict:
        """The password and a current code (or a recovery code) turn it off. Both count
        as a login's do when wrong. A staff member's stays on while the staff policy makes
        it mandatory (409, naming `two_factor`)."""
        account = self._session_account(token, changing=True)
        if not account.two_factor:
            raise Conflict("Two-factor authentication is not on.")
        if isinstance(account, StaffMember) and self.staff_policy()["two_factor_required"]:
            # it would lock them out at once (staff_accounts.py: the policy); before the
            # password, which is neither checked nor counted then
            raise Conflict(MANDATORY_FOR_STAFF, {"two_factor": [MANDATORY_FOR_STAFF_FIELD]})
        keys = {"pair": f"pair:{account.id}|2fa", "account": f"account:{account.id}"}
        self._reserve(keys)
        if not self.password_matches(account, password):
            raise InvalidCredentials(
                "The password is wrong.", {"password": ["Not the account's password."]}
            )
        if not self._second_factor_ok(account, otp, recovery_code, count_use=False):
            raise _wrong_code()
        self._give_back(keys)
        account.disable_two_factor()
        self.save(account, also=self._forget_statements(account.id))
        return {"enabled": False}

    # -- staff ----------------------------------------------------------------------------------

    def reset_two_factor(self, customer_id: UUID, reason: str, user_id: UUID | None) -> dict:
        """Staff (administrators, support) turn off a client's two-factor authentication,
        or that of one of its users: recorded with who did it and why."""
        actor = context.current.actor
        member = None
        if actor is not None and actor.kind == "staff":
            try:
                member = self.get_staff(UUID(str(actor.id)))
            except (NotFound, ValueError):
                member = None
        if member is None or not member.active or member.role not in RESET_ROLES:
            raise Forbidden("Only administrators and support staff may reset it.")
        customer = self.get_customer(customer_id)
        account: TwoFactorAccount = customer
        if user_id is not None:
            user = self._get(user_id, CustomerUser, "user")
            if user.customer_id != customer.id or user.removed:
                raise NotFound("No such user.")
            account = user
        if not account.two_factor:
            row = self._secret_row(account.id)
            if row is not None:  # an enrolment never confirmed: nothing was on
                with self.datastore.transaction(commit=True) as curs:
                    curs.execute(
                        "DELETE FROM two_factor WHERE owner_id = %s AND confirmed_at IS NULL",
                        (account.id,),
                    )
            raise Conflict("Two-factor authentication is not on for this account.")
        account.reset_two_factor(reason=reason)
        self.save(account, also=self._forget_statements(account.id))
        return {
            "customer_id": str(customer.id),
            "user_id": str(user_id) if user_id else None,
            "enabled": False,
        }

    # -- logging in -----------------------------------------------------------------------------

    def _second_factor(
        self,
        account: TwoFactorAccount,
        keys: dict[str, str],
        otp: str | None,
        recovery_code: str | None,
        challenge: bool,
    ) -> None:
        """The login of an account with two-factor authentication on, once its password
        was right: its code (or a recovery code), else 401 two_factor_required (the
        attempt given back: the password was right). A wrong code stays counted."""
        if not (otp or recovery_code):
            self._give_back(keys)
            raise TwoFactorRequired(
                "Two-factor authentication is on for this account: send the app's current "
                "code as `otp` (or a recovery code as `otp` or `recovery_code`).",
                {"otp": ["Required: the current code of the app."]},
                challenge=self._new_challenge(account.id) if challenge else None,
            )
        if not self._second_factor_ok(account, otp, recovery_code):
            raise _wrong_code()

    def _second_factor_ok(
        self,
        account: TwoFactorAccount,
        otp: str | None,
        recovery_code: str | None,
        count_use: bool = True,
    ) -> bool:
        """A current code of the app not used before (`otp`), or an unused recovery code
        (`recovery_code`, or `otp` when it is not six digits): True, and it is used up."""
        if otp and totp.looks_like_code(otp):
            return self._use_code(account.id, otp)
        code = recovery_code or otp
        return bool(code) and self._use_recovery_code(account, code, count_use)

    def _use_code(self, owner_id: UUID, code: str) -> bool:
        row = self._secret_row(owner_id)
        if row is None or row["confirmed_at"] is None:
            return False
        step = totp.matching_step(row["secret"], code, clock.now(), after=row["last_step"])
        if step is None:
            return False
        # a code is accepted once: the step it was made for is kept, atomically
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE two_factor SET last_step = %s WHERE owner_id = %s AND last_step < %s"
                " AND confirmed_at IS NOT NULL RETURNING owner_id",
                (step, owner_id, step),
            )
            return curs.fetchone() is not None

    def _use_recovery_code(self, account: TwoFactorAccount, code: str, count_use: bool) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE two_factor_recovery SET used_at = %s WHERE code_hash = %s"
                " AND owner_id = %s AND used_at IS NULL RETURNING owner_id",
                (clock.now(), totp.recovery_hash(code), account.id),
            )
            if curs.fetchone() is None:
                return False
        if count_use:
            self._record_recovery_use(account)
        return True

    def _record_recovery_use(self, account: TwoFactorAccount) -> None:
        """An event says a recovery code was used (by the account holder), and how many
        are left; another change of the account meanwhile: read it again and record."""
        if isinstance(account, StaffMember):
            actor = Actor("staff", str(account.id))
        else:
            actor = Actor("client", str(getattr(account, "customer_id", None) or account.id))
        for _attempt in range(3):
            account.use_recovery_code(remaining=self._recovery_left(account.id))
            try:
                with context.acting(actor):
                    self.save(account)
                return
            except IntegrityError:
                account = self.repository.get(account.id)
        log.warning("the use of a recovery code of %s was not recorded", account.id)

    def _new_challenge(self, owner_id: UUID) -> str:
        token = secrets.token_urlsafe(32)
        now = clock.now()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("DELETE FROM login_challenges WHERE expires_at < %s", (now,))
            curs.execute(
                "INSERT INTO login_challenges (token_hash, owner_id, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s)",
                (_hash(token), owner_id, now, now + CHALLENGE_LIFETIME),
            )
        return token

    def login_second_step(
        self, challenge: str, otp: str | None, recovery_code: str | None, address: str | None
    ) -> dict:
        """The web's second step: the challenge a right password was answered with, and
        the code. A wrong code counts as a wrong password (and the challenge takes a few
        only); an expired or used challenge is 401: log in again."""
        now = clock.now()
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT owner_id FROM login_challenges WHERE token_hash = %s AND used_at IS NULL"
                " AND expires_at > %s AND failures < %s",
                (_hash(challenge), now, CHALLENGE_TRIES),
            )
            row = curs.fetchone()
        if row is None:
            raise Unauthorized("This login has expired: give the password again.")
        account = self._login_account(row["owner_id"])
        if account is None:
            raise Unauthorized("This login has expired: give the password again.")
        keys = self._login_keys(str(account.id), address)
        self._reserve(keys)
        if account.two_factor and not self._second_factor_ok(account, otp, recovery_code):
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(
                    "UPDATE login_challenges SET failures = failures + 1 WHERE token_hash = %s",
                    (_hash(challenge),),
                )
            raise _wrong_code()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE login_challenges SET used_at = %s WHERE token_hash = %s"
                " AND used_at IS NULL RETURNING owner_id",
                (now, _hash(challenge)),
            )
            if curs.fetchone() is None:
                raise Unauthorized("This login has expired: give the password again.")
        self._give_back(keys)
        return self._session_for(account)

    def _login_account(self, owner_id: UUID) -> TwoFactorAccount | None:
        """The account a challenge was made for, if it may still log in."""
        try:
            account = self.repository.get(owner_id)
        except AggregateNotFoundError:
            return None
        if isinstance(account, StaffMember):
            return account if account.active else None
        if isinstance(account, CustomerUser):
            if account.removed or self.get_customer_or_none(account.customer_id) is None:
                return None
            return account
        if isinstance(account, Customer) and not account.deleted:
            return account
        return None

    def _session_for(self, account: TwoFactorAccount) -> dict:
        if isinstance(account, StaffMember):
            return self._open_session("staff", staff_id=account.id)
        if isinstance(account, CustomerUser):
            return self._open_session("client", customer_id=account.customer_id, user_id=account.id)
        return self._open_session("client", customer_id=account.id)
