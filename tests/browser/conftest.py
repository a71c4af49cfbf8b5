"""The browser the page tests share: one Chromium per test module."""

import pytest

from tests.browser.chromium import chromium


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b
