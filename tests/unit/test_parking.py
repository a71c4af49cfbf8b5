"""What a parked row keeps: a copy PostgreSQL can store, and the exact original."""

import json

from hypothesis import given
from hypothesis import strategies as st

from services.infra.parking import (
    BIGINT_MAX,
    envelope_columns,
    original_envelope,
    storable,
    storable_position,
    storable_text,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _storable_in_postgres(value) -> bool:
    """No NUL, no lone surrogate, no NaN or infinity anywhere (what jsonb and text refuse)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@given(json_values)
def test_the_copy_is_storable_and_the_original_comes_back(value):
    raw = {"payload": value}
    copy, exact = envelope_columns(raw)
    assert _storable_in_postgres(copy.obj)
    row = {"envelope": copy.obj, "envelope_raw": exact}
    back = original_envelope(row)
    assert json.dumps(back, sort_keys=True) == json.dumps(raw, sort_keys=True)
    if exact is not None:
        assert exact.isascii()  # NUL and surrogates escaped: a text column takes it


def test_text_keeps_what_it_can():
    assert storable_text("mail\x00subject") == "mail\ufffdsubject"
    assert storable_text("a\ud800b") == "a\ufffdb"
    assert storable_text("plain ünïcode") == "plain ünïcode"
    assert storable_text("x" * 10, 4) == "xxxx"
    assert storable({"k\x00": [float("nan"), 2**70, "\x00"]}) == {
        "k\ufffd": ["nan", 2**70, "\ufffd"]
    }


def test_a_position_that_does_not_fit_is_unknown():
    assert storable_position(BIGINT_MAX) == BIGINT_MAX
    assert storable_position(BIGINT_MAX + 1) is None
    assert storable_position(True) is None
    assert storable_position("7") is None
