"""Customers' data keys in a service's database (services/infra/personal_data.KeyStore):
made once whoever asks first, the same for every process, gone for good once destroyed.
On a real PostgreSQL database of this test's own."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg

from services.infra.personal_data import PERSONAL_KEYS_TABLE, KeyStore, destroy_statement


def _store(cfg, ttl: float = 5.0) -> KeyStore:
    conninfo = cfg.database.conninfo(cfg.database_name("billing"))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(PERSONAL_KEYS_TABLE)  # as the service's application makes it
    return KeyStore(conninfo, ttl=ttl)


def test_a_key_is_made_once_and_every_store_reads_the_same(cfg):
    customer = str(uuid.uuid4())
    first, second = _store(cfg), _store(cfg)
    try:
        assert first.key(customer) is None  # not made unless asked to
        made = first.key(customer, create=True)
        assert isinstance(made, bytes) and len(made) == 32
        assert first.key(customer, create=True) == made
        assert second.key(customer) == made
        assert second.key(customer, create=True) == made
    finally:
        first.close()
        second.close()


def test_stores_asking_at_once_agree_on_one_key(cfg):
    customers = [str(uuid.uuid4()) for _ in range(5)]
    stores = [_store(cfg) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            answers = list(pool.map(lambda s: [s.key(c, create=True) for c in customers], stores))
        for i in range(len(customers)):
            assert len({a[i] for a in answers}) == 1
        with psycopg.connect(cfg.database.conninfo(cfg.database_name("billing"))) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM personal_keys WHERE customer_id = ANY(%s::uuid[])",
                (customers,),
            ).fetchone()[0]
        assert rows == len(customers)
    finally:
        for s in stores:
            s.close()


def test_a_destroyed_key_is_gone_for_every_store_and_not_made_again(cfg):
    customer = str(uuid.uuid4())
    reader, other = _store(cfg, ttl=0.0), _store(cfg, ttl=0.0)
    try:
        assert reader.key(customer, create=True) is not None
        statement, params = destroy_statement(
            uuid.UUID(customer), datetime.now(UTC), {"kind": "staff", "id": "x"}, "asked"
        )
        with psycopg.connect(cfg.database.conninfo(cfg.database_name("billing"))) as conn:
            conn.execute(statement, params)
        assert reader.key(customer) is None
        assert other.key(customer, create=True) is None  # an erased customer gets no new key
    finally:
        reader.close()
        other.close()
