"""How the staff panel's history pages say an audit history: each common event of every
service has a sentence in every language, an unknown one still reads as words (never a
class name alone), fields are named in the page's language, money is written as money,
and the page's paging, date field and whole page render as a person needs them."""

from __future__ import annotations

import pytest
from babel.messages.pofile import read_po

from contracts import audit as contract
from gateway.service import GatewayService  # noqa: F401 - declares the routes
from gateway.web import i18n
from gateway.web.pages import FormErrors, render
from gateway.web.staff import history as page
from gateway.web.staff import history_words as words
from services.billing.audit import MAPPING as BILLING
from services.customers.audit import MAPPING as CUSTOMERS
from services.helpdesk.audit import MAPPING as HELPDESK
from services.mailgateway.audit import MAPPING as MAILGATEWAY
from services.orders.audit import MAPPING as ORDERS


def _t(language: str):
    return i18n.translations(language)


def _item(type_, changes=(), aggregate_type=None, **extra) -> dict:
    return {
        "type": type_,
        "changes": [{"field": f, "before": b, "after": a} for f, b, a in changes],
        "aggregate": {"id": "a", "type": aggregate_type or type_.partition(".")[0], "version": 1},
        **extra,
    }


@pytest.mark.parametrize(
    ("type_", "en", "ru", "fr"),
    [
        (
            "Customer.Corrected",
            "Registration details corrected",
            "Регистрационные данные исправлены",
            "Informations d'inscription corrigées",
        ),
        ("Invoice.Paid", "Invoice paid", "Счёт оплачен", "Facture payée"),
        ("Ticket.Opened", "Ticket opened", "Тикет открыт", "Ticket ouvert"),
        ("Service.Suspended", "Service suspended", "Услуга приостановлена", "Service suspendu"),
    ],
)
def test_common_events_say_what_happened_in_each_language(type_, en, ru, fr):
    for language, expected in (("en", en), ("ru", ru), ("fr", fr)):
        assert words.event_text(_item(type_), _t(language)) == expected


def test_every_catalogued_event_and_field_is_translated():
    for language in ("ru", "fr"):
        path = i18n.LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as f:
            catalog = read_po(f, locale=language)
        statuses = {
            f"{kind}.{status}": entry
            for kind, values in words.STATUSES.items()
            for status, entry in values.items()
        }
        for catalogue in (words.EVENTS, words.SUBJECTS, words.FIELDS, words.AUDIT_READS, statuses):
            for key, entry in catalogue.items():
                context, msgid = entry if isinstance(entry, tuple) else (None, entry)
                message = catalog.get(msgid, context=context)
                assert message is not None and message.string, (language, key)
                assert "fuzzy" not in message.flags, (language, key)


def test_the_common_events_of_every_service_are_in_the_catalogue():
    # the events the services' audit mappings name a summary for have a sentence here too
    mappings = (BILLING, CUSTOMERS, HELPDESK, MAILGATEWAY, ORDERS)
    named = [k for m in mappings for k in m.summaries if "." in k]
    missing = [k for k in named if k not in words.EVENTS and k != "AuditRead.Recorded"]
    assert not missing


def test_an_unknown_event_reads_as_words_never_as_a_class_name():
    said = words.event_text(_item("Customer.EmailCorrected"), _t("en"))
    assert said == "Customer: email corrected"
    said = words.event_text(_item("Customer.EmailCorrected"), _t("ru"))
    assert said == "Клиент: email corrected"
    said = words.event_text(_item("SomethingNew.HappenedToday"), _t("fr"))
    assert said == "Something new: happened today"
    assert "." not in said


def test_an_audit_read_says_what_was_read():
    read = _item("AuditRead.Recorded", [("view", None, "state"), ("object_kind", None, "invoice")])
    assert words.event_text(read, _t("en")) == "Audit: a past state read"
    read = _item("AuditRead.Recorded", [("view", None, "history")])
    assert words.event_text(read, _t("ru")) == "Аудит: просмотр истории"


@pytest.mark.parametrize(
    ("field", "aggregate", "language", "expected"),
    [
        ("email", "Customer", "en", "E-mail"),
        ("contact_person", "Customer", "ru", "Контактное лицо"),
        ("name", "Customer", "en", "Display name"),
        ("name", "CustomerGroup", "ru", "Название"),
        ("name", "StaffMember", "ru", "Имя"),
        ("buyer.email", "PersonalAccount", "fr", "Acheteur · E-mail"),
        (
            "notification_settings.invoice_due",
            "Customer",
            "en",
            "Notification settings · Invoice due",
        ),
        ("registration_whatever", None, "en", "Registration whatever"),
    ],
)
def test_fields_are_named_in_the_pages_language(field, aggregate, language, expected):
    assert words.field_label(field, _t(language), aggregate) == expected


@pytest.mark.parametrize(
    ("field", "aggregate", "en", "ru", "fr"),
    [
        ("names.fr", "Service", "Names · French", "Названия · Французский", "Noms · Français"),
        ("names.en", "Service", "Names · English", "Названия · Английский", "Noms · Anglais"),
        ("name.ru", "Product", "Name · Russian", "Название · Русский", "Nom · Russe"),
        (
            "description.fr",
            "Product",
            "Description · French",
            "Описание · Французский",
            "Description · Français",
        ),
    ],
)
def test_what_is_kept_per_language_is_named_with_the_language(field, aggregate, en, ru, fr):
    # `names.fr` once read "Names · Fr" on every page: the language's code, untranslated
    for language, expected in (("en", en), ("ru", ru), ("fr", fr)):
        assert words.field_label(field, _t(language), aggregate) == expected


def test_every_language_of_the_pages_is_worded():
    for code in i18n.LANGUAGE_NAMES:
        assert code in words.FIELDS and code in words.LANGUAGES
    # a language as a value reads as its name; one the pages have not, as it is
    assert words.value_text("language", "fr", "ru", _t("ru")) == "Французский"
    assert words.value_text("changes.language", "ru", "fr", _t("fr")) == "Russe"
    assert words.value_text("language", "de", "en", _t("en")) == "de"


def _event_fields(event_class) -> set[str]:
    import dataclasses

    envelope = {"originator_id", "originator_version", "timestamp", "originator_topic"}
    return {f.name for f in dataclasses.fields(event_class)} - envelope


# fields of these events worded nowhere yet; a field added to one must be worded here
NOT_WORDED_YET = {"provisioning"}


def test_the_fields_of_an_order_a_service_and_an_invoice_are_worded():
    from services.billing.domain import Invoice
    from services.orders.domain import Order, Service

    for event_class in (Service.Created, Order.Placed, Invoice.Issued):
        unworded = _event_fields(event_class) - set(words.FIELDS) - NOT_WORDED_YET
        assert not unworded, (event_class.__qualname__, unworded)
    # and the keys of their records: an add-on's, an invoice line's
    for key in ("id", "name", "names", "price", "setup_fee"):
        assert key in words.FIELDS, key
    for key in ("description", "quantity", "unit_price", "period", "period_start", "period_end"):
        assert key in words.FIELDS, key


def test_a_service_ordered_reads_in_the_pages_language():
    item = _item(
        "Service.Created",
        [
            ("name", None, "VPS Start"),
            ("names.en", None, "VPS Start"),
            ("names.fr", None, "VPS Démarrage"),
            (
                "addons",
                None,
                [{"id": "a1", "name": "Backup", "names": {"en": "Backup", "fr": "Sauvegarde"}}],
            ),
        ],
    )
    shown = words.changes_shown(item, "fr", _t("fr"), currency="EUR")
    assert [c["label"] for c in shown] == ["Nom", "Noms · Anglais", "Noms · Français", "Options"]
    # an add-on's names kept apart from its other fields
    assert shown[3]["after"] == (
        "Identifiant\u00a0: a1; Nom\u00a0: Backup; "
        "Noms\u00a0: (Anglais\u00a0: Backup; Français\u00a0: Sauvegarde)"
    )
    lines = [{"description": "VPS", "period_start": "2027-01-05", "period_end": "2027-02-04"}]
    assert words.value_text("lines", lines, "en", _t("en"), "EUR") == (
        "Description: VPS; First day of the period: Jan\u00a05,\u00a02027; "
        "Last day of the period: Feb\u00a04,\u00a02027"
    )


def test_values_are_shown_as_they_are_money_as_money():
    t = _t("en")
    assert words.value_text("total", 1999, "en", t, "EUR") == "€19.99"
    assert words.value_text("balance_after", -1999, "fr", _t("fr"), "EUR") == "-19,99\u00a0€"
    # an amount without a known currency stays a number
    assert words.value_text("amount", 1999, "en", t, None) == "1999"
    assert words.value_text("number", 1001, "en", t) == "1001"
    assert words.value_text("price", {"amount": 500, "currency": "USD"}, "en", t) == "$5.00"
    assert words.value_text("email", "a@example.com", "en", t) == "a@example.com"
    assert words.value_text("note", None, "en", t) == "—"
    assert words.value_text("active", True, "ru", _t("ru")) == "Да"
    assert words.value_text("at", "2026-03-05T14:30:00.000000Z", "ru", _t("ru")) == (
        i18n.datetime("2026-03-05T14:30:00+00:00", "ru")
    )
    assert words.value_text("due_date", "2026-12-18", "fr", _t("fr")) == "18\u00a0déc.\u00a02026"
    assert words.value_text("group_ids", ["g1", "g2"], "en", t) == "g1, g2"
    lines = [{"description": "Hosting", "quantity": 1, "unit_price": 1999}]
    assert words.value_text("lines", lines, "en", t, "EUR") == (
        "Description: Hosting; Quantity: 1; Unit price: €19.99"
    )
    assert words.value_text("body", "x" * 400, "en", t).endswith("…")


def test_changes_are_listed_before_and_after_with_the_events_currency():
    item = _item(
        "PersonalAccount.Credited",
        [("amount", None, 5000), ("currency", None, "USD"), ("balance_after", 1000, 6000)],
    )
    shown = words.changes_shown(item, "en", _t("en"), currency="EUR")
    assert shown[0] == {"field": "amount", "label": "Amount", "before": None, "after": "$50.00"}
    assert shown[2]["before"] == "$10.00" and shown[2]["after"] == "$60.00"
    corrected = _item("Customer.Corrected", [("email", "old@example.com", "new@example.com")])
    [change] = words.changes_shown(corrected, "ru", _t("ru"))
    assert change == {
        "field": "email",
        "label": "E-mail",
        "before": "old@example.com",
        "after": "new@example.com",
    }


def test_a_status_reads_in_the_words_its_objects_list_uses():
    suspended = _item("Service.Suspended", [("status", "active", "suspended")])
    for language, before, after in (
        ("en", "Active", "Suspended"),
        ("ru", "Активна", "Приостановлена"),
        ("fr", "Actif", "Suspendu"),
    ):
        [change] = words.changes_shown(suspended, language, _t(language))
        assert (change["before"], change["after"]) == (before, after), language
    paid = _item("Invoice.Paid", [("status", "unpaid", "paid")])
    [change] = words.changes_shown(paid, "fr", _t("fr"))
    assert (change["before"], change["after"]) == ("Impayée", "Payée")
    # the same word of another object's status is that object's: an order's "pending"
    [order] = words.changes_shown(
        _item("Order.Placed", [("status", None, "pending")]), "en", _t("en")
    )
    assert order["after"] == "Awaiting payment"
    # a status no list names, and another field's value, stay as they are
    odd = _item("Service.Suspended", [("status", None, "frozen"), ("reason", None, "paid")])
    assert [c["after"] for c in words.changes_shown(odd, "en", _t("en"))] == ["frozen", "paid"]
    state = words.state_shown({"status": "customer_reply"}, "Ticket", "ru", _t("ru"))
    assert state[0]["value"] == "Ответ клиента"
    removed = _item("CustomerUser.Removed", [("removed", False, True)])
    assert words.changes_shown(removed, "fr", _t("fr"))[0]["label"] == "Retiré"


def test_a_past_state_is_a_definition_list():
    state = {
        "number": "000001",
        "total": 1999,
        "currency": "EUR",
        "buyer": {"email": "b@example.com"},
        "lines": [{"description": "Hosting", "total": 1999}],
        "status": "unpaid",
    }
    rows = {r["field"]: r for r in words.state_shown(state, "Invoice", "en", _t("en"))}
    assert rows["number"]["label"] == "Invoice number"
    assert rows["total"]["value"] == "€19.99"
    assert rows["buyer.email"] == {
        "field": "buyer.email",
        "label": "Buyer · E-mail",
        "value": "b@example.com",
        "records": None,
    }
    assert rows["lines"]["records"] == ["Description: Hosting; Total: €19.99"]
    assert rows["status"]["value"] == "Unpaid"


# -- the page's own rules ------------------------------------------------------------------


def test_older_and_newer_follow_the_cursors_both_ways():
    base = "/staff/customers/x/history"
    c1, c2, c3 = (
        contract.encode_cursor(
            {"occurred_at": "2026-03-05T14:30:00+00:00", "service": "billing", "position": n},
            "newest",
        )
        for n in (3, 2, 1)
    )
    # newest first (the page's default, nothing in the address): the first page has no
    # way back, onwards ("Older") goes to the next cursor
    assert page._back_url(base, {}, None, []) is None
    assert page._onwards_url(base, {}, None, [], c1) == f"{base}?cursor={c1}"
    # the second: back ("Newer") is the first page
    assert page._back_url(base, {}, c1, []) == base
    assert page._onwards_url(base, {}, c1, [], c2) == f"{base}?cursor={c2}&trail={c1}"
    # the third: back is the second, and so on back
    assert page._back_url(base, {}, c2, [c1]) == f"{base}?cursor={c1}"
    assert page._back_url(base, {}, c3, [c1, c2]) == f"{base}?cursor={c2}&trail={c1}"
    assert page._onwards_url(base, {}, c2, [c1], None) is None
    # oldest first: the same, with the order kept in every link
    here = {"order": "oldest"}
    o1 = contract.encode_cursor(contract.decode_cursor(c1, "newest"))
    assert page._onwards_url(base, here, None, [], o1) == f"{base}?order=oldest&cursor={o1}"
    assert page._back_url(base, here, o1, []) == f"{base}?order=oldest"
    # a trail that is no list of this order's cursors is dropped
    assert page._trail(f"{c1}.{c2}", "newest") == [c1, c2]
    assert page._trail(f"{c1}.{c2}", "oldest") == []
    assert page._trail(f"{c1}.<script>", "newest") == []
    assert page._trail(".".join([c1] * (page.TRAIL_MAX + 1)), "newest") == []
    assert page._is_cursor(o1, "oldest") and not page._is_cursor(o1, "newest")
    assert not page._is_cursor("c1", "oldest")


class _Call:
    def gettext(self, message, **variables):
        return message % variables if variables else message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-05T14:30", "2026-03-05T14:30:00+00:00"),
        ("2026-03-05T14:30:15", "2026-03-05T14:30:15+00:00"),
        ("2026-03-05", None),
        ("yesterday", None),
        ("2026-13-05T14:30", None),
    ],
)
def test_the_moment_is_a_date_and_time_in_utc_or_an_error_next_to_the_field(text, expected):
    errors = FormErrors()
    moment = page._instant(_Call(), text, errors)
    if expected is None:
        assert moment is None and "at" in errors
    else:
        assert moment.isoformat() == expected and not errors


@pytest.mark.parametrize("language", ["en", "ru", "fr"])
def test_the_history_page_renders_in_each_language(language):
    t = _t(language)
    item = _item(
        "Customer.Corrected",
        [("email", "old@example.com", "new@example.com")],
        reason="the client phoned",
    )
    entry = {
        "at": "2026-03-05T14:30:00.000000Z",
        "what": words.event_text(item, t),
        "subject": words.subject_text("Customer", t),
        "own": True,
        "link": None,
        "who": {"text": "Alice Admin", "href": "/staff/staff/s1"},
        "acting": None,
        "reason": "the client phoned",
        "changes": words.changes_shown(item, language, t),
    }
    many = dict(entry, changes=entry["changes"] * 7)
    response = render(
        "staff/history.html",
        language,
        principal={"kind": "staff", "role": "auditor", "name": "A"},
        csrf_token="",
        current_path="/staff/customers/c1/history",
        can=lambda spec: True,
        filtered_customer=None,
        kind="customer",
        object_id="c1",
        title="History",
        subject="Test Person",
        object_url="/staff/customers/c1",
        base_url="/staff/customers/c1/history",
        entries=[entry, many],
        page_number=2,
        newest=True,
        back_url="/staff/customers/c1/history",
        onwards_url="/staff/customers/c1/history?cursor=c2&trail=c1",
        newest_url="/staff/customers/c1/history",
        oldest_url="/staff/customers/c1/history?order=oldest",
        state_route="GET /api/v1/staff/audit/<any(customer,service,order):kind>/<uuid:object_id>",
        at_value="2026-03-05T14:30",
        errors=FormErrors().add("at", "x"),
        state={"at": "2026-03-05T14:30:00.000000Z", "as_of": "2026-03-05T14:00:00.000000Z"},
        state_rows=words.state_shown(
            {"number": "000001", "lines": [{"description": "Hosting"}], "buyer": {"a": 1}},
            "Invoice",
            language,
            t,
        ),
    )
    html = response.get_data(as_text=True)
    assert "old@example.com</del>" in html and "new@example.com</ins>" in html
    assert "the client phoned" in html and "Alice Admin" in html
    assert 'type="datetime-local"' in html and 'aria-invalid="true"' in html
    assert t.gettext("Older") in html and t.gettext("Newer") in html
    # newest first: onwards is older, back is newer; the other order a link away
    assert (
        f'<a rel="next" href="/staff/customers/c1/history?cursor=c2&amp;trail=c1">'
        f"{t.gettext('Older')}</a>" in html
    )
    assert f'<a rel="prev" href="/staff/customers/c1/history">{t.gettext("Newer")}</a>' in html
    assert f'href="/staff/customers/c1/history?order=oldest">{t.gettext("Oldest first")}' in html
    assert f'aria-current="true">{t.gettext("Newest first")}' in html
    assert t.gettext("Newest first; times are in UTC.") in html
    assert "<details" in html  # past five changes, the rest folds away
    assert "Customer.Corrected" not in html
    line = t.gettext("%(field)s: %(value)s") % {
        "field": words.field_label("description", t),
        "value": "Hosting",
    }
    assert f"<li>{line}</li>" in html
