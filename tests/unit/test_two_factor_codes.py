"""Two-factor authentication's pure parts: TOTP codes (RFC 6238's own test values), the
window of accepted steps and replays, recovery codes, the QR code, and events and
errors that never carry a secret."""

import base64
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from marshmallow import ValidationError

from contracts import customers as contract
from contracts.errors import TwoFactorRequired, Unauthorized
from services.customers import totp
from services.customers.domain import Customer, CustomerUser, StaffMember

# RFC 6238, appendix B: the SHA-1 secret is the ASCII "12345678901234567890"
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
AT = datetime(2026, 12, 3, 10, 0, 15, tzinfo=UTC)


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@pytest.mark.parametrize(
    ("seconds", "eight_digits"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
    ],
)
def test_codes_are_rfc_6238s(seconds, eight_digits):
    # an app shows the last six digits of the RFC's eight
    assert totp.code_at(RFC_SECRET, _at(seconds)) == eight_digits[-6:]
    assert totp.matching_step(RFC_SECRET, eight_digits[-6:], _at(seconds)) == seconds // 30


def test_a_code_is_accepted_one_step_either_side_and_no_further():
    secret = totp.new_secret()
    now = totp.step_at(AT)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, AT + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, AT) == now + offset
    for offset in (-3, -2, 2, 3):
        code = totp.code_at(secret, AT + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, AT) is None, offset


def test_a_code_is_not_accepted_for_a_step_already_used():
    secret = totp.new_secret()
    code = totp.code_at(secret, AT)
    step = totp.matching_step(secret, code, AT)
    assert step is not None
    assert totp.matching_step(secret, code, AT, after=step) is None  # the same code again
    older = totp.code_at(secret, AT - timedelta(seconds=30))
    assert totp.matching_step(secret, older, AT, after=step) is None  # an earlier one
    newer = totp.code_at(secret, AT + timedelta(seconds=30))
    assert totp.matching_step(secret, newer, AT, after=step) == step + 1


def test_what_is_not_six_digits_of_the_secret_is_refused():
    secret = totp.new_secret()
    code = totp.code_at(secret, AT)
    assert totp.matching_step(secret, f"{code[:3]} {code[3:]}", AT) is not None
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for typed in (wrong, code[:5], code + "0", "abcdef", "", None, "١٢٣٤٥٦"):
        assert totp.matching_step(secret, typed, AT) is None, typed


def test_a_secret_is_160_bits_of_base32_and_new_each_time():
    secrets_made = {totp.new_secret() for _ in range(50)}
    assert len(secrets_made) == 50
    for secret in secrets_made:
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20
    assert totp.grouped("ABCDEFGHIJKL") == "ABCD EFGH IJKL"


def test_the_address_and_qr_code_an_app_reads():
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "c1001", "Acme Hosting")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp"
    assert unquote(parsed.path) == "/Acme Hosting:c1001"
    query = parse_qs(parsed.query)
    assert query["secret"] == [secret] and query["issuer"] == ["Acme Hosting"]
    qr = totp.qr_code(uri)
    assert qr.startswith("data:image/svg+xml,")
    svg = unquote(qr.removeprefix("data:image/svg+xml,"))
    assert svg.startswith("<svg") and "<path" in svg and svg.rstrip().endswith("</svg>")


def test_recovery_codes_are_different_and_kept_as_hashes_of_what_is_typed():
    codes = totp.new_recovery_codes()
    assert len(codes) == totp.RECOVERY_CODES == len(set(codes))
    for code in codes:
        assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", code)
        assert not set(code) & set("01ilo")
    first = codes[0]
    digest = totp.recovery_hash(first)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and first not in digest
    for typed in (first.upper(), first.replace("-", ""), " ".join(first.split("-"))):
        assert totp.recovery_hash(typed) == digest
    assert len({totp.recovery_hash(c) for c in codes}) == len(codes)
    # a recovery code is not taken for an app's code
    assert not any(totp.looks_like_code(c) for c in codes)


def _customer() -> Customer:
    return Customer(
        number=1001,
        kind="individual",
        email="a@example.com",
        username="c1001",
        country="BE",
        contact_person="A",
        company_name=None,
        language="ru",
        project_id=None,
        currency="EUR",
        registered_at=AT,
        registration_ip=None,
    )


def test_every_account_turns_it_on_and_off_with_events_that_carry_no_secret():
    staff = StaffMember(
        username="s",
        name="S",
        email=None,
        role="admin",
        language="en",
        notify={},
    )
    user = CustomerUser(
        customer_id=_customer().id,
        username="u",
        email="u@example.com",
        name="U",
        permissions=["full"],
    )
    for account in (_customer(), staff, user):
        assert account.two_factor is False
        account.enable_two_factor(recovery_codes=10)
        assert account.two_factor is True
        account.use_recovery_code(remaining=9)
        account.reset_two_factor(reason="lost the phone")
        assert account.two_factor is False
        account.enable_two_factor(recovery_codes=10)
        account.disable_two_factor()
        assert account.two_factor is False
        events = account.collect_events()[1:]
        carried = [
            {k for k in vars(e) if k not in ("originator_id", "originator_version", "timestamp")}
            for e in events
        ]
        assert carried == [
            {"recovery_codes"},
            {"remaining"},
            {"reason"},
            {"recovery_codes"},
            set(),
        ]


def test_the_login_contract_takes_a_code_and_the_code_contract_needs_one():
    loaded = contract.Login().load({"username": "c1001", "password": "x", "otp": "123456"})
    assert loaded["otp"] == "123456" and loaded["recovery_code"] is None
    with pytest.raises(ValidationError) as refused:
        contract.TwoFactorCode().load({})
    assert "otp" in refused.value.messages
    assert contract.TwoFactorCode().load({"recovery_code": "abcd-efgh-jkmn"})
    with pytest.raises(ValidationError):
        contract.TwoFactorDisable().load({"otp": "123456"})  # without the password
    with pytest.raises(ValidationError):
        contract.TwoFactorReset().load({"reason": ""})


def test_two_factor_required_is_a_401_rebuilt_from_its_arguments():
    error = TwoFactorRequired("Send the code.", {"otp": ["Required."]}, challenge="tok")
    assert isinstance(error, Unauthorized) and error.status == 401
    assert error.to_dict()["error"]["code"] == "two_factor_required"
    again = TwoFactorRequired(*error.args)  # as nameko rebuilds it on the caller's side
    assert again.challenge == "tok" and again.fields == {"otp": ["Required."]}
    # the answer's body never names the challenge
    assert "tok" not in str(error.to_dict())


def test_errors_that_carry_more_than_a_message_cross_rpc_without_a_none_turned_text():
    """nameko sends an error's arguments as text when they are not JSON-like: a None
    `fields` arrived as "None" and a 429 answered `"fields": "None"` (found by the fuzz
    once the login took more fields)."""
    from nameko.exceptions import deserialize, serialize

    import services.infra.rpc  # noqa: F401 - our errors travel as themselves
    from contracts.errors import RateLimited, Unavailable

    for error in (
        RateLimited("Too many.", retry_after=30),
        Unavailable("Not now."),
        TwoFactorRequired("Send the code."),
    ):
        again = deserialize(serialize(error))
        assert type(again) is type(error)
        assert again.fields == {}, (type(error).__name__, again.fields)
    assert deserialize(serialize(RateLimited("x", retry_after=30))).retry_after == 30
    assert deserialize(serialize(TwoFactorRequired("x"))).challenge is None
    assert deserialize(serialize(TwoFactorRequired("x", challenge="c"))).challenge == "c"
