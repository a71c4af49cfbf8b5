"""Help for clients: /help lists the parts of the client area, /help/<module> explains
one (dashboard, services, finances, support, affiliate, settings). The text is in the
catalogues like every page string (marked here with N_, translated in the template)."""

from __future__ import annotations

from werkzeug.exceptions import NotFound

from gateway.web.i18n import N_
from gateway.web.pages import PageCall, page

# module: (its section's title, where the section is, what the help says: paragraphs,
# the first one also the summary on /help)
MODULES = {
    "dashboard": (
        N_("Dashboard"),
        "/dashboard",
        (
            N_(
                "The dashboard is the first page after you log in: the balance of your "
                "personal account, your services with their next due dates, your unpaid "
                "invoices and your open tickets."
            ),
            N_(
                "Each panel shows the first few; the menu leads to the full lists. A user "
                "of your account sees only the panels its permissions allow."
            ),
        ),
    ),
    "services": (
        N_("Services"),
        "/services",
        (
            N_(
                "Services lists what you ordered, each with its status (awaiting payment, "
                "active, suspended or ended) and its next due date."
            ),
            N_(
                "A new service waits until its first invoice is paid, then becomes active. "
                "A renewal invoice comes a few days before each due date; a service still "
                "unpaid after its due date is suspended, and paying lifts the suspension."
            ),
            N_("Order more from the same section, or renew a service early."),
        ),
    ),
    "finances": (
        N_("Finances"),
        "/finances",
        (
            N_(
                "Your personal account holds money that pays your invoices: its balance and "
                "every movement are under Finances."
            ),
            N_(
                "Pay an invoice from the balance or by card on the payment page, and top "
                "the account up at any time with an add-funds invoice."
            ),
            N_(
                "Payments, expenses and credit notes (for refunds) are listed there too; "
                "every invoice and credit note can be downloaded as a PDF."
            ),
        ),
    ),
    "support": (
        N_("Support"),
        "/support",
        (
            N_(
                "Open a ticket under Support: choose the department, give what it asks for "
                "(a domain, a server), describe the problem and attach files that help."
            ),
            N_(
                "Our answers appear on the ticket's page and reach you by e-mail; reply on "
                "the page or by answering the e-mail."
            ),
            N_("Move a settled ticket to the archive, and reopen it whenever you need to."),
        ),
    ),
    "affiliate": (
        N_("Affiliate program"),
        "/affiliate",
        (
            N_(
                "Your referral link and code are on the Affiliate program page: share the "
                "link, or give the code to whoever registers."
            ),
            N_(
                "The customers who came through it are listed by customer number and "
                "registration date only: their details stay private."
            ),
            N_(
                "On what they pay you earn a commission under the affiliate program we "
                "assign; once its period has passed it is credited to your personal account."
            ),
        ),
    ),
    "settings": (
        N_("Settings"),
        "/settings",
        (
            N_(
                "Settings holds your contact details, your password and two-factor "
                "authentication, the users of your account, payers, notifications, and "
                "your language and display preferences."
            ),
            N_(
                "A new password ends your other sessions. A user you add logs in with its "
                "own username and sees only what its permissions allow."
            ),
        ),
    ),
}


class HelpPages:
    """Mixed into GatewayService."""

    @page("GET", "/help", client=True)
    def web_help(self, call: PageCall):
        return call.render("client/help.html", modules=MODULES)

    @page("GET", "/help/<module>", client=True)
    def web_help_module(self, call: PageCall):
        name = call.path.get("module")
        if name not in MODULES:
            raise NotFound()
        title, url, paragraphs = MODULES[name]
        return call.render(
            "client/help_module.html",
            module=name,
            title_msgid=title,
            section_url=url,
            paragraphs=paragraphs,
            modules=MODULES,
        )
