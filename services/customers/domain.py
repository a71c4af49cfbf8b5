"""Customers, staff members, and the indexes that keep usernames and e-mails unique."""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from eventsourcing.domain import event

from services.infra.domain import Aggregate


class Customer(Aggregate):
    @event("Registered")
    def __init__(
        self,
        number: int,
        kind: str,
        email: str,
        username: str,
        password_hash: str,
        country: str,
        contact_person: str,
        company_name: str | None,
        language: str,
        project_id: UUID | None,
        currency: str,
        registered_at: datetime,
        registration_ip: str | None,
    ):
        self.number = number
        self.kind = kind
        self.email = email
        self.username = username
        self.password_hash = password_hash
        self.country = country
        self.contact_person = contact_person
        self.company_name = company_name
        self.language = language
        self.project_id = project_id
        self.currency = currency
        self.registered_at = registered_at
        self.registration_ip = registration_ip
        self.deleted = False

    @staticmethod
    def create_id(**_) -> UUID:
        return uuid4()

    @property
    def name(self) -> str:
        return self.company_name or self.contact_person


class StaffMember(Aggregate):
    @event("Registered")
    def __init__(
        self,
        username: str,
        name: str,
        email: str | None,
        role: str,
        password_hash: str,
        language: str,
    ):
        self.username = username
        self.name = name
        self.email = email
        self.role = role
        self.password_hash = password_hash
        self.language = language
        self.active = True

    @staticmethod
    def create_id(**_) -> UUID:
        return uuid4()


_INDEX_NS = uuid5(NAMESPACE_URL, "https://hostledger.invalid/index")


class LoginName(Aggregate):
    """Index: one per username (any case). Saving a second one for a name fails."""

    @event("Claimed")
    def __init__(self, name: str, owner_kind: str, owner_id: UUID):
        self.name = name
        self.owner_kind = owner_kind
        self.owner_id = owner_id

    @staticmethod
    def create_id(name: str, **_) -> UUID:
        return LoginName.id_for(name)

    @staticmethod
    def id_for(name: str) -> UUID:
        return uuid5(_INDEX_NS, "login:" + name.strip().lower())


class CustomerEmail(Aggregate):
    """Index: one customer account per e-mail address."""

    @event("Claimed")
    def __init__(self, email: str, customer_id: UUID):
        self.email = email
        self.customer_id = customer_id

    @staticmethod
    def create_id(email: str, **_) -> UUID:
        return CustomerEmail.id_for(email)

    @staticmethod
    def id_for(email: str) -> UUID:
        return uuid5(_INDEX_NS, "email:" + email.strip().lower())
