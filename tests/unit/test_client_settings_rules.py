"""A client's favourite pages and style, without services: which pages may be pinned, how
many, and that a person's choices are events of its own settings."""

import uuid

import pytest

from contracts.customers import Favourites, Preferences, is_client_area_path
from contracts.errors import ValidationFailed
from services.customers.personal import PersonalSettings, view
from services.infra.rpc import load


@pytest.mark.parametrize(
    ("path", "pinnable"),
    [
        ("/dashboard", True),
        ("/invoices", True),
        (f"/tickets/{uuid.uuid4()}", True),
        ("/settings/payers", True),
        ("/help/billing", True),
        ("/settings/email/confirm", False),  # its address carries a token
        ("/settings/email", False),
        ("/login", False),
        ("/logout", False),
        ("/api/v1/client/invoices", False),
        ("/dashboardx", False),
        ("//evil.example/dashboard", False),
        ("https://evil.example/dashboard", False),
        ("/settings/../login", False),
        ("/invoices?page=2", False),
        ("/invoices#top", False),
        ("/" + "a" * 300, False),
        ("", False),
    ],
)
def test_only_pages_of_the_client_area_may_be_pinned(path, pinnable):
    assert is_client_area_path(path) is pinnable


def _items(n: int) -> list[dict]:
    return [{"path": f"/help/topic-{i}", "label": f"Topic {i}"} for i in range(n)]


def test_at_most_twenty_favourites_each_once_each_with_a_label():
    assert load(Favourites, {"pages": _items(20)})["pages"] == _items(20)
    for bad in (
        _items(21),
        [*_items(2), _items(1)[0]],
        [{"path": "/invoices", "label": ""}],
        [{"path": "/invoices", "label": "x" * 101}],
        [{"path": "/invoices", "label": "A\x00B"}],
        [{"path": "/login", "label": "Log in"}],
    ):
        with pytest.raises(ValidationFailed):
            load(Favourites, {"pages": bad})


def test_the_style_is_auto_light_or_dark():
    for theme in ("auto", "light", "dark"):
        assert load(Preferences, {"theme": theme}) == {"theme": theme}
    with pytest.raises(ValidationFailed) as refused:
        load(Preferences, {"theme": "blue"})
    assert "theme" in refused.value.fields


def test_a_persons_choices_are_events_of_its_own_settings():
    person, customer = uuid.uuid4(), uuid.uuid4()
    settings = PersonalSettings(person_id=person, customer_id=customer)
    assert settings.id == PersonalSettings.id_for(person)
    assert view(settings) == {"theme": "auto", "favourites": []}
    settings.choose_theme(theme="dark")
    settings.set_favourites(favourites=_items(1))
    events = settings.collect_events()
    assert [type(e).__name__ for e in events] == ["Started", "ThemeChosen", "FavouritesSet"]
    assert view(settings) == {"theme": "dark", "favourites": _items(1)}
    assert view(None) == {"theme": "auto", "favourites": []}
