"""Every aggregate found by a key keeps the id it always had: stored aggregates are read
by these ids, so a changed derivation would lose them (and let a second one be saved)."""

from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

from services.billing.domain import (
    AffiliateProgram,
    Commission,
    CustomerAccounts,
    CustomerInvoices,
    InvoiceSeries,
    PersonalAccount,
)
from services.customers.domain import CustomerEmail, DiscountsOf, LoginName, PeopleEmail
from services.helpdesk.domain import (
    IncomingAddress,
    MailMessage,
    Standing,
    TicketMessage,
    TrackingNumber,
)
from services.infra.domain import IdempotencyKey, KeyedIndex
from services.mailgateway.domain import MailTemplate
from services.orders.domain import (
    CustomerLanguage,
    CustomerServices,
    InvoiceOrder,
    OrderAttempt,
    ProjectTerms,
    PromoCode,
    RenewalLink,
)

CUSTOMER = UUID("2f1c6a6e-8d9b-4c1e-9a51-3f2a7c0d4e11")
INVOICE = UUID("7b3e9d20-1a4f-4b6c-8e2d-5c9f0a1b2c3d")

# (class, key, the id the code before KeyedIndex derived for that key)
IDS = [
    (LoginName, ("Alice",), UUID("cb7b2ce1-6d6d-545d-b951-aa909a2ffcac")),
    (LoginName, ("  aLiCe ",), UUID("cb7b2ce1-6d6d-545d-b951-aa909a2ffcac")),
    (CustomerEmail, ("Ann@Example.com ",), UUID("639790e8-1627-53fa-962d-6590b2538877")),
    (TrackingNumber, (" abc-123456 ",), UUID("1334aa7a-51b2-5788-80d6-b438e01f7ea8")),
    (IncomingAddress, ("Support@Example.COM",), UUID("bc97ed86-149d-542c-89d1-01f5c4bc2de9")),
    (
        MailMessage,
        (" <Abc.123@Mail.Example.com> ",),
        UUID("765fde19-29fe-5d06-bd8f-d5a07d72b7c0"),
    ),
    (Standing, (CUSTOMER,), UUID("a8878c28-74f3-568c-8b2b-92a1d3b8324e")),
    (PersonalAccount, (CUSTOMER, "EUR"), UUID("f4bef33c-32f5-5e0b-bd94-812d44f8da7b")),
    (InvoiceSeries, ("default",), UUID("19d70d6c-20ad-52d4-8bd9-f30de6b5e968")),
    (AffiliateProgram, (" Partners ",), UUID("5fae325f-6cfc-581e-a2f1-12a757eed825")),
    (Commission, (INVOICE,), UUID("c4cf1b27-faa7-5477-85d5-63cd0af79996")),
    (MailTemplate, ("invoice_issued", "ru"), UUID("6aa9726b-563e-5c3f-879f-83ae6c7eaafe")),
    (PromoCode, (" spring10 ",), UUID("c4b86639-caec-5b17-9852-0c033dfa984e")),
    (InvoiceOrder, (INVOICE,), UUID("4e42be9b-5d53-5135-9806-7866a1dcd903")),
    (RenewalLink, (INVOICE,), UUID("113c10e4-375d-5a45-88d8-0f2edf7bbe3a")),
    (ProjectTerms, (CUSTOMER,), UUID("2208ef26-cf77-5d5b-ab8d-ca1c86c03565")),
    (IdempotencyKey, ("customers:staff:1", "key-1"), UUID("9e3b4959-1f95-5555-84c6-876cba9e13c0")),
    # made since KeyedIndex: the ids they have had from the start
    (CustomerAccounts, (CUSTOMER,), UUID("f8dc598e-374b-5266-95c8-94d6418f65b2")),
    (CustomerServices, (CUSTOMER,), UUID("220124dd-402c-521b-8c13-f99aa7c1e4b4")),
    (OrderAttempt, ("public|key-1",), UUID("0df76c12-7625-5508-b8ca-f76c54e14c56")),
    (DiscountsOf, (CUSTOMER,), UUID("bc28b211-2be3-5400-ae93-ada3ac14eed7")),
    (PeopleEmail, (" Ann@Example.com",), UUID("bbf8e9a7-001e-5e36-a4e8-85c0a064091c")),
    (TicketMessage, (str(INVOICE).upper(),), UUID("7b65bd96-ff99-541e-8f6b-371e2d643c06")),
    (CustomerInvoices, (CUSTOMER,), UUID("3fcf7e67-2181-55d5-9da5-46c2ae1fa173")),
    (CustomerLanguage, (CUSTOMER,), UUID("c9d51ae4-be91-5dbf-aa85-84d16eac1ab7")),
]

INDEXES = sorted({cls for cls, _, _ in IDS}, key=lambda cls: cls.__name__)


@pytest.mark.parametrize(("cls", "key", "expected"), IDS, ids=lambda v: getattr(v, "__name__", ""))
def test_id_for_a_key_is_the_id_it_always_was(cls, key, expected):
    assert cls.id_for(*key) == expected


@pytest.mark.parametrize("cls", INDEXES, ids=lambda c: c.__name__)
def test_every_keyed_aggregate_uses_the_one_helper(cls):
    assert issubclass(cls, KeyedIndex)
    assert "id_for" not in vars(cls) and "create_id" in vars(cls)  # made by KeyedIndex


def _init_kwargs(cls, key):
    """Arguments for the aggregate's creation: the key, and placeholders for the rest."""
    import inspect

    kwargs = {}
    for name in list(inspect.signature(cls.__init__).parameters)[1:]:
        kwargs[name] = None
    kwargs.update(dict(zip(cls.key_fields, key, strict=True)))
    return kwargs


@pytest.mark.parametrize(("cls", "key", "expected"), IDS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_new_aggregate_gets_the_id_of_its_key(cls, key, expected):
    # the library calls create_id() with the __init__ arguments its signature names
    kwargs = _init_kwargs(cls, key)
    assert cls.create_id(**{k: kwargs[k] for k in cls.key_fields}) == expected


def test_creating_one_gives_it_the_id_of_its_key():
    name = LoginName(name=" Bob ", owner_kind="staff", owner_id=CUSTOMER)
    key = IdempotencyKey(scope="s", key="k", request_hash="h", answer={})
    assert name.id == LoginName.id_for("bob")
    assert key.id == IdempotencyKey.id_for("s", "k")


def test_event_topics_are_unchanged():
    assert get_topic(LoginName.Claimed) == "services.customers.domain:LoginName.Claimed"
    assert get_topic(IdempotencyKey.Used) == "services.infra.domain:IdempotencyKey.Used"
    assert get_topic(PersonalAccount.Opened) == "services.billing.domain:PersonalAccount.Opened"
    assert get_topic(PromoCode) == "services.orders.domain:PromoCode"


def test_a_key_of_the_wrong_length_is_refused():
    with pytest.raises(TypeError):
        PersonalAccount.id_for(CUSTOMER)
