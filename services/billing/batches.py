"""Issuing a batch of invoices in one save (the orders service's renewal run).

Each invoice of the batch is what `Billing.issue_invoice` would issue for it alone: the
same pricing, tax, buyer and seller, the same idempotency key and request (so a batch
and a single request for one renewal answer the same invoice, issued once). The
difference is that all of them, their numbers (taken consecutively from each
project's series), their idempotency records and their customers' invoice indexes are
saved together: a failed save uses no number, and a lost race (another issuer took a
number meanwhile) reprices nothing and issues the whole batch again with the next
numbers. One invoice that cannot be issued (a deleted customer, no account in its
currency, a key used for another request) is answered as an error, in its place, and
the others are issued.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from eventlet.semaphore import Semaphore

from contracts.errors import Conflict, HostledgerError, ValidationFailed
from services.billing.domain import Invoice, invoice_buyer
from services.billing.tax import invoice_totals
from services.infra import clock

# invoices in one batch at most (one save holds about four events per invoice)
MAX_BATCH = 500


def error_answer(exc: HostledgerError) -> dict:
    return exc.to_dict()  # {"error": {"code", "message", "fields"?}}


def issue_invoices(app, items: list, purpose: str) -> list[dict]:
    """Issue the invoices `items` ask for, in one save (`app`: the Billing
    application); answer, in their order,
    `{"invoice": view}` or `{"error": {"code", "message", ...}}`. An item is an
    error already (HostledgerError) or a dict: customer_id, currency, lines (plain),
    due_days, discounts (valid now), idempotency_key, request."""
    from services.billing.application import NOT_FOR_DELETED, price_line, retry_on_conflict

    if len(items) > MAX_BATCH:
        raise ValidationFailed(
            f"At most {MAX_BATCH} invoices in one batch.", {"requests": ["Too many."]}
        )
    answers: list[dict | None] = [None] * len(items)
    # a renewal's key names its service and period: asked again (a run after a crash
    # between this save and the orders service's), it is answered the invoice issued for
    # that period, though the request differs since (the day, the customer's language)
    renewal = purpose == "renewal"
    prepared = []
    accounts: dict = {}
    for n, item in enumerate(items):
        if isinstance(item, HostledgerError):
            answers[n] = error_answer(item)
            continue
        try:
            whose = (item["customer_id"], item["currency"])
            account = accounts.get(whose)
            if account is None:
                account = accounts[whose] = app.account(*whose)
            priced = [
                price_line(line, item["currency"], item["discounts"]) for line in item["lines"]
            ]
            if not priced:
                raise ValidationFailed("An invoice needs at least one line.", {"lines": ["Empty."]})
        except HostledgerError as exc:
            answers[n] = error_answer(exc)
            continue
        project_id = account.buyer.get("project_id")
        prepared.append((n, item, account, project_id, priced))

    def attempt() -> dict[int, dict]:
        from services.billing.application import invoice_view

        done: dict[int, dict] = {}
        first_of_key: dict[str, int] = {}
        used = _used_keys(app, [item.get("idempotency_key") for _, item, *_ in prepared])
        series, indexes, objs = {}, {}, []
        now = clock.now()
        table = app.tax_table()
        book = app.project_book()
        issuing = []  # what is issued now, in the batch's order
        for n, item, account, project_id, priced in prepared:
            key, request = item.get("idempotency_key"), item.get("request") or {}
            if key and key in first_of_key:
                done[n] = {"same_as": first_of_key[key]}
                continue
            try:
                # only the keys recorded already are read (one query found them)
                earlier = (
                    app.idempotent_answer("invoice", key, request, key_names_it=renewal)
                    if key in used
                    else None
                )
            except Conflict as exc:
                done[n] = error_answer(exc)
                continue
            if earlier is not None:
                done[n] = {"invoice": earlier}
                continue
            customer_id = item["customer_id"]
            if customer_id not in indexes:
                indexes[customer_id] = app._customer_invoices(customer_id)
            if indexes[customer_id].deleted:
                done[n] = error_answer(
                    Conflict(NOT_FOR_DELETED, {"customer_id": [NOT_FOR_DELETED]})
                )
                continue
            if key:
                first_of_key[key] = n
            issuing.append((n, item, account, project_id, priced))
        # each series gives the batch's numbers at once, one after another
        wanted: dict[str, int] = {}
        for _, _, _, project_id, _ in issuing:
            project_key = str(project_id or "default")
            wanted[project_key] = wanted.get(project_key, 0) + 1
        numbers = {}
        for project_key, count in wanted.items():
            series[project_key] = app._series(project_key)
            numbers[project_key] = iter(series[project_key].take_many(count))
        added: dict = {}
        for n, item, account, project_id, priced in issuing:
            key, request = item.get("idempotency_key"), item.get("request") or {}
            subtotal = sum(line["total"] for line in priced)
            rule = table.rule_for(project_id, account.buyer.get("country"), now)
            tax, total = invoice_totals(subtotal, rule)
            invoice = Invoice(
                customer_id=item["customer_id"],
                project_id=project_id,
                number=next(numbers[str(project_id or "default")]),
                purpose=purpose,
                lines=priced,
                currency=item["currency"],
                total=total,
                issued_at=now,
                due_date=(now + timedelta(days=item["due_days"])).date().isoformat(),
                buyer=invoice_buyer(account.buyer),
                seller=book.seller(project_id),
                subtotal=subtotal,
                tax=tax,
            )
            added.setdefault(item["customer_id"], []).append(invoice.id)
            answer = invoice_view(invoice)
            record = app.idempotency_record(
                "invoice", key, request, answer, customer_id=item["customer_id"]
            )
            objs += [invoice] + ([record] if record is not None else [])
            done[n] = {"invoice": answer}
        for customer_id, invoice_ids in added.items():
            indexes[customer_id].add_many(invoice_ids)
        if objs:
            app.save(*series.values(), *objs, *indexes.values())
        return done

    # the series' locks of this process, in one order (no two batches wait on each
    # other); other instances are kept honest by the series' versions
    keys = sorted({str(p or "default") for _, _, _, p, _ in prepared})
    locks = [app._series_locks.setdefault(k, Semaphore()) for k in keys]
    for lock in locks:
        lock.acquire()
    try:
        done = retry_on_conflict(attempt) if prepared else {}
    finally:
        for lock in reversed(locks):
            lock.release()
    for n, answer in done.items():
        answers[n] = answer
    for n, answer in enumerate(answers):
        if answer is not None and "same_as" in answer:
            answers[n] = answers[answer["same_as"]]
    return answers


def _used_keys(app, keys: list) -> set[str]:
    """Those of these idempotency keys (scope `invoice`) an invoice was issued with."""
    from services.infra.domain import IdempotencyKey

    ids = {IdempotencyKey.id_for("invoice", k): k for k in keys if k}
    if not ids:
        return set()
    with app.datastore.transaction() as curs:
        curs.execute(
            f"SELECT DISTINCT originator_id FROM {app.recorder.events_table_name}"
            " WHERE originator_id = ANY(%s)",
            (list(ids),),
        )
        return {ids[r["originator_id"]] for r in curs.fetchall()}


def batch_item(data: dict, currency: str, discounts: list, key: str | None, request: dict) -> dict:
    from contracts import billing as contract

    return {
        "customer_id": UUID(str(data["customer_id"])),
        "currency": currency,
        "lines": contract.plain_lines(data["lines"]),
        "due_days": data["due_days"],
        "discounts": list(discounts) + list(data["extra_discounts"]),
        "idempotency_key": key,
        "request": request,
    }
