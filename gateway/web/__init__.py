"""The web pages, served by the gateway beside the JSON API (`gateway/api/`).

    pages.py      the page entrypoint (`@page`): session cookie, CSRF, security headers,
                  language, errors as pages; `PageCall` renders templates and redirects
    i18n.py       languages (en, ru, fr), their catalogues, money/dates/numbers by Babel
    assets.py     static files (static/: stylesheet, vendored htmx, icon)
    client/       the client area at `/`: login, password reset, dashboard, ...
    staff/        the staff panel at `/staff/`: each page allows the roles of the API
                  route it mirrors (`@page(..., staff="POST /api/v1/staff/...")`)
    templates/    Jinja2, one template per page; `_form.html` has the labelled field
    locale/       gettext catalogues: messages.pot and <language>/LC_MESSAGES/messages.po
                  (`make messages` updates them, `make install` compiles the .mo files)

Pages call the services exactly as API routes do (`call.services`, as the person logged
in, with the same permission rule `gateway.http.client_may`); no page calls the gateway's
own HTTP API. Page methods are named `web_*`: GatewayService mixes pages and API routes
into one class, where a page method named like a route method (`login`) would hide it.
Every page works without JavaScript: forms post to ordinary URLs and the
answer is a page; htmx (hx-boost) only spares the reload.
"""
