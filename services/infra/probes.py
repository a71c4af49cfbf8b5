"""The liveness and readiness probes of every process, and the port they are served on
with its Prometheus metrics (services.infra.metrics says what each process serves).

    /metrics   Prometheus text format
    /livez     200 while the process's loop runs, else 503
    /readyz    200 when the process can do its work now, else 503 with what is missing

A check is a function answering None when fine, else what is wrong in a short sentence;
each is given PROBE_TIMEOUT seconds. Under eventlet the port is served by an eventlet WSGI
server in a green thread (so a blocked hub fails the liveness probe); in a process
without eventlet (the mail-in process) by a thread per request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable

from prometheus_client import REGISTRY, make_wsgi_app

log = logging.getLogger(__name__)

# -- the probes ---------------------------------------------------------------------------------

# name -> check; a check returns None when fine, else what is wrong (a short sentence)
Check = Callable[[], "str | None"]
_live_checks: dict[str, Check] = {}
_ready_checks: dict[str, Check] = {}
PROBE_TIMEOUT = 3.0


def add_live_check(name: str, check: Check) -> None:
    _live_checks[name] = check


def add_ready_check(name: str, check: Check) -> None:
    _ready_checks[name] = check


def run_checks(checks: dict[str, Check]) -> dict[str, str]:
    """Each check's answer: "ok" or what is wrong. A check that raises or takes longer
    than PROBE_TIMEOUT seconds counts as failing."""
    answers = {}
    for name, check in sorted(checks.items()):
        try:
            with _timeout(PROBE_TIMEOUT):
                problem = check()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
                raise
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        answers[name] = "ok" if problem is None else str(problem)
    return answers


@contextlib.contextmanager
def _timeout(seconds: float):
    if _green():
        import eventlet

        with eventlet.Timeout(seconds):
            yield
    else:
        yield


def _green() -> bool:
    try:
        from eventlet import patcher
    except ImportError:  # pragma: no cover - eventlet is a dependency
        return False
    return patcher.is_monkey_patched("socket")


def probe_app(registry=REGISTRY):
    """The WSGI application of the metrics port: /metrics, /livez, /readyz."""
    metrics = make_wsgi_app(registry)

    def answer(start_response, checks: dict[str, Check]):
        results = run_checks(checks)
        ok = all(v == "ok" for v in results.values())
        body = json.dumps({"status": "ok" if ok else "failing", "checks": results}).encode()
        start_response(
            "200 OK" if ok else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
        )
        return [body]

    def app(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if path == "/livez":
            return answer(start_response, _live_checks)
        if path == "/readyz":
            return answer(start_response, {**_live_checks, **_ready_checks})
        if path == "/metrics":
            return metrics(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"/metrics, /livez or /readyz\n"]

    return app


# -- the server -----------------------------------------------------------------------------------

_server_lock = threading.Lock()
_server_address: tuple[str, int] | None = None


def serve(host: str, port: int) -> tuple[str, int] | None:
    """Serve the probe app on (host, port) once per process; a port of 0 serves nothing.
    Returns the address served. Raises OSError when the port is taken: a process whose
    metrics cannot be seen must not pass for healthy."""
    global _server_address
    if not port:
        return None
    with _server_lock:
        if _server_address is not None:
            return _server_address
        if _green():
            import eventlet
            import eventlet.wsgi

            sock = eventlet.listen((host, port))
            eventlet.spawn(
                eventlet.wsgi.server,
                sock,
                probe_app(),
                log=_QuietLog(),
                log_output=False,
                socket_timeout=30,
            )
        else:
            _threaded_server(host, port)
        _server_address = (host, port)
        log.info("metrics on http://%s:%s/metrics (probes: /livez, /readyz)", host, port)
        return _server_address


def _threaded_server(host: str, port: int) -> None:
    """For a process without eventlet (the mail-in process): a daemon thread per request."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):
            pass

    class ThreadingServer(WSGIServer):
        daemon_threads = True

        def process_request(self, request, client_address):
            threading.Thread(
                target=self._serve_one, args=(request, client_address), daemon=True
            ).start()

        def _serve_one(self, request, client_address):
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - one broken scrape does not stop the server
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    server = make_server(
        host, port, probe_app(), server_class=ThreadingServer, handler_class=QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


class _QuietLog:
    def write(self, *_):
        pass


class Broker:
    """One AMQP connection of the process for the probes and the queue depths (made on
    first use, made again after a failure)."""

    def __init__(self, amqp_uri: str):
        self.amqp_uri = amqp_uri
        self._conn = None
        self._lock = None

    def _locked(self):
        if self._lock is None:
            if _green():
                import eventlet.semaphore

                self._lock = eventlet.semaphore.Semaphore()
            else:
                self._lock = threading.Lock()
        return self._lock

    def _connection(self):
        from kombu import Connection

        if self._conn is None:
            conn = Connection(self.amqp_uri, connect_timeout=PROBE_TIMEOUT, heartbeat=0)
            conn.connect()
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.release()

    def check(self) -> str | None:
        """None when the broker answers (a round trip on the connection)."""
        with self._locked():
            try:
                conn = self._connection()
                channel = conn.default_channel
                channel.basic_qos(0, 1, False)  # a round trip the broker must answer
            except Exception as exc:  # noqa: BLE001 - whatever it is, the broker is not usable
                self._drop()
                return f"the broker does not answer: {exc}"
        return None

    def queue_depths(self, names: dict[str, str]) -> dict[str, tuple[int, int]]:
        """key -> (ready messages, consumers) of each queue named; a queue that does not
        exist (yet) is left out."""
        import amqp.exceptions

        answers = {}
        with self._locked():
            try:
                conn = self._connection()
                for key, queue in names.items():
                    channel = conn.default_channel
                    try:
                        _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
                    except amqp.exceptions.NotFound:
                        # the broker closed the channel: the next one gets a fresh one
                        conn._default_channel = None
                        continue
                    answers[key] = (messages, consumers)
            except Exception:
                self._drop()
                raise
        return answers
