from uuid import uuid4

import pytest

from contracts.errors import Conflict, NotFound, ValidationFailed
from contracts.registry import declared_events
from services.infra.inbox import PoisonEvent, load_event


def _envelope(**payload):
    body = {
        "customer_id": str(uuid4()),
        "number": 1001,
        "kind": "individual",
        "email": "a@example.com",
        "username": "c1001",
        "country": "DE",
        "contact_person": "A",
        "language": "en",
        "currency": "EUR",
        "registered_at": "2026-11-21T10:00:00+00:00",
    }
    body.update(payload)
    return {
        "source": "customers",
        "position": 3,
        "previous_position": 1,
        "type": "CustomerRegistered",
        "aggregate_id": body["customer_id"],
        "version": 1,
        "occurred_at": "2026-11-21T10:00:00Z",
        "actor": {"kind": "staff", "id": "x"},
        "payload": body,
    }


def test_every_published_event_is_declared_once():
    declared = declared_events()
    assert ("customers", "CustomerRegistered") in declared
    assert ("billing", "AccountOpened") in declared


def test_a_valid_envelope_loads_with_typed_payload():
    event = load_event(_envelope())
    assert event.ref == "customers:3"
    assert event.payload["customer_id"].version == 4


@pytest.mark.parametrize(
    "change",
    [
        {"currency": "euro"},
        {"kind": "alien"},
        {"email": "nope"},
        {"customer_id": "x"},
    ],
)
def test_payload_breaking_the_contract_is_poison(change):
    with pytest.raises(PoisonEvent, match="breaks the contract"):
        load_event(_envelope(**change))


def test_envelope_without_position_is_poison():
    env = _envelope()
    del env["position"]
    with pytest.raises(PoisonEvent):
        load_event(env)


def test_errors_have_the_api_shape():
    assert NotFound("No such customer.").to_dict() == {
        "error": {"code": "not_found", "message": "No such customer."}
    }
    v = ValidationFailed("bad", {"email": ["Not a valid email address."]})
    assert v.status == 400 and v.to_dict()["error"]["fields"] == {
        "email": ["Not a valid email address."]
    }
    assert Conflict("x").status == 409
    # rebuilt from its args, as RPC does
    again = ValidationFailed(*v.args)
    assert again.fields == v.fields and again.message == "bad"


def test_nested_errors_are_named_by_their_dotted_path():
    from marshmallow import Schema, ValidationError, fields, validate

    from contracts.errors import from_marshmallow

    class Item(Schema):
        product_id = fields.UUID(required=True)
        addons = fields.List(fields.UUID())

    class Order(Schema):
        email = fields.Email(required=True)
        items = fields.List(fields.Nested(Item), required=True)
        notes = fields.Dict(keys=fields.String(validate=validate.OneOf(["en"])))
        counts = fields.Dict(keys=fields.String(), values=fields.Int())

    with pytest.raises(ValidationError) as caught:
        Order().load(
            {
                "email": "nope",
                "items": [{"product_id": "x", "addons": ["a", "b"]}],
                "notes": {"de": 1},
                "counts": {"en": "many"},
            }
        )
    named = from_marshmallow(caught.value).fields
    assert named == {
        "email": ["Not a valid email address."],
        "items.0.product_id": ["Not a valid UUID."],
        "items.0.addons.0": ["Not a valid UUID."],
        "items.0.addons.1": ["Not a valid UUID."],
        "notes.de": ["Must be one of: en."],
        "counts.en": ["Not a valid integer."],
    }
