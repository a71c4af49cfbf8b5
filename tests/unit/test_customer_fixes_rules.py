"""The customer rules that need no I/O: a company needs its company name (registration by
staff, the order form, corrections), a project renamed and removed, each change its own
event."""

from uuid import uuid4

import pytest
from marshmallow import ValidationError

from contracts.customers import (
    COMPANY_NAME_NEEDED,
    ChangeProject,
    EditCustomer,
    ProjectRemoved,
    RegisterCustomer,
    needs_company_name,
)
from contracts.registry import declared_events
from gateway.schemas import OrderCustomer, StaffRegisterCustomer
from services.customers.domain import Project


def _person(**changes) -> dict:
    body = {"kind": "company", "email": "a@example.com", "country": "FR", "contact_person": "A"}
    body.update(changes)
    return body


@pytest.mark.parametrize(
    ("kind", "company_name", "needed"),
    [
        ("company", None, True),
        ("company", "", True),
        ("company", "  \t", True),
        ("company", "Acme", False),
        ("sole_proprietor", None, False),
        ("individual", None, False),
    ],
)
def test_only_a_company_needs_a_company_name(kind, company_name, needed):
    assert needs_company_name(kind, company_name) is needed


@pytest.mark.parametrize("schema", [RegisterCustomer, StaffRegisterCustomer, OrderCustomer])
def test_every_registration_refuses_a_company_without_its_name(schema):
    with pytest.raises(ValidationError) as refused:
        schema().load(_person())
    assert refused.value.messages == {"company_name": [COMPANY_NAME_NEEDED]}
    with pytest.raises(ValidationError):
        schema().load(_person(company_name=" "))
    assert schema().load(_person(company_name="Acme"))["company_name"] == "Acme"
    assert schema().load(_person(kind="sole_proprietor"))["company_name"] is None


@pytest.mark.parametrize("country", ["XX", "fr", "FRA", "", "EU", "UK"])
def test_a_registration_country_is_an_iso_3166_code(country):
    for schema in (RegisterCustomer, OrderCustomer):
        with pytest.raises(ValidationError) as refused:
            schema().load(_person(company_name="Acme", country=country))
        assert "country" in refused.value.messages
    with pytest.raises(ValidationError):
        EditCustomer().load({"country": country, "reason": "moved"})


def test_a_project_change_takes_its_name_and_sender_but_not_its_seller():
    assert ChangeProject().load({"name": "New", "sender_email": "a@b.example"}, partial=True)
    for refused in ({"name": ""}, {"seller": {"legal_name": "X"}}, {"allow_credit": True}):
        with pytest.raises(ValidationError):
            ChangeProject().load(refused, partial=True)


def test_a_project_is_renamed_then_removed_each_its_own_event():
    project = Project(
        name="Brand",
        sender_email="a@brand.example",
        sender_name="Brand",
        seller={"legal_name": "Brand Ltd"},
        allow_credit=False,
    )
    assert project.removed is False
    project.change({"name": "Renamed", "sender_name": "Team"})
    project.remove()
    events = project.collect_events()
    assert [type(e).__qualname__ for e in events] == [
        "Project.Created",
        "Project.Changed",
        "Project.Removed",
    ]
    assert events[1].changes == {"name": "Renamed", "sender_name": "Team"}
    assert (project.name, project.sender_name, project.removed) == ("Renamed", "Team", True)
    assert project.seller == {"legal_name": "Brand Ltd"}  # invoices' seller stays


def test_the_removal_of_a_project_is_published():
    assert declared_events()[("customers", "ProjectRemoved")] is ProjectRemoved
    assert ProjectRemoved().load({"project_id": str(uuid4())})
