"""`hostledger`: the command operators and auditors run beside the services.

    hostledger databases                          create each service's database when missing
    hostledger first-admin                        the first staff administrator, when no staff exist
    hostledger readmodels status [<service>]      where each read model is in its service's log
    hostledger readmodels rebuild <service> [<model>]
                                                  empty read models and replay the log into them
    hostledger audit export --customer <id> | --since <instant> [--until <instant>]
                            [--format jsonl|csv] --out FILE
                                                  a customer's history or a time window's
                                                  events of every service, in time order
    hostledger audit verify-replay [<service>]    replay the history into scratch copies and
                                                  compare them with the live state
    hostledger audit verify-chain [<service>]     check each event log against its hash chain
                                                  and the other services' witnesses

Settings come from the environment as for the services (deploy/README.md). Each
subcommand has its own `--help`; long work shows a progress bar on a terminal.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable

PROG = "hostledger"
# modules adding `hostledger audit <action>` subcommands: each has register(subparsers),
# adding its parsers with set_defaults(run=...) (raise CommandError for what to say)
AUDIT_COMMANDS: tuple[str, ...] = (
    "services.audit_chain",
    "services.audit_replay",
    "services.audit_export",
)
SERVICES_WITH_READ_MODELS = ("customers", "billing", "orders", "helpdesk", "mailgateway")


class CommandError(Exception):
    """What went wrong, said to the person at the terminal (exit status 1)."""


def progress_bar(total: int, description: str, unit: str = "event"):
    """A tqdm bar on a terminal (silent when the output is not one), counting to `total`."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        unit_scale=True,
        disable=None,  # off when stderr is not a terminal
        leave=False,
        file=sys.stderr,
    )


# -- databases, first administrator -------------------------------------------------------


def cmd_databases(args) -> int:
    import psycopg

    from services.infra.databases import ensure_all
    from services.infra.settings import settings

    cfg = settings()
    try:
        created = ensure_all(cfg)
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"cannot reach PostgreSQL at {cfg.database.host}:{cfg.database.port}: {exc}"
        ) from exc
    for name in created:
        print(f"created database {name}")
    if not created:
        print("every service's database exists")
    return 0


def cmd_first_admin(args) -> int:
    """The username comes from HOSTLEDGER_ADMIN_USERNAME (default `admin`), the password
    from HOSTLEDGER_ADMIN_PASSWORD; without one a strong password is generated and
    printed, once. Nothing happens when staff already exist."""
    from services.customers.application import Customers
    from services.infra.context import Actor, acting
    from services.infra.databases import ensure_database
    from services.infra.settings import settings

    cfg = settings()
    ensure_database(cfg, cfg.database_name("customers"))
    app = Customers()
    try:
        with acting(Actor("system", "bootstrap")):
            created = app.ensure_first_admin(cfg.admin_username, cfg.admin_password)
    finally:
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


# -- read models ----------------------------------------------------------------------------


def _service_module(service: str):
    if service not in SERVICES_WITH_READ_MODELS:
        raise CommandError(
            f"no service named {service!r}; one of: {', '.join(SERVICES_WITH_READ_MODELS)}"
        )
    return importlib.import_module(f"services.{service}.service")


def open_application(service: str, app_cls: type):
    """The service's application on its database, or a CommandError saying why not."""
    import psycopg

    from services.infra.settings import settings

    cfg = settings()
    dbname = cfg.database_name(service)
    try:
        psycopg.connect(cfg.database.conninfo(dbname), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"cannot open the {service} service's database {dbname} at "
            f"{cfg.database.host}:{cfg.database.port} ({str(exc).strip()}); "
            "`hostledger databases` creates missing ones"
        ) from exc
    return app_cls()


def _models(service: str, name: str | None) -> tuple[type, list[type]]:
    module = _service_module(service)
    models = [m for m in getattr(module, "READ_MODELS", ()) if name in (None, m.name)]
    if not models:
        known = ", ".join(m.name for m in getattr(module, "READ_MODELS", ())) or "none"
        raise CommandError(f"{service} has no read model named {name!r} (it has: {known})")
    return module.APPLICATION, models


def cmd_readmodels_rebuild(args) -> int:
    from services.infra.readmodels import Follower

    app_cls, models = _models(args.service, args.model)
    app = open_application(args.service, app_cls)
    try:
        head = app.recorder.max_notification_id() or 0
        for model_cls in models:
            name = f"{args.service}.{model_cls.name}"
            with progress_bar(head, name) as bar:
                count = Follower(app, model_cls()).rebuild(progress=_advance(bar))
            print(f"{name}: replayed {count} events")
    finally:
        app.close()
    return 0


def _advance(bar) -> Callable[[int], None]:
    def advance(position: int) -> None:
        if position > bar.total:
            bar.total = position
        bar.update(position - bar.n)

    return advance


def cmd_readmodels_status(args) -> int:
    from services.infra.readmodels import Follower

    services = [args.service] if args.service else list(SERVICES_WITH_READ_MODELS)
    print(f"{'read model':<32} {'position':>10} {'head':>10} {'behind':>8} {'parked':>7}")
    for service in services:
        app_cls, models = _models(service, None)
        app = open_application(service, app_cls)
        try:
            for model_cls in models:
                status = Follower(app, model_cls()).status()
                print(
                    f"{service + '.' + model_cls.name:<32} {status['position']:>10} "
                    f"{status['head']:>10} {status['behind']:>8} {status['skipped']:>7}"
                )
        finally:
            app.close()
    return 0


# -- the parser -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Operate and audit hostledger: databases, staff, read models.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser(
        "databases",
        help="create each service's database when missing",
        description="Create hostledger_<service> for each service on the configured "
        "PostgreSQL server when it is missing (HOSTLEDGER_DB_* settings).",
    )
    p.set_defaults(run=cmd_databases)

    p = sub.add_parser(
        "first-admin",
        help="create the first staff administrator when no staff exist",
        description=cmd_first_admin.__doc__,
    )
    p.set_defaults(run=cmd_first_admin)

    rm = sub.add_parser(
        "readmodels",
        help="read models: status, rebuild",
        description="The query tables each service feeds from its own event log.",
    )
    rsub = rm.add_subparsers(dest="action", required=True, metavar="<action>")
    p = rsub.add_parser(
        "rebuild",
        help="empty a service's read models and replay its log into them",
        description="Empty the read models' tables and replay the service's whole log "
        "into them; events parked before are tried again. Safe while the service runs "
        "(the model is locked while it is rebuilt).",
    )
    p.add_argument("service", help=", ".join(SERVICES_WITH_READ_MODELS))
    p.add_argument("model", nargs="?", help="one model's name (default: all of the service's)")
    p.set_defaults(run=cmd_readmodels_rebuild)
    p = rsub.add_parser(
        "status",
        help="where each read model is in its service's log",
        description="Each read model's position, the log's head, how far behind it is, "
        "and how many events it parked.",
    )
    p.add_argument("service", nargs="?", help="one service (default: every service)")
    p.set_defaults(run=cmd_readmodels_status)

    if AUDIT_COMMANDS:
        audit = sub.add_parser(
            "audit",
            help="auditors' tools: export, verify",
            description="Read and verify the services' event history.",
        )
        asub = audit.add_subparsers(dest="action", required=True, metavar="<action>")
        for module in AUDIT_COMMANDS:
            importlib.import_module(module).register(asub)
    return top


def main(argv: list[str] | None = None) -> int:
    # the services' modules import eventlet, whose notice is not for this command's user
    warnings.filterwarnings("ignore", message="\nEventlet is deprecated")
    warnings.filterwarnings("ignore", message="Eventlet is deprecated")
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except CommandError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # run as `python -m services.cli`: the subcommand modules import `services.cli`, so
    # its main must be that module's, or their CommandError would not be this one's
    from services.cli import main as _main

    sys.exit(_main())
