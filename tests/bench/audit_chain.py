"""`hostledger audit verify-chain` against the bare substrate: SHA-256 over the same bytes.

A scratch database holds a customers log of `events` synthetic events (states of a
registration's size) and its chain. Three figures, in events per second:

- `sha256`: SHA-256 alone over exactly the bytes the verifier hashes, prepared in memory
  beforehand (no database, no encoding) - the most a verifier could do;
- `read`: the rows read from PostgreSQL in the verifier's batches, nothing else;
- `verify`: the command's whole check of that service (read, merge, hash, compare).

    python -m tests.bench.audit_chain [--events 200000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import uuid

import psycopg

from services.infra.chain import GENESIS, StoredRecord, chain, record_bytes
from services.infra.databases import drop_database, ensure_database
from services.infra.settings import SERVICES, Settings

TOPICS = (
    "services.customers.domain:Customer.Registered",
    "services.customers.domain:Customer.Updated",
    "services.customers.domain:CustomerUser.Created",
)


def _state(i: int) -> bytes:
    return json.dumps(
        {
            "actor": {"kind": "staff", "id": str(uuid.UUID(int=i % 97))},
            "on_behalf_of": None,
            "contact_person": f"Contact Person {i}",
            "email": f"customer{i}@example.com",
            "country": "DE",
            "language": "en",
            "number": 1000 + i,
            "timestamp": {"_type_": "datetime_iso", "_data_": "2031-05-01T12:00:00+00:00"},
            "originator_topic": TOPICS[i % 3],
        }
    ).encode()


def _records(n: int) -> list[StoredRecord]:
    aggregates = [uuid.uuid4() for _ in range(max(1, n // 4))]
    versions: dict[uuid.UUID, int] = {}
    out = []
    for i in range(n):
        agg = aggregates[i % len(aggregates)]
        versions[agg] = versions.get(agg, 0) + 1
        out.append(StoredRecord(i + 1, agg, versions[agg], TOPICS[i % 3], _state(i)))
    return out


def _fill(conninfo: str, records: list[StoredRecord]) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE customers_events (originator_id uuid NOT NULL,"
            " originator_version bigint NOT NULL, topic text, state bytea,"
            " notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute(
            "CREATE UNIQUE INDEX customers_events_nid ON customers_events (notification_id)"
        )
        conn.execute("CREATE TABLE audit_chain (position bigint PRIMARY KEY, hash bytea NOT NULL)")
        with conn.cursor() as curs:
            with curs.copy(
                "COPY customers_events (notification_id, originator_id, originator_version,"
                " topic, state) FROM STDIN"
            ) as copy:
                for r in records:
                    copy.write_row((r.position, r.originator_id, r.version, r.topic, r.state))
            with curs.copy("COPY audit_chain (position, hash) FROM STDIN") as copy:
                for row in chain(records):
                    copy.write_row(row)
        conn.execute("VACUUM ANALYZE customers_events")
        conn.execute("VACUUM ANALYZE audit_chain")


def measure(cfg: Settings, events: int = 200_000) -> dict:
    """The three rates (events/s) and the ratios of verify to the other two."""
    from services import audit_chain

    records = _records(events)
    blobs = [record_bytes(record) for record in records]
    started = time.perf_counter()
    previous = GENESIS
    for blob in blobs:
        previous = hashlib.sha256(previous + blob).digest()
    sha256_seconds = time.perf_counter() - started
    del blobs

    dbname = cfg.database_name("customers")
    ensure_database(cfg, dbname)
    try:
        _fill(cfg.database.conninfo(dbname), records)
        del records
        conns = {s: audit_chain._Database(cfg, s) for s in SERVICES}
        for service, db in conns.items():
            if service == "customers":
                db.__enter__()
            else:
                db.problem = "not part of this measurement"
        try:
            db = conns["customers"]
            started = time.perf_counter()
            read = sum(1 for _ in audit_chain.read_events(db, events))
            sum(1 for _ in audit_chain.read_chain(db, events))
            read_seconds = time.perf_counter() - started
            started = time.perf_counter()
            outcome = audit_chain.verify_service("customers", conns)
            verify_seconds = time.perf_counter() - started
        finally:
            conns["customers"].__exit__(None, None, None)
    finally:
        drop_database(cfg, dbname)
    assert read == events and outcome.report.ok and outcome.report.events == events
    rates = {
        "events": events,
        "sha256_per_s": round(events / sha256_seconds),
        "read_per_s": round(events / read_seconds),
        "verify_per_s": round(events / verify_seconds),
    }
    rates["verify_vs_sha256"] = round(rates["verify_per_s"] / rates["sha256_per_s"], 3)
    rates["verify_vs_read"] = round(rates["verify_per_s"] / rates["read_per_s"], 3)
    return rates


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.audit_chain")
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args(argv)
    cfg = Settings.from_env(
        dict(os.environ, HOSTLEDGER_DB_PREFIX=f"hlbench_{uuid.uuid4().hex[:8]}_")
    )
    print(json.dumps(measure(cfg, args.events), indent=2))


if __name__ == "__main__":
    main()
