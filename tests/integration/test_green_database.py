"""The psycopg/eventlet trap: concurrent database calls of one process must overlap."""

import eventlet

from services.infra.store import check_psycopg_is_green


def test_psycopg_wait_function_is_the_green_one():
    check_psycopg_is_green()  # raises when psycopg's C wait function is active


def test_concurrent_queries_from_green_threads_overlap(customers):
    def sleep_in_db(_):
        with customers.datastore.transaction() as curs:
            curs.execute(
                "SELECT clock_timestamp() AS started, pg_sleep(0.3), clock_timestamp() AS ended"
            )
            row = curs.fetchone()
        return row["started"], row["ended"]

    intervals = list(eventlet.GreenPool(4).imap(sleep_in_db, range(4)))
    latest_start = max(s for s, _ in intervals)
    earliest_end = min(e for _, e in intervals)
    # serialized calls would each start after the previous ended
    assert latest_start < earliest_end, intervals
