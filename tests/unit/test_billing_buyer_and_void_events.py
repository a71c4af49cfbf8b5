"""Billing's rules as pure code: the buyer an invoice is issued to (the legal name, never
the display name), the customer's invoice index that refuses invoices once the customer
was deleted, and the InvoiceVoided integration event a void publishes."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from contracts.errors import Conflict
from services.billing.application import Billing, check_not_deleted
from services.billing.domain import CustomerInvoices, Invoice, invoice_buyer

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _details(**changes):
    details = {
        "kind": "company",
        "email": "billing@acme.example",
        "country": "FR",
        "contact_person": "Jeanne Contact",
        "company_name": "Acme SARL",
        "language": "fr",
        "number": 1042,
        "project_id": None,
    }
    details.update(changes)
    return details


def test_a_companys_buyer_is_its_company_name_not_the_display_name():
    buyer = invoice_buyer(_details(name="Acme (shown in lists)"))
    assert buyer["legal_name"] == "Acme SARL"
    assert "name" not in buyer
    assert (buyer["contact_person"], buyer["email"], buyer["country"], buyer["number"]) == (
        "Jeanne Contact",
        "billing@acme.example",
        "FR",
        1042,
    )


def test_an_individuals_buyer_is_the_contact_person_and_names_no_company():
    buyer = invoice_buyer(_details(kind="individual", name="VIP Jeanne"))
    assert buyer["legal_name"] == "Jeanne Contact"
    assert buyer["company_name"] is None and "name" not in buyer


@pytest.mark.parametrize(
    ("company_name", "legal_name"),
    [
        ("Jeanne Contact EI", "Jeanne Contact EI"),
        (None, "Jeanne Contact"),
        ("  ", "Jeanne Contact"),
    ],
)
def test_a_sole_proprietor_is_named_by_its_business_name_when_it_gave_one(company_name, legal_name):
    buyer = invoice_buyer(_details(kind="sole_proprietor", company_name=company_name))
    assert buyer["legal_name"] == legal_name


def test_corrected_details_name_the_buyer_of_the_next_invoice_only():
    details = _details(kind="individual", company_name=None)
    issued = invoice_buyer(details)
    details.update({"kind": "company", "company_name": "Right SAS", "country": "DE"})
    assert invoice_buyer(details)["legal_name"] == "Right SAS"
    assert (issued["legal_name"], issued["country"]) == ("Jeanne Contact", "FR")


def test_the_invoice_index_refuses_invoices_once_its_customer_was_deleted():
    customer_id = uuid4()
    index = CustomerInvoices(customer_id=customer_id, invoice_ids=[])
    first = uuid4()
    index.add(first)
    check_not_deleted(index)  # not deleted: nothing said
    index.customer_deleted(at=T0)
    assert index.deleted and index.invoice_ids == [first]
    with pytest.raises(Conflict) as refused:
        check_not_deleted(index)
    assert refused.value.status == 409
    assert list(refused.value.fields) == ["customer_id"]
    assert CustomerInvoices.id_for(customer_id) == index.id


def _invoice(purpose="order"):
    return Invoice(
        customer_id=uuid4(),
        project_id=None,
        number="000042",
        purpose=purpose,
        lines=[],
        currency="EUR",
        total=1000,
        issued_at=T0,
        due_date="2026-01-15",
        buyer={},
        seller={},
        subtotal=1000,
        tax=None,
    )


def _published(event) -> tuple[str, dict]:
    """What the relay publishes for `event`, loaded back as a consumer loads it."""
    from services.infra.relay import _jsonable

    schema_cls = Billing.publications[type(event)]
    state = dict(vars(event))
    state[schema_cls.id_field] = event.originator_id
    return schema_cls.event_type, schema_cls().load(_jsonable(schema_cls().dump(state)))


def test_a_void_publishes_invoice_voided_with_what_the_invoice_was_for():
    invoice = _invoice(purpose="order")
    invoice.void(reason="issued twice", at=T0)
    voided = invoice.collect_events()[-1]

    event_type, payload = _published(voided)

    assert event_type == "InvoiceVoided"
    assert payload == {
        "invoice_id": invoice.id,
        "customer_id": invoice.customer_id,
        "number": "000042",
        "reason": "issued twice",
        "at": T0,
        "purpose": "order",
    }


def test_a_void_recorded_before_its_purpose_rode_along_is_published_without_it():
    invoice = _invoice()
    invoice.void(reason="customer deleted", at=T0)
    voided = invoice.collect_events()[-1]
    object.__delattr__(voided, "purpose")  # as stored before the purpose was recorded

    _, payload = _published(voided)

    assert payload["purpose"] is None and payload["reason"] == "customer deleted"


def test_a_projects_own_tax_rule_applies_to_its_buyers_invoices():
    """The buyer names its project by the id's text; the rule by the id itself."""
    from services.billing.domain import TaxTable

    project_id, other = uuid4(), uuid4()
    table = TaxTable()
    for rule_id, project, rate in (("all", None, "20"), ("own", project_id, "17")):
        table.add_rule(
            {
                "id": rule_id,
                "name": f"TVA {rule_id}",
                "country": "LU",
                "project_id": project,
                "rate": rate,
                "inclusive": False,
                "valid_from": None,
                "valid_to": None,
            }
        )
    assert table.rule_for(str(project_id), "LU", T0)["id"] == "own"
    assert table.rule_for(project_id, "LU", T0)["id"] == "own"
    assert table.rule_for(str(other), "LU", T0)["id"] == "all"
    assert table.rule_for(None, "LU", T0)["id"] == "all"
    assert table.rule_for(str(project_id), "BE", T0) is None
