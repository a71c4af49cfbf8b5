"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
from importlib import metadata

LIBRARIES = ("eventsourcing", "psycopg", "nameko", "eventlet", "argon2-cffi", "kombu", "requests")


def machine(stack) -> dict:
    import psycopg

    with stack.db("customers") as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
        max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
        in_use = conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()[0]
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "postgresql_synchronous_commit": sync_commit,
        "postgresql_max_connections": max_connections,
        "postgresql_connections_in_use": in_use,
        "rabbitmq": _rabbitmq_version(stack.env["AMQP_URI"]),
        "psycopg_implementation": psycopg.pq.__impl__,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "load_average_at_start": list(os.getloadavg()),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _rabbitmq_version(amqp_uri: str) -> str | None:
    from kombu import Connection

    with Connection(amqp_uri) as conn:
        conn.connect()
        version = conn.connection.server_properties.get("version")
    return version.decode() if isinstance(version, bytes) else version


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def nameko_processes() -> list[int]:
    """`nameko run` processes on this machine (another stack running competes for the CPUs)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"nameko") for a in args) and b"run" in args:
            found.append(int(entry))
    return found
