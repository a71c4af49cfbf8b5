"""A command that gives its answer before its save keeps it in that save's transaction:
no transaction after it to keep the answer, and the same answer for a repeat."""

import contextlib
import json

from services.infra.context import current
from services.infra.requests import answer_with_save, once_per_request, record_statement


class Cursor:
    def __init__(self, log):
        self.log = log

    def execute(self, sql, params=()):
        self.log.append((sql, params))

    def fetchone(self):
        return None


class Datastore:
    def __init__(self):
        self.transactions = []

    @contextlib.contextmanager
    def transaction(self, commit=False):
        statements = []
        self.transactions.append(statements)
        yield Cursor(statements)


class App:
    def __init__(self):
        self.datastore = Datastore()
        self.saved = []

    def save(self):
        """What HostledgerApplication.save does with the command's record."""
        answered = current.command_answer
        self.saved.append(record_statement(current.command_key, answered[1] if answered else None))
        current.command_recorded = True
        current.command_answer_kept = answered is not None


class Service:
    name = "billing"

    def __init__(self):
        self.app = App()

    @once_per_request
    def pay(self, amount):
        answer = answer_with_save({"amount": amount, "password": "shown once"})
        self.app.save()
        return answer

    @once_per_request
    def pay_then_answer_another(self, amount):
        answer_with_save({"amount": amount})
        self.app.save()
        return {"amount": amount, "other": True}


def run(method, *args):
    current.request = "request|1"
    try:
        return method(*args)
    finally:
        current.request = None


def test_the_answer_goes_with_the_save_and_no_transaction_follows():
    service = Service()
    assert run(service.pay, 100) == {"amount": 100, "password": "shown once"}
    (statement, params) = service.app.saved[0]
    assert "answer" in statement
    # what a repeat answers: without what is shown once
    assert json.loads(params[2]) == {"answer": {"amount": 100}}
    # the lookup only: no UPDATE of the answer after the command
    assert len(service.app.datastore.transactions) == 1
    assert "SELECT" in service.app.datastore.transactions[0][0][0]
    assert current.command_answer is None and current.command_key is None


def test_another_answer_than_the_one_given_is_kept_after_as_before():
    service = Service()
    run(service.pay_then_answer_another, 5)
    updates = [s for t in service.app.datastore.transactions for s in t if "UPDATE" in s[0]]
    assert len(updates) == 1
    assert json.loads(updates[0][1][0]) == {"answer": {"amount": 5, "other": True}}
