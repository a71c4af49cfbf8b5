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


def pytest_collection_modifyitems(session, config, items):
    """Tests marked `after_everything` run last, in the order collected: they look at what
    every other test left in the shared stack (replaying its whole history, ...)."""
    last = [item for item in items if item.get_closest_marker("after_everything")]
    if last:
        items[:] = [item for item in items if item not in last] + last
