"""Customers and access: registration, staff, login sessions."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts import customers as contract
from contracts.errors import Conflict, InvalidCredentials, NotFound, Unauthorized
from services.customers.domain import Customer, CustomerEmail, LoginName, StaffMember
from services.infra import clock
from services.infra.application import HostledgerApplication
from services.infra.clock import isoformat
from services.infra.passwords import generate_password, hash_password, verify_password

SESSION_LIFETIME = {"staff": timedelta(hours=12), "client": timedelta(days=7)}

SCHEMA = (
    "CREATE SEQUENCE IF NOT EXISTS customer_number_seq START 1001",
    """
    CREATE TABLE IF NOT EXISTS sessions (
        token_hash text PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('staff', 'client')),
        staff_id uuid,
        customer_id uuid,
        impersonator_id uuid,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS sessions_customer ON sessions (customer_id)",
)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Customers(HostledgerApplication):
    name = "customers"
    service = "customers"
    publications = {
        Customer.Registered: contract.CustomerRegistered,
        StaffMember.Registered: contract.StaffRegistered,
    }
    schema_statements = SCHEMA

    # -- customers ------------------------------------------------------------------------

    def register_customer(self, data: dict) -> dict:
        """Register a customer; `credentials` carries the generated password, once."""
        password = data.get("password")
        generated = password is None
        if generated:
            password = generate_password()
        number = self._next_customer_number()
        username = data.get("username") or f"c{number}"
        customer = Customer(
            number=number,
            kind=data["kind"],
            email=data["email"].strip(),
            username=username,
            password_hash=hash_password(password),
            country=data["country"],
            contact_person=data["contact_person"].strip(),
            company_name=(data.get("company_name") or None),
            language=data.get("language") or "en",
            project_id=data.get("project_id"),
            currency=data.get("currency") or "EUR",
            registered_at=clock.now(),
            registration_ip=data.get("registration_ip"),
        )
        login = LoginName(name=username, owner_kind="client", owner_id=customer.id)
        email = CustomerEmail(email=customer.email, customer_id=customer.id)
        try:
            self.save(customer, login, email)
        except IntegrityError:
            self._raise_taken(username, customer.email)
        answer = self.customer_view(customer)
        if generated:
            answer["credentials"] = {"username": username, "password": password}
        return answer

    def _raise_taken(self, username: str, email: str) -> None:
        fields = {}
        if self._exists(LoginName.id_for(username)):
            fields["username"] = ["This username is taken."]
        if self._exists(CustomerEmail.id_for(email)):
            fields["email"] = ["An account with this e-mail already exists."]
        raise Conflict(
            "A customer with this " + " and ".join(sorted(fields) or ["identity"]) + " exists.",
            fields=fields or None,
        )

    def _exists(self, aggregate_id: UUID) -> bool:
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _next_customer_number(self) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SELECT nextval('customer_number_seq') AS n")
            return curs.fetchone()["n"]

    def get_customer(self, customer_id: UUID) -> Customer:
        try:
            customer = self.repository.get(customer_id)
        except AggregateNotFoundError:
            raise NotFound("No such customer.") from None
        if not isinstance(customer, Customer) or customer.deleted:
            raise NotFound("No such customer.")
        return customer

    @staticmethod
    def customer_view(c: Customer) -> dict:
        return {
            "id": str(c.id),
            "number": c.number,
            "kind": c.kind,
            "name": c.name,
            "email": c.email,
            "username": c.username,
            "country": c.country,
            "contact_person": c.contact_person,
            "company_name": c.company_name,
            "language": c.language,
            "project_id": str(c.project_id) if c.project_id else None,
            "currency": c.currency,
            "registered_at": isoformat(c.registered_at),
            "registration_ip": c.registration_ip,
            "version": c.version,
        }

    # -- staff ----------------------------------------------------------------------------

    def register_staff(
        self,
        username: str,
        name: str,
        role: str,
        password: str | None = None,
        email: str | None = None,
        language: str = "en",
    ) -> tuple[StaffMember, str | None]:
        generated = None
        if password is None:
            password = generated = generate_password()
        member = StaffMember(
            username=username,
            name=name,
            email=email,
            role=role,
            password_hash=hash_password(password),
            language=language,
        )
        login = LoginName(name=username, owner_kind="staff", owner_id=member.id)
        try:
            self.save(member, login)
        except IntegrityError:
            raise Conflict(
                "This username is taken.", fields={"username": ["This username is taken."]}
            ) from None
        return member, generated

    def staff_exists(self) -> bool:
        from eventsourcing.utils import get_topic

        return bool(
            self.recorder.select_notifications(1, 1, topics=[get_topic(StaffMember.Registered)])
        )

    def ensure_first_admin(self, username: str, password: str | None) -> dict | None:
        """Create the first administrator when no staff exist; None when some do."""
        if self.staff_exists():
            return None
        try:
            member, generated = self.register_staff(
                username=username, name="Administrator", role="admin", password=password
            )
        except Conflict:
            return None  # another instance created it meanwhile
        return {"staff_id": str(member.id), "username": username, "password": generated}

    @staticmethod
    def staff_view(m: StaffMember) -> dict:
        return {
            "id": str(m.id),
            "username": m.username,
            "name": m.name,
            "email": m.email,
            "role": m.role,
            "language": m.language,
        }

    # -- sessions -------------------------------------------------------------------------

    def login(self, username: str, password: str) -> dict:
        owner = self._find_login(username)
        password_hash = getattr(owner, "password_hash", None)
        if not verify_password(password_hash, password) or owner is None:
            raise InvalidCredentials("The username or password is wrong.")
        if isinstance(owner, StaffMember):
            return self._open_session("staff", staff_id=owner.id)
        return self._open_session("client", customer_id=owner.id)

    def _find_login(self, username: str):
        name = username.strip()
        for index_id in (LoginName.id_for(name), CustomerEmail.id_for(name)):
            try:
                index = self.repository.get(index_id)
            except AggregateNotFoundError:
                continue
            owner_id = getattr(index, "owner_id", None) or getattr(index, "customer_id", None)
            try:
                owner = self.repository.get(owner_id)
            except AggregateNotFoundError:
                continue
            if isinstance(owner, Customer) and owner.deleted:
                return None
            return owner
        return None

    def _open_session(self, kind: str, staff_id=None, customer_id=None, impersonator_id=None):
        token = secrets.token_urlsafe(32)
        now = clock.now()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO sessions (token_hash, kind, staff_id, customer_id, impersonator_id,"
                " created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    _token_hash(token),
                    kind,
                    staff_id,
                    customer_id,
                    impersonator_id,
                    now,
                    now + SESSION_LIFETIME[kind],
                ),
            )
        answer = {"token": token, "kind": kind}
        if customer_id:
            answer["customer_id"] = str(customer_id)
        if staff_id:
            answer["staff_id"] = str(staff_id)
        return answer

    def resolve_session(self, token: str) -> dict:
        """Who holds this token: kind, ids and (staff) role. Unauthorized when not valid."""
        with self.datastore.transaction() as curs:
            curs.execute(
                "SELECT kind, staff_id, customer_id, impersonator_id, expires_at, revoked_at"
                " FROM sessions WHERE token_hash = %s",
                (_token_hash(token),),
            )
            row = curs.fetchone()
        if row is None or row["revoked_at"] is not None or row["expires_at"] <= clock.now():
            raise Unauthorized("The session has ended or the token is not valid.")
        principal = {"kind": row["kind"]}
        if row["staff_id"]:
            member = self.repository.get(row["staff_id"])
            if not member.active:
                raise Unauthorized("This staff account is disabled.")
            principal.update(
                staff_id=str(member.id),
                role=member.role,
                name=member.name,
                username=member.username,
            )
        if row["customer_id"]:
            customer = self.get_customer(row["customer_id"])
            principal.update(
                customer_id=str(customer.id), username=customer.username, name=customer.name
            )
        if row["impersonator_id"]:
            member = self.repository.get(row["impersonator_id"])
            principal["impersonator"] = {
                "staff_id": str(member.id),
                "name": member.name,
                "role": member.role,
            }
        return principal

    def logout(self, token: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE sessions SET revoked_at = %s WHERE token_hash = %s AND revoked_at IS NULL",
                (clock.now(), _token_hash(token)),
            )
