import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from services.infra.databases import drop_database, ensure_database
from services.infra.settings import SERVICES, Settings

# Scratch databases are made and dropped beside the tests, one worker doing both in turn:
# each DROP DATABASE waits for a checkpoint (a quarter of a second or more on a busy
# server) and each CREATE copies a template, five of each for every test. The next test's
# databases are made while this one runs; this one's are dropped while the next runs.
_worker = ThreadPoolExecutor(max_workers=1)
_drops: list[Future] = []
_next: Future | None = None


def _settings() -> Settings:
    return Settings.from_env(
        {"HOSTLEDGER_DB_PREFIX": f"hli_{uuid.uuid4().hex[:8]}_", "HOSTLEDGER_DB_POOL_SIZE": "4"}
    )


def _create_all(settings: Settings) -> Settings:
    for service in SERVICES:
        ensure_database(settings, settings.database_name(service))
    return settings


def _drop_all(settings: Settings) -> None:
    # side by side: drops waiting together share one checkpoint
    with ThreadPoolExecutor(len(SERVICES)) as pool:
        for drop in [
            pool.submit(drop_database, settings, settings.database_name(service))
            for service in SERVICES
        ]:
            drop.result()


@pytest.fixture(scope="session", autouse=True)
def _scratch_databases_dropped():
    """Every scratch database is gone by the end of the run; a drop that failed fails it."""
    yield
    if _next is not None:
        _drops.append(_worker.submit(_drop_all, _next.result()))
    _worker.shutdown(wait=True)
    for drop in _drops:
        drop.result()


@pytest.fixture
def cfg():
    """Settings pointing at scratch databases of this test only."""
    global _next
    ready = _next or _worker.submit(_create_all, _settings())
    _next = _worker.submit(_create_all, _settings())
    settings = ready.result()
    yield settings
    # the test's own connections are closed by now (its apps' fixtures end before this
    # one); WITH (FORCE) ends any it left behind, as before
    _drops.append(_worker.submit(_drop_all, settings))


@pytest.fixture
def customers(cfg):
    from services.customers.application import Customers

    app = Customers(cfg=cfg)
    yield app
    app.close()


@pytest.fixture
def billing(cfg):
    from services.billing.application import Billing

    app = Billing(cfg=cfg)
    yield app
    app.close()
