"""A nameko HTTP service for tests/integration/test_http_drain.py: the gateway's draining
web server (gateway/webserver.py) with a route that takes as long as it is told to."""

import eventlet
from nameko.web.handlers import HttpRequestHandler

from gateway.webserver import DrainingWebServer
from services.infra import shutdown  # noqa: F401 - installs the graceful stop


class Route(HttpRequestHandler):
    server = DrainingWebServer()

    def stop(self):
        self.server.drain()  # as the gateway's routes do
        super().stop()


route = Route.decorator


class StoppingWebService:
    name = "stoppingweb"

    @route("GET", "/sleep/<float:seconds>")
    def sleep(self, request, seconds):
        print(f"sleeping {seconds}", flush=True)  # the test waits for this line
        eventlet.sleep(seconds)
        return f"slept {seconds}"
