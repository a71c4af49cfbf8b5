"""Invoices as PDF (fpdf2), in the customer's language, with Babel's number and date formats.

The text uses DejaVu Sans (Latin, Cyrillic and more): `HOSTLEDGER_PDF_FONT` names the
TTF file; Debian's fonts-dejavu-core puts it where the default looks.
"""

from __future__ import annotations

import os
import re
from datetime import date
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision

FONT = os.environ.get("HOSTLEDGER_PDF_FONT", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BOLD = FONT.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
NBSP = "\u00a0"
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

LABELS = {
    "en": {
        "invoice": "Invoice",
        "issued": "Issued",
        "due": "Due",
        "seller": "Seller",
        "buyer": "Bill to",
        "description": "Description",
        "quantity": "Qty",
        "unit_price": "Unit price",
        "amount": "Amount",
        "total": "Total",
        "status": "Status",
        "unpaid": "Unpaid",
        "paid": "Paid",
        "cancelled": "Cancelled",
        "refunded": "Refunded",
        "void": "Void",
        "period": "Period",
        "credit_note": "Credit note",
        "for_invoice": "For invoice",
        "reason": "Reason",
    },
    "ru": {
        "invoice": "Счёт",
        "issued": "Дата выставления",
        "due": "Оплатить до",
        "seller": "Продавец",
        "buyer": "Покупатель",
        "description": "Наименование",
        "quantity": "Кол-во",
        "unit_price": "Цена",
        "amount": "Сумма",
        "total": "Итого",
        "status": "Статус",
        "unpaid": "Не оплачен",
        "paid": "Оплачен",
        "cancelled": "Отменён",
        "refunded": "Возвращён",
        "void": "Аннулирован",
        "period": "Период",
        "credit_note": "Кредит-нота",
        "for_invoice": "К счёту",
        "reason": "Причина",
    },
    "fr": {
        "invoice": "Facture",
        "issued": "Émise le",
        "due": "Échéance",
        "seller": "Vendeur",
        "buyer": "Facturé à",
        "description": "Désignation",
        "quantity": "Qté",
        "unit_price": "Prix unitaire",
        "amount": "Montant",
        "total": "Total",
        "status": "Statut",
        "unpaid": "Non payée",
        "paid": "Payée",
        "cancelled": "Retirée",
        "refunded": "Remboursée",
        "void": "Annulée",
        "period": "Période",
        "credit_note": "Avoir",
        "for_invoice": "Facture d'origine",
        "reason": "Motif",
    },
}


def labelled(label: str, value: str, language: str) -> str:
    """`Label: value`; French puts a no-break space before the colon."""
    return f"{label}{NBSP if language == 'fr' else ''}: {value}"


def line_period(line: dict, language: str) -> str | None:
    """The period an invoice line covers, as it is to be shown: as written on the line
    (`5 janv. 2027 - 4 févr. 2027`, or what staff typed). Lines written before periods
    were: an order's cycle already said in its description (`VPS (monthly)`) is not
    said again, and a renewal's first day (an ISO date) is written in `language`. A line
    with the period's days but no words for it (issued by staff) says its days in
    `language`."""
    period = line.get("period")
    if not period or f"({period})" in line.get("description", ""):
        start, end = line.get("period_start"), line.get("period_end")
        if not (start and end):
            return None
        return f"{_day(start, language)} – {_day(end, language)}"
    if ISO_DAY.fullmatch(period):
        return format_date(date.fromisoformat(period), format="medium", locale=language)
    return period


def _day(iso: str, language: str) -> str:
    """A day in `language`, whole (no line break inside it)."""
    return format_date(date.fromisoformat(iso), format="medium", locale=language).replace(" ", NBSP)


def money(amount: int, currency: str, language: str) -> str:
    digits = get_currency_precision(currency)
    return format_currency(Decimal(amount).scaleb(-digits), currency, locale=language)


def render(invoice: dict, language: str = "en", kind: str = "invoice") -> bytes:
    """The invoice (as `invoice_view` shapes it) as a PDF document; with
    kind="credit_note", a credit note (as `credit_note_view` shapes it)."""
    # imported on the first document, not as the service starts: fpdf2 (with Pillow and
    # fontTools) is a third of the billing process's import time, and few calls need it
    from fpdf import FPDF

    language = language if language in LABELS else "en"
    t = LABELS[language]
    currency = invoice["total"]["currency"]
    title = f"{t[kind]} {invoice['number']}"
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_creator("hostledger")
    pdf.add_font("body", "", FONT)
    pdf.add_font("body", "B", BOLD if os.path.exists(BOLD) else FONT)
    pdf.add_page()
    pdf.set_font("body", "B", 18)
    pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("body", "", 10)
    issued = date.fromisoformat(invoice["issued_at"][:10])
    facts = [(t["issued"], format_date(issued, format="long", locale=language))]
    if kind == "credit_note":
        facts += [(t["for_invoice"], invoice["invoice_number"]), (t["reason"], invoice["reason"])]
    else:
        due = date.fromisoformat(invoice["due_date"])
        facts += [
            (t["due"], format_date(due, format="long", locale=language)),
            (t["status"], t.get(invoice["status"], invoice["status"])),
        ]
    for label, value in facts:
        pdf.cell(0, 6, labelled(label, value, language), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    seller, buyer = invoice.get("seller") or {}, invoice.get("buyer") or {}
    y = pdf.get_y()
    for x, title, party in ((10, t["seller"], seller), (110, t["buyer"], buyer)):
        pdf.set_xy(x, y)
        pdf.set_font("body", "B", 10)
        pdf.cell(90, 6, title, new_x="LEFT", new_y="NEXT")
        pdf.set_font("body", "", 10)
        for line in _party_lines(party):
            pdf.cell(90, 5, line, new_x="LEFT", new_y="NEXT")
    pdf.set_xy(10, max(pdf.get_y(), y + 30))
    pdf.ln(4)
    with pdf.table(
        col_widths=(90, 20, 40, 40), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"), line_height=7
    ) as table:
        header = table.row()
        for label in ("description", "quantity", "unit_price", "amount"):
            header.cell(t[label])
        for line in invoice["lines"]:
            row = table.row()
            text = line["description"]
            period = line_period(line, language)
            if period:
                text += "\n" + labelled(t["period"], period, language)
            row.cell(text)
            row.cell(str(line["quantity"]))
            row.cell(money(line["unit_price"]["amount"], currency, language))
            row.cell(money(line["total"]["amount"], currency, language))
    pdf.ln(4)
    pdf.set_font("body", "B", 12)
    pdf.cell(
        0,
        8,
        labelled(t["total"], money(invoice["total"]["amount"], currency, language), language),
        align="R",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    return bytes(pdf.output())


def _party_lines(party: dict) -> list[str]:
    lines = [
        party.get("legal_name")
        or party.get("company_name")
        or party.get("name")
        or party.get("contact_person")
        or ""
    ]
    if party.get("company_name") and party.get("contact_person"):
        lines.append(party["contact_person"])
    for key in ("address", "country", "tax_id", "email"):
        if party.get(key):
            lines.append(str(party[key]))
    return [line for line in lines if line]
