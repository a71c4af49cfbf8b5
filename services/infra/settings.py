"""Every setting of every process, read from the environment in one place.

Defaults work on a single machine with PostgreSQL and RabbitMQ on localhost.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

SERVICES = ("customers", "billing", "orders", "helpdesk", "mailgateway")


@dataclass(frozen=True)
class DatabaseServer:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> DatabaseServer:
        parsed = urlparse(url)
        if parsed.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {url!r}")
        return cls(
            host=parsed.hostname or "localhost",
            port=parsed.port or 5432,
            user=unquote(parsed.username or "postgres"),
            password=unquote(parsed.password or ""),
        )

    def conninfo(self, dbname: str) -> str:
        parts = [f"host={self.host}", f"port={self.port}", f"user={self.user}", f"dbname={dbname}"]
        if self.password:
            parts.append(f"password={self.password}")
        return " ".join(parts)


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None


def _networks(env: dict[str, str], name: str) -> tuple:
    """A comma-separated list of addresses or CIDRs, as ip_network objects."""
    out = []
    for part in (env.get(name) or "").split(","):
        if part.strip():
            try:
                out.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{name}: {part.strip()!r} is not an address or CIDR") from None
    return tuple(out)


def _flag(env: dict[str, str], name: str) -> bool:
    return (env.get(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value >= 0:
        raise ValueError(f"{name} must be 0 or more seconds, not {raw!r}")
    return value


def _log_format(env: dict[str, str]) -> str:
    value = (env.get("HOSTLEDGER_LOG_FORMAT") or "json").strip().lower()
    if value not in ("json", "text"):
        raise ValueError(f"HOSTLEDGER_LOG_FORMAT must be json or text, not {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    amqp_uri: str
    database: DatabaseServer
    db_prefix: str
    events_exchange: str
    http_host: str
    http_port: int
    smtp_in_port: int
    smtp_host: str
    smtp_port: int
    admin_username: str
    admin_password: str | None
    clock_file: str | None
    failpoints: frozenset[str] = field(default_factory=frozenset)
    lock_timeout_seconds: int = 5
    pool_size: int = 2
    # how long a process may keep using a customer's personal-data key it read
    personal_key_cache_seconds: float = 5.0
    catchup_interval: float = 30.0
    handler_attempts: int = 3
    rpc_timeout: float = 30.0
    # seconds a process asked to stop (SIGTERM) has to finish what is in flight before it
    # exits anyway (services/infra/shutdown.py); below the platform's own grace period
    shutdown_grace: float = 20.0
    # days a request's record (and its Idempotency-Key's answer) is kept
    request_retention_days: int = 7
    stripe_webhook_secret: str | None = None
    scheduler_interval: float = 60.0
    renew_days_before: int = 7
    suspend_after_days: int = 5
    terminate_after_days: int = 30
    provisioning_secret: str | None = None
    reminder_days_before: int = 3
    provisioning_backoff: float = 5.0
    scheduler_batch: int = 50
    stripe_secret_key: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    mail_domain: str = "hostledger.local"
    mail_from: str = ""
    mail_rate_limit: int = 20
    mail_rate_window: float = 600.0
    outbox_backoff: float = 5.0
    # seconds the mail gateway waits for each answer of the outgoing relay
    smtp_timeout: float = 30.0
    imap_mailboxes: str = ""
    imap_interval: float = 60.0
    smtp_in_host: str = "127.0.0.1"
    mail_in: bool = True
    data_dir: str = ".hostledger/data"
    broadcast_inline: int = 50
    broadcast_batch: int = 200
    broadcast_interval: float = 2.0
    # proxies whose X-Forwarded-For names the client (addresses or CIDRs); none by default
    trusted_proxies: tuple = ()
    # where links in mail point (password reset); default: the gateway's own address
    public_url: str = ""
    # the authserv-id of our own MTA's Authentication-Results header (RFC 8601); unset:
    # such headers are not trusted
    mail_authserv_id: str = ""
    # products' provisioning webhooks may point at loopback, link-local or private hosts
    provisioning_allow_private: bool = False
    # the public order form: attempts per address, and per e-mail, in 15 minutes
    order_form_limit: int = 20
    order_form_email_limit: int = 10
    # addresses no per-address limit applies to (a monitoring probe, a load test)
    rate_limit_exempt: tuple = ()
    # a checkpoint of each service's chain every so many events, and at the latest so
    # many seconds after the first event no checkpoint covers yet
    chain_checkpoint_events: int = 100
    chain_checkpoint_interval: float = 300.0
    # the test suite's stacks only: argon2id at its least cost (services/infra/passwords.py)
    test_cheap_password_hashes: bool = False
    # Prometheus metrics and the probes (/metrics, /livez, /readyz) of this process, on
    # their own port (0: none); the mail-in process, a child of the mailgateway, has its own
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    mailin_metrics_port: int = 0
    # ready (/readyz) only while every read model is at most this many events behind its
    # log (0: not checked)
    ready_max_lag: int = 1000
    # the gateway keeps each session it checked this many seconds (0: asks the customers
    # service on every request), at most this many sessions (gateway/session_cache.py)
    session_cache_seconds: float = 30.0
    session_cache_size: int = 10000
    # how processes write their log: "json" (one object a line) or "text"
    log_format: str = "json"

    def database_name(self, service: str) -> str:
        return f"{self.db_prefix}{service}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            amqp_uri=env.get("AMQP_URI") or "pyamqp://guest:guest@localhost:5672/",
            database=DatabaseServer.from_url(
                env.get("DATABASE_URL") or "postgresql://postgres@localhost:5432/"
            ),
            db_prefix=env.get("HOSTLEDGER_DB_PREFIX") or "hostledger_",
            events_exchange=env.get("HOSTLEDGER_EVENTS_EXCHANGE") or "hostledger.events",
            http_host=env.get("HOSTLEDGER_HTTP_HOST") or "127.0.0.1",
            http_port=_int(env, "HOSTLEDGER_HTTP_PORT", 8000),
            smtp_in_port=_int(env, "HOSTLEDGER_SMTP_PORT", 2525),
            smtp_host=env.get("SMTP_HOST") or "localhost",
            smtp_port=_int(env, "SMTP_PORT", 25),
            admin_username=env.get("HOSTLEDGER_ADMIN_USERNAME") or "admin",
            admin_password=env.get("HOSTLEDGER_ADMIN_PASSWORD") or None,
            clock_file=env.get("HOSTLEDGER_CLOCK_FILE") or None,
            failpoints=frozenset(
                p.strip() for p in (env.get("HOSTLEDGER_FAILPOINTS") or "").split(",") if p.strip()
            ),
            lock_timeout_seconds=_int(env, "HOSTLEDGER_LOCK_TIMEOUT", 5),
            pool_size=_int(env, "HOSTLEDGER_DB_POOL_SIZE", 2),
            catchup_interval=float(env.get("HOSTLEDGER_CATCHUP_INTERVAL") or 30.0),
            handler_attempts=_int(env, "HOSTLEDGER_HANDLER_ATTEMPTS", 3),
            rpc_timeout=float(env.get("HOSTLEDGER_RPC_TIMEOUT") or 30.0),
            shutdown_grace=float(env.get("HOSTLEDGER_SHUTDOWN_GRACE") or 20.0),
            request_retention_days=_int(env, "HOSTLEDGER_REQUEST_RETENTION_DAYS", 7),
            stripe_webhook_secret=env.get("HOSTLEDGER_STRIPE_WEBHOOK_SECRET") or None,
            scheduler_interval=float(env.get("HOSTLEDGER_SCHEDULER_INTERVAL") or 60.0),
            renew_days_before=_int(env, "HOSTLEDGER_RENEW_DAYS_BEFORE", 7),
            suspend_after_days=_int(env, "HOSTLEDGER_SUSPEND_AFTER_DAYS", 5),
            terminate_after_days=_int(env, "HOSTLEDGER_TERMINATE_AFTER_DAYS", 30),
            provisioning_secret=env.get("HOSTLEDGER_PROVISIONING_SECRET") or None,
            personal_key_cache_seconds=float(
                env.get("HOSTLEDGER_PERSONAL_KEY_CACHE_SECONDS") or 5.0
            ),
            reminder_days_before=_int(env, "HOSTLEDGER_REMINDER_DAYS_BEFORE", 3),
            provisioning_backoff=float(env.get("HOSTLEDGER_PROVISIONING_BACKOFF") or 5.0),
            scheduler_batch=_int(env, "HOSTLEDGER_SCHEDULER_BATCH", 50),
            stripe_secret_key=env.get("HOSTLEDGER_STRIPE_SECRET_KEY") or None,
            stripe_api_base=env.get("HOSTLEDGER_STRIPE_API_BASE") or "https://api.stripe.com",
            mail_domain=env.get("HOSTLEDGER_MAIL_DOMAIN") or "hostledger.local",
            mail_from=env.get("HOSTLEDGER_MAIL_FROM") or "",
            mail_rate_limit=_int(env, "HOSTLEDGER_MAIL_RATE_LIMIT", 20),
            mail_rate_window=float(env.get("HOSTLEDGER_MAIL_RATE_WINDOW") or 600.0),
            outbox_backoff=float(env.get("HOSTLEDGER_OUTBOX_BACKOFF") or 5.0),
            smtp_timeout=float(env.get("HOSTLEDGER_SMTP_TIMEOUT") or 30.0),
            imap_mailboxes=env.get("HOSTLEDGER_IMAP_MAILBOXES") or "",
            imap_interval=float(env.get("HOSTLEDGER_IMAP_INTERVAL") or 60.0),
            smtp_in_host=env.get("HOSTLEDGER_SMTP_HOST") or "127.0.0.1",
            mail_in=(env.get("HOSTLEDGER_MAIL_IN") or "1") not in ("0", "false", "no"),
            data_dir=env.get("HOSTLEDGER_DATA_DIR") or ".hostledger/data",
            broadcast_inline=_int(env, "HOSTLEDGER_BROADCAST_INLINE", 50),
            broadcast_batch=_int(env, "HOSTLEDGER_BROADCAST_BATCH", 200),
            broadcast_interval=float(env.get("HOSTLEDGER_BROADCAST_INTERVAL") or 2.0),
            trusted_proxies=_networks(env, "HOSTLEDGER_TRUSTED_PROXIES"),
            public_url=(
                env.get("HOSTLEDGER_PUBLIC_URL")
                or "http://{}:{}".format(
                    env.get("HOSTLEDGER_HTTP_HOST") or "127.0.0.1",
                    env.get("HOSTLEDGER_HTTP_PORT") or "8000",
                )
            ).rstrip("/"),
            mail_authserv_id=(env.get("HOSTLEDGER_MAIL_AUTHSERV_ID") or "").strip().lower(),
            provisioning_allow_private=_flag(env, "HOSTLEDGER_PROVISIONING_ALLOW_PRIVATE"),
            order_form_limit=_int(env, "HOSTLEDGER_ORDER_FORM_LIMIT", 20),
            order_form_email_limit=_int(env, "HOSTLEDGER_ORDER_FORM_EMAIL_LIMIT", 10),
            rate_limit_exempt=_networks(env, "HOSTLEDGER_RATE_LIMIT_EXEMPT"),
            chain_checkpoint_events=_int(env, "HOSTLEDGER_CHAIN_CHECKPOINT_EVENTS", 100),
            chain_checkpoint_interval=float(
                env.get("HOSTLEDGER_CHAIN_CHECKPOINT_INTERVAL") or 300.0
            ),
            test_cheap_password_hashes=_flag(env, "HOSTLEDGER_TEST_CHEAP_PASSWORD_HASHES"),
            metrics_port=_int(env, "HOSTLEDGER_METRICS_PORT", 0),
            metrics_host=env.get("HOSTLEDGER_METRICS_HOST") or "127.0.0.1",
            mailin_metrics_port=_int(env, "HOSTLEDGER_MAILIN_METRICS_PORT", 0),
            ready_max_lag=_int(env, "HOSTLEDGER_READY_MAX_LAG", 1000),
            session_cache_seconds=_seconds(env, "HOSTLEDGER_SESSION_CACHE_SECONDS", 30.0),
            session_cache_size=max(1, _int(env, "HOSTLEDGER_SESSION_CACHE_SIZE", 10000)),
            log_format=_log_format(env),
        )


def settings() -> Settings:
    """The settings of this process (read once)."""
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def reset_settings() -> None:
    global _settings
    _settings = None


_settings: Settings | None = None
