"""A property-based fuzz of the whole API, from its own OpenAPI document.

Schemathesis reads `GET /api/v1/openapi.json` of a live stack and sends every
operation generated requests (valid ones, and ones that break the schema), once
as an administrator and once as a client. Any 5xx, or an answer that does not
match the operation's documented responses, fails the test with the request
that reproduces it.

The fuzz runs on a stack of its own: it creates customers, messages to "all"
customers and so on, which would disturb the other tests' data.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.stack import Stack

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
# requests per operation and phase: bounded so the whole suite stays well under
# its time budget, while every operation still sees valid and invalid input
MAX_EXAMPLES = 5
# requests in flight at once: with 2, each of schemathesis's threads spent about two
# thirds of its time waiting for the stack's answer (~14 ms each), so the run took the
# sum of generating and answering; more keep both the generator and the stack busy
WORKERS = 4
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
# operations that end the fuzzing session itself (so every later request would only see
# 401 or 403) are left out; their own tests (test_access.py, test_customers.py) cover them:
# - logging out, and leaving an impersonation, end the session they are sent with;
# - a client's new password ends its other sessions;
# - disabling a staff member ends every session of theirs, and changing one changes the
#   role: the fuzz learns staff ids from the staff list, its own among them, and once
#   disabled (another administrator it created remains) the administrator can no longer
#   log in, nor, demoted, do what administrators do
EXCLUDED_PATHS = (
    r"^/api/v1/(auth/(logout|return)|client/password"
    r"|staff/staff/\{staff_id\}(/disable)?)$"
)


# The coverage phase sends each operation every boundary and malformed case its schema
# defines (thousands of requests in all, most of the fuzz's time). Through the routes of
# the other party they all meet the same refusal before their input is read (a client's
# token on /api/v1/staff/*, an administrator's on /api/v1/client/*: 403), so each party
# runs it on the routes it may use and on the common ones (/auth, /me, /orders, ...),
# where its answers are the ones that matter; the cases that never reach a role check
# (a method a path does not take: 405; no or a malformed token: 401) are the same
# whoever sends them, and are sent by the party that runs that route's coverage. The
# fuzzing phase still sends every operation its generated requests as both.
COVERAGE_ELSEWHERE = {"admin": r"^/api/v1/client/", "client": r"^/api/v1/staff/"}


@pytest.fixture(scope="module")
def fuzz_stack():
    s = Stack(name="fz" + uuid.uuid4().hex[:6])
    try:
        s.up()
        yield s
    finally:
        s.down()


def _client_token(stack: Stack) -> str:
    password = "fuzz-client-password"
    customer = stack.register_customer(password=password)
    return stack.login(customer["username"], password)


def _fuzz(stack: Stack, token: str, who: str) -> None:
    report_dir = stack.logs / f"fuzz-{who}"
    config = stack.logs / f"fuzz-{who}.toml"
    config.write_text(
        "[[operations]]\n"
        f"include-path-regex = '{COVERAGE_ELSEWHERE[who]}'\n"
        "phases.coverage.enabled = false\n"
    )
    command = [
        SCHEMATHESIS,
        "--config-file",
        str(config),
        "run",
        f"{stack.base_url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        str(WORKERS),
        "--seed",
        "20261203",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(report_dir),
    ]
    command += ["--exclude-path-regex", EXCLUDED_PATHS]
    env = dict(os.environ, SCHEMATHESIS_HOOKS=str(Path(__file__).with_name("fuzz_hooks.py")))
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    output = done.stdout + done.stderr
    (stack.logs / f"fuzz-{who}.txt").write_text(output)
    assert done.returncode == 0, f"the API fuzz as {who} found failures:\n{output[-20000:]}"
    # the run really sent requests to the operations (not an empty or refused schema)
    assert "operations" in output.lower() or "passed" in output.lower(), output[-3000:]
    # the coverage phase ran on every operation but the other party's, and only there not
    ran, left = _coverage_scenarios(report_dir)
    elsewhere = re.compile(COVERAGE_ELSEWHERE[who])
    assert ran and left, (sorted(ran), sorted(left))
    assert not [op for op in ran if elsewhere.match(op.split(" ", 1)[1])], sorted(ran)
    assert all(elsewhere.match(op.split(" ", 1)[1]) for op in left), sorted(left)


def _coverage_scenarios(report_dir: Path) -> tuple[set[str], set[str]]:
    """The operations the coverage phase tested, and those it left out, by the report."""
    ran, left = set(), set()
    for report in report_dir.glob("*.ndjson"):
        for line in report.read_text().splitlines():
            scenario = json.loads(line).get("ScenarioFinished")
            if scenario and scenario["phase"] == "coverage":
                label = scenario["recorder"]["label"]
                (left if scenario["status"] == "skip" else ran).add(label)
    return ran, left


def test_openapi_document_is_valid(fuzz_stack):
    from openapi_spec_validator import validate

    document = fuzz_stack.http("GET", "/api/v1/openapi.json").json()
    validate(document)
    assert len(document["paths"]) > 50
    json.dumps(document)


def test_fuzz_as_admin(fuzz_stack):
    from tests.stack import ADMIN_PASSWORD

    _fuzz(fuzz_stack, fuzz_stack.login("admin", ADMIN_PASSWORD), "admin")


def test_fuzz_as_client(fuzz_stack):
    _fuzz(fuzz_stack, _client_token(fuzz_stack), "client")
