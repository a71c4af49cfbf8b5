"""Stored events as their service keeps them, with their sealed personal values opened by
the customer's key the way the service itself opens them (services.infra.personal_data):
for tests that check what an event recorded (a reason, a text) in the store itself."""

from __future__ import annotations

import json
import uuid

from services.infra.personal_data import SEALED, associated_data, is_sealed, unseal


def stored(stack, service: str, originator_id, topic_suffix: str) -> list[tuple[int, dict]]:
    """(version, stored state) of one aggregate's events whose topic ends with `topic_suffix`
    (`"Invoice.Voided"`), oldest first."""
    with stack.db(service) as db:
        rows = db.execute(
            f"SELECT originator_version, state FROM {service}_events"
            " WHERE originator_id = %s AND topic LIKE %s ORDER BY originator_version",
            (uuid.UUID(str(originator_id)), f"%{topic_suffix}"),
        ).fetchall()
    return [(version, json.loads(bytes(state))) for version, state in rows]


def opened(stack, service: str, originator_id, version: int, state: dict, name: str):
    """The value of attribute `name` of a stored event's state: opened with its customer's
    key when it is sealed (AssertionError when the key is gone), as it is otherwise."""
    value = state[name]
    if not is_sealed(value):
        return value
    customer, sealed = value[SEALED]
    with stack.db(service) as db:
        row = db.execute(
            "SELECT data_key FROM personal_keys WHERE customer_id = %s", (uuid.UUID(customer),)
        ).fetchone()
    assert row is not None and row[0] is not None, f"no key of customer {customer} in {service}"
    aad = associated_data(customer, uuid.UUID(str(originator_id)), version, name)
    return json.loads(unseal(bytes(row[0]), sealed, aad))["v"]
