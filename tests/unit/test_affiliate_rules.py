"""Pure rules of the affiliate program: referral codes, and a customer's affiliate program
read as an id whether it was recorded by id or, before programs were referenced by id,
by name."""

import uuid
from datetime import UTC, datetime

from contracts.customers import affiliate_program_ref
from services.billing.domain import AffiliateProgram
from services.customers.application import Customers
from services.customers.domain import Customer
from services.customers.referrals import ALPHABET, CODE_LENGTH, ReferralCode, new_code, normalise


def test_a_program_recorded_by_name_reads_as_the_id_billing_gives_that_name():
    for name in ("partners", "  Partners ", "Реферальная"):
        assert affiliate_program_ref(name) == str(AffiliateProgram.id_for(name))
    some_id = uuid.uuid4()
    assert affiliate_program_ref(some_id) == str(some_id)
    assert affiliate_program_ref(str(some_id)) == str(some_id)
    assert affiliate_program_ref(None) is None


def _customer() -> Customer:
    return Customer(
        number=1001,
        kind="individual",
        email="a@example.com",
        username="c1001",
        country="BE",
        contact_person="A",
        company_name=None,
        language="en",
        project_id=None,
        currency="EUR",
        registered_at=datetime(2026, 1, 1, tzinfo=UTC),
        registration_ip=None,
    )


def test_an_old_edit_naming_a_program_is_read_as_its_id():
    customer = _customer()
    customer.edit({"affiliate_program": "partners"})  # as events recorded it before
    view = Customers.customer_view(customer)
    assert view["affiliate_program"] == str(AffiliateProgram.id_for("partners"))
    program_id = uuid.uuid4()
    customer.edit({"affiliate_program": program_id})
    assert Customers.customer_view(customer)["affiliate_program"] == str(program_id)


def test_codes_are_short_unambiguous_and_typed_in_any_case():
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000  # 32^8 codes: no repeats in a small sample
    assert all(len(c) == CODE_LENGTH and set(c) <= set(ALPHABET) for c in codes)
    assert not set("01IO") & set(ALPHABET)
    code = new_code()
    typed = f" {code[:4].lower()}-{code[4:].lower()} "
    assert normalise(typed) == code
    assert ReferralCode.id_for(typed) == ReferralCode.id_for(code)
