"""What each person of a client keeps for itself: the pages' style (light, dark or the
browser's) and the favourite pages pinned to its menu.

A person is the customer itself (its owner's login) or one of its users: each has its own
`PersonalSettings`, found by the person's id, its changes recorded as events (who, when).
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import event
from eventsourcing.persistence import IntegrityError

from contracts.errors import Conflict, NotFound
from services.customers.domain import CustomerUser
from services.infra.domain import KeyedIndex

THEMES = ("auto", "light", "dark")
DEFAULTS = {"theme": "auto", "favourites": []}


class PersonalSettings(KeyedIndex):
    """One person's own settings: `person_id` is the customer's id (its owner) or a user's."""

    id_namespace = uuid5(NAMESPACE_URL, "https://hostledger.invalid/personal-settings")
    id_prefix = "personal"
    key_fields = ("person_id",)

    @event("Started")
    def __init__(self, person_id: UUID, customer_id: UUID):
        self.person_id = person_id
        self.customer_id = customer_id
        self.theme = "auto"
        self.favourites: list[dict] = []

    @event("ThemeChosen")
    def choose_theme(self, theme: str) -> None:
        self.theme = theme

    @event("FavouritesSet")
    def set_favourites(self, favourites: list[dict]) -> None:
        self.favourites = [dict(f) for f in favourites]


def _person(app, customer_id: UUID, user_id: UUID | None) -> UUID:
    """The person whose settings these are: the customer, or its (live) user."""
    app.get_customer(customer_id)
    if user_id is None:
        return customer_id
    try:
        user = app.repository.get(user_id)
    except AggregateNotFoundError:
        user = None
    if not isinstance(user, CustomerUser) or user.customer_id != customer_id or user.removed:
        raise NotFound("No such user.")
    return user_id


def _settings_of(app, person_id: UUID, customer_id: UUID) -> PersonalSettings:
    try:
        return app.repository.get(PersonalSettings.id_for(person_id))
    except AggregateNotFoundError:
        return PersonalSettings(person_id=person_id, customer_id=customer_id)


def view(settings: PersonalSettings | None) -> dict:
    if settings is None:
        return {"theme": DEFAULTS["theme"], "favourites": []}
    return {"theme": settings.theme, "favourites": [dict(f) for f in settings.favourites]}


def personal_settings(app, customer_id: UUID, user_id: UUID | None) -> dict:
    """{"theme", "favourites"} of the person (the defaults until it chose)."""
    person = _person(app, customer_id, user_id)
    try:
        return view(app.repository.get(PersonalSettings.id_for(person)))
    except AggregateNotFoundError:
        return view(None)


def _change(app, customer_id: UUID, user_id: UUID | None, apply) -> dict:
    person = _person(app, customer_id, user_id)
    settings = _settings_of(app, person, customer_id)
    if apply(settings):
        try:
            app.save(settings)
        except IntegrityError:
            raise Conflict("Someone else changed this at the same moment; try again.") from None
    return view(settings)


def choose_theme(app, customer_id: UUID, user_id: UUID | None, theme: str) -> dict:
    """`theme`: auto (the browser's), light or dark; recorded only when it changes."""

    def apply(settings: PersonalSettings) -> bool:
        if settings.theme == theme:
            return False
        settings.choose_theme(theme=theme)
        return True

    return _change(app, customer_id, user_id, apply)


def set_favourites(app, customer_id: UUID, user_id: UUID | None, favourites: list[dict]) -> dict:
    """The pinned pages as they are now (validated by the contract: client-area paths, at
    most 20, each once); recorded only when they change."""
    wanted = [{"path": f["path"], "label": f["label"]} for f in favourites]

    def apply(settings: PersonalSettings) -> bool:
        if settings.favourites == wanted:
            return False
        settings.set_favourites(favourites=wanted)
        return True

    return _change(app, customer_id, user_id, apply)
