"""nameko's web server, stopping without cutting a request in half.

nameko 2.14's `WebServer` goes on accepting connections while its service stops, and
at the end kills whatever connection is left, a request being answered too. This one,
asked to `drain` (the gateway's entrypoints do when the process is asked to stop, before
its workers are waited for and its RPC clients close):

- stops accepting: the listening socket closes at once (in Kubernetes the pod has left
  the Service's endpoints during the preStop pause, so nobody is turned away);
- closes the keep-alive connections that wait for a next request;
- lets each request being read or answered finish, and closes its connection after the
  answer;
- returns once no connection is left (the process's grace period, services/infra/
  shutdown.py, bounds the wait).
"""

from __future__ import annotations

import logging

import eventlet
from eventlet import greenio
from eventlet.event import Event
from eventlet.wsgi import STATE_CLOSE, STATE_IDLE
from nameko.web.server import WebServer

log = logging.getLogger(__name__)


class DrainingWebServer(WebServer):
    def __init__(self):
        super().__init__()
        # every open connection's eventlet state: [address, socket, idle|request|close]
        self._connections: dict[int, list] = {}
        self._drained: Event | None = None

    @property
    def draining(self) -> bool:
        return self._drained is not None

    def run(self):
        while self._is_accepting:
            try:
                sock, addr = self._sock.accept()
            except OSError:
                if not self._is_accepting:
                    return  # the listening socket was closed by `drain`
                raise
            sock.settimeout(self._serv.socket_timeout)
            self.container.spawn_managed_thread(
                lambda s=sock, a=addr: self.process_request(s, a), "http-connection"
            )

    def process_request(self, sock, address):
        state = [address, sock, STATE_IDLE]
        self._connections[id(state)] = state
        try:
            self._serv.process_request(state)
        except OSError as exc:
            # as nameko: a client that disconnects very early (eventlet#353)
            if "raw readinto() returned invalid length" not in str(exc):
                raise
        finally:
            self._connections.pop(id(state), None)

    def drain(self) -> None:
        """Stop accepting, close idle connections, wait for the requests in flight to be
        answered. Any number of callers: each returns once the server is drained."""
        if self._drained is not None:
            self._drained.wait()
            return
        self._drained = Event()
        self._is_accepting = False
        if self._gt is not None:
            self._gt.kill()  # it waits in accept(): nothing to finish
        if self._sock is not None:
            self._sock.close()
        in_flight = 0
        for state in list(self._connections.values()):
            previous, state[2] = state[2], STATE_CLOSE
            if previous == STATE_IDLE:
                greenio.shutdown_safe(state[1])
                state[1].close()
            else:
                in_flight += 1
        log.info(
            "HTTP: not accepting connections any more; %d request(s) in flight finish", in_flight
        )
        while self._connections:
            eventlet.sleep(0.05)
        log.info("HTTP: every request answered, every connection closed")
        self._drained.send(True)

    def stop(self):
        self.drain()
        super().stop()
