"""Create the first staff administrator when no staff exist.

    python -m services.customers.bootstrap

The username comes from HOSTLEDGER_ADMIN_USERNAME (default `admin`), the password
from HOSTLEDGER_ADMIN_PASSWORD; without one a strong password is generated and
printed here, once. Nothing happens when staff already exist.
"""

from __future__ import annotations

import sys

from services.customers.application import Customers
from services.infra.context import Actor, acting
from services.infra.databases import ensure_database
from services.infra.settings import settings


def main() -> int:
    cfg = settings()
    ensure_database(cfg, cfg.database_name("customers"))
    app = Customers()
    with acting(Actor("system", "bootstrap")):
        created = app.ensure_first_admin(cfg.admin_username, cfg.admin_password)
    app.close()
    if created is None:
        print("staff accounts exist; no administrator created")
    elif created["password"]:
        print(f"first administrator created: username {created['username']!r}")
        print(f"  generated password (shown once, store it now): {created['password']}")
    else:
        print(
            f"first administrator created: username {created['username']!r} "
            "with the password from HOSTLEDGER_ADMIN_PASSWORD"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
