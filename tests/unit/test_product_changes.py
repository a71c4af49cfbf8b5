"""Changing a product in part (PATCH) still takes a whole provisioning."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from gateway.schemas import ProductRequest


def test_a_partial_change_with_an_empty_provisioning_is_a_validation_error():
    # it used to fail inside the schema's own check (a 500), the kind being left out
    with pytest.raises(ValidationError) as info:
        ProductRequest().load({"provisioning": {}}, partial=True)
    assert info.value.messages == {"provisioning": {"kind": ["Missing data for required field."]}}


def test_a_partial_change_takes_a_whole_provisioning():
    loaded = ProductRequest().load({"provisioning": {"kind": "manual"}}, partial=True)
    assert loaded["provisioning"]["kind"] == "manual"
    with pytest.raises(ValidationError) as info:
        ProductRequest().load({"provisioning": {"kind": "webhook"}}, partial=True)
    assert "url" in info.value.messages["provisioning"]
