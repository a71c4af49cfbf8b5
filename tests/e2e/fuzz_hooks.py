"""Loaded by schemathesis in the API fuzz (tests/e2e/test_fuzz.py, SCHEMATHESIS_HOOKS).

Its two workers are threads, and Hypothesis describes each filter lambda of a strategy by
parsing source with `ast.parse`. On Python 3.11 before 3.11.8, two threads converting a
syntax tree at once can make one fail with "SystemError: AST constructor recursion depth
mismatch" (python/cpython#106905), which schemathesis reports as a runtime error of the
operation being tested. Here one thread at a time parses."""

import ast
import threading

_parse = ast.parse
_one_at_a_time = threading.Lock()


def _parse_alone(*args, **kwargs):
    with _one_at_a_time:
        return _parse(*args, **kwargs)


ast.parse = _parse_alone
