import eventlet

eventlet.monkey_patch()

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def stack():
    """The whole system, real processes on the real broker and database, for this run."""
    from tests.stack import Stack

    s = Stack()
    try:
        s.up()
        yield s
    finally:
        s.down()
