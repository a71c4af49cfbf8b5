import uuid

import pytest

from services.infra.databases import drop_database, ensure_database
from services.infra.settings import SERVICES, Settings


@pytest.fixture
def cfg():
    """Settings pointing at scratch databases of this test only."""
    settings = Settings.from_env(
        {"HOSTLEDGER_DB_PREFIX": f"hli_{uuid.uuid4().hex[:8]}_", "HOSTLEDGER_DB_POOL_SIZE": "4"}
    )
    for service in SERVICES:
        ensure_database(settings, settings.database_name(service))
    yield settings
    for service in SERVICES:
        drop_database(settings, settings.database_name(service))


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
