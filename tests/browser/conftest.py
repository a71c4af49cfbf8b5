"""The browser the page tests share: one Chromium for every page test (a launch costs
seconds); each test's tabs are in contexts of their own (own cookies, storage and cache),
and whatever a test leaves open is closed after it, so no test sees another's."""

import pytest

from tests.browser.chromium import chromium


@pytest.fixture(scope="package")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(autouse=True)
def _contexts_closed_after_each_test(request):
    yield
    if "browser" in request.fixturenames:
        for context in list(request.getfixturevalue("browser").contexts):
            context.close()
