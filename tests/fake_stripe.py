"""A local server that speaks Stripe's documented format, for the tests (Stripe itself is
not reachable from here): billing's HOSTLEDGER_STRIPE_API_BASE points at it.

- Refunds (https://docs.stripe.com/api/refunds): form-encoded `POST /v1/refunds`,
  `GET /v1/refunds?payment_intent=`.
- Checkout Sessions (https://docs.stripe.com/api/checkout/sessions): form-encoded
  `POST /v1/checkout/sessions` (mode=payment, line_items with price_data, success_url,
  cancel_url, metadata, payment_intent_data[metadata], client_reference_id,
  customer_email, expires_at; Stripe's refusals of a missing or wrong parameter), and
  `GET /v1/checkout/sessions/{id}`. The session's `url` is a hosted payment page served
  here (`/c/pay/{id}`): its "Pay" button completes the session and sends the browser to
  `success_url`, "Cancel" to `cancel_url`. Completing makes the events Stripe sends,
  `checkout.session.completed` and `payment_intent.succeeded`, signed with the webhook
  secret as Stripe signs them; they are held until `deliver()` posts them to the
  webhook address (as often as asked: Stripe may deliver an event more than once), or
  posted at once with `deliver_at_once`.
- Every call needs `Authorization: Bearer <secret key>`; an `Idempotency-Key` replays
  the first answer to it (errors included), and the same key with other parameters is
  Stripe's 400 `idempotency_error`.

In a test process: `FakeStripe(port, ...)` then `.start()` (a thread; eventlet's green
threads serve it while the test waits on the network). Beside a browser (Playwright
blocks this process while it waits), run it as its own process:
`python -m tests.fake_stripe --port ... --api-key ... --webhook-secret ... --webhook-url ...`
and drive it over HTTP: `GET /_fake/state`, `POST /_fake/deliver?times=2`
(`RemoteFakeStripe` does both).
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import requests

from services.billing.processors import Stripe

ROOT = Path(__file__).resolve().parent.parent


def _error(message: str, param: str | None = None, kind: str = "invalid_request_error"):
    error = {"type": kind, "message": message}
    if param:
        error["param"] = param
    return {"error": error}


def _nested(form: dict, prefix: str) -> dict:
    """`metadata[key]` entries of a form as {key: value}."""
    start = prefix + "["
    return {
        k[len(start) : -1]: v
        for k, v in form.items()
        if k.startswith(start) and "][" not in k[len(start) :]
    }


class FakeStripe:
    def __init__(
        self,
        port: int,
        api_key: str,
        webhook_secret: str | None = None,
        webhook_url: str | None = None,
        deliver_at_once: bool = False,
    ):
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.deliver_at_once = deliver_at_once
        self.base_url = f"http://127.0.0.1:{port}"
        self.requests: list[dict] = []
        self.refunds: list[dict] = []
        self.sessions: dict[str, dict] = {}
        self.held: list[dict] = []  # events made and not delivered yet
        self.deliveries: list[dict] = []  # what the webhook address answered
        self.saved: dict[str, tuple[int, dict, dict]] = {}  # key -> status, body, form
        self.plan: list[str] = []  # what the next refund POSTs do: fail, lose_answer, pending
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeStripe:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the HTTP side ---------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length).decode() if length else ""
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.startswith("/c/pay/"):
            return self._hosted(h, method, url.path, form)
        if url.path.startswith("/_fake/"):
            return self._control(h, method, url.path, query)
        seen = {
            "method": method,
            "path": url.path,
            "query": query,
            "form": form,
            "content_type": h.headers.get("Content-Type"),
            "authorization": h.headers.get("Authorization"),
            "idempotency_key": h.headers.get("Idempotency-Key"),
        }
        with self.lock:
            self.requests.append(seen)
            status, body, lose = self.answer(seen)
        if lose:
            h.close_connection = True
            h.connection.shutdown(2)  # the refund was made, but its answer never arrives
            return
        self._send(h, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(h, status: int, data: bytes, content_type: str, headers: dict | None = None):
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)

    def answer(self, seen: dict) -> tuple[int, dict, bool]:
        if seen["authorization"] != f"Bearer {self.api_key}":
            return 401, _error("Invalid API Key provided"), False
        path, method = seen["path"], seen["method"]
        if method == "GET" and path == "/v1/refunds":
            pi = seen["query"].get("payment_intent")
            data = [r for r in self.refunds if r["payment_intent"] == pi]
            return 200, {"object": "list", "data": data, "has_more": False}, False
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            session = self.sessions.get(path.rsplit("/", 1)[1])
            if session is None:
                return 404, _error("No such checkout.session", "id"), False
            return 200, session, False
        if method != "POST" or path not in ("/v1/refunds", "/v1/checkout/sessions"):
            return 404, _error(f"Unrecognized request URL ({method}: {path})"), False
        key = seen["idempotency_key"]
        if key in self.saved:
            status, body, form = self.saved[key]
            if form != seen["form"]:
                message = (
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with."
                )
                return 400, _error(message, kind="idempotency_error"), False
            return status, body, False
        if path == "/v1/checkout/sessions":
            status, body = self._new_session(seen["form"])
            lose = False
        else:
            status, body, lose = self._new_refund(seen["form"])
        if key:
            self.saved[key] = (status, body, seen["form"])
        return status, body, lose

    def _new_refund(self, form: dict) -> tuple[int, dict, bool]:
        step = self.plan.pop(0) if self.plan else "succeed"
        if step == "fail":
            return 500, _error("Something went wrong", kind="api_error"), False
        body = {
            "id": f"re_{uuid.uuid4().hex[:14]}",
            "object": "refund",
            "amount": int(form["amount"]),
            "currency": "eur",
            "payment_intent": form["payment_intent"],
            "status": "pending" if step == "pending" else "succeeded",
            "metadata": _nested(form, "metadata"),
            "created": int(time.time()),
        }
        self.refunds.append(body)
        return 200, body, step == "lose_answer"

    def _new_session(self, form: dict) -> tuple[int, dict]:
        """A Checkout Session in payment mode, refused as Stripe refuses a bad one."""
        if form.get("mode") != "payment":
            return 400, _error("Invalid mode: must be one of payment, setup, subscription", "mode")
        for name in ("success_url", "cancel_url"):
            if not form.get(name, "").startswith(("http://", "https://")):
                return 400, _error("Not a valid URL", name)
        line = "line_items[0]"
        currency = form.get(f"{line}[price_data][currency]", "")
        amount = form.get(f"{line}[price_data][unit_amount]", "")
        name = form.get(f"{line}[price_data][product_data][name]", "")
        if not (len(currency) == 3 and currency.islower()):
            return 400, _error("Invalid currency", f"{line}[price_data][currency]")
        if not amount.isdigit() or int(amount) < 1:
            return 400, _error("Invalid integer", f"{line}[price_data][unit_amount]")
        if not name:
            return 400, _error("Missing required param", f"{line}[price_data][product_data][name]")
        quantity = int(form.get(f"{line}[quantity]", "1"))
        now = int(time.time())
        expires_at = int(form.get("expires_at") or now + 86400)
        if not (now + 1800 - 60 <= expires_at <= now + 86400 + 60):
            return 400, _error("expires_at must be 30 minutes to 24 hours away", "expires_at")
        session_id = f"cs_test_{uuid.uuid4().hex}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": int(amount) * quantity,
            "amount_subtotal": int(amount) * quantity,
            "currency": currency,
            "client_reference_id": form.get("client_reference_id"),
            "customer_email": form.get("customer_email"),
            "metadata": _nested(form, "metadata"),
            "payment_intent": None,
            "success_url": form["success_url"],
            "cancel_url": form["cancel_url"],
            "expires_at": expires_at,
            "created": now,
            "livemode": False,
            "url": f"{self.base_url}/c/pay/{session_id}",
            # kept for the payment intent made when it is paid (not part of Stripe's answer)
            "_intent_metadata": _nested(form, "payment_intent_data[metadata]"),
            "_product": name,
        }
        self.sessions[session_id] = session
        return 200, {k: v for k, v in session.items() if not k.startswith("_")}

    def posts(self) -> list[dict]:
        """The API POSTs received so far."""
        return [r for r in self.requests if r["method"] == "POST"]

    # -- the hosted payment page ---------------------------------------------------------------

    def _hosted(self, h, method: str, path: str, form: dict) -> None:
        parts = path.split("/")  # ["", "c", "pay", id] or [..., id, "pay"]
        session = self.sessions.get(parts[3]) if len(parts) > 3 else None
        if session is None:
            return self._send(h, 404, b"No such payment page.", "text/plain")
        if method == "POST" and len(parts) == 5 and parts[4] == "pay":
            self.complete(session["id"])
            return self._send(h, 303, b"", "text/plain", {"Location": session["success_url"]})
        amount = session["amount_total"] / 100
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pay {html.escape(session["_product"])}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"></head>
<body><main>
<h1>{html.escape(session["_product"])}</h1>
<p id="amount">{amount:.2f} {session["currency"].upper()}</p>
<form method="post" action="/c/pay/{session["id"]}/pay">
<label for="card">Card number</label> <input id="card" name="card" value="4242 4242 4242 4242">
<button type="submit">Pay</button></form>
<p><a href="{html.escape(session["cancel_url"])}">Cancel and go back</a></p>
</main></body></html>"""
        self._send(h, 200, page.encode(), "text/html; charset=utf-8")

    def complete(self, session_id: str) -> list[dict]:
        """The client paid: the session completes and Stripe's two events are made (held,
        or posted at once with deliver_at_once)."""
        with self.lock:
            session = self.sessions[session_id]
            if session["status"] == "complete":
                return []
            intent = f"pi_{uuid.uuid4().hex[:24]}"
            session.update(status="complete", payment_status="paid", payment_intent=intent)
            public = {k: v for k, v in session.items() if not k.startswith("_")}
            events = [
                self._event("checkout.session.completed", public),
                self._event(
                    "payment_intent.succeeded",
                    {
                        "id": intent,
                        "object": "payment_intent",
                        "amount": session["amount_total"],
                        "amount_received": session["amount_total"],
                        "currency": session["currency"],
                        "status": "succeeded",
                        "metadata": session["_intent_metadata"],
                    },
                ),
            ]
            self.held.extend(events)
        if self.deliver_at_once:
            self.deliver()
        return events

    @staticmethod
    def _event(kind: str, obj: dict) -> dict:
        return {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": obj},
        }

    def signed(self, event: dict) -> tuple[bytes, dict]:
        """The body and headers Stripe posts an event with."""
        body = json.dumps(event).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": Stripe.sign(self.webhook_secret, body, int(time.time())),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return body, headers

    def deliver(self, times: int = 1) -> list[dict]:
        """Post the held events to the webhook address, each `times` times, in order;
        what each delivery was answered."""
        with self.lock:
            events, self.held = self.held, []
        answers = []
        for event in events:
            for _ in range(times):
                body, headers = self.signed(event)
                r = requests.post(self.webhook_url, data=body, headers=headers, timeout=30)
                try:
                    answer = r.json()
                except ValueError:
                    answer = {"text": r.text}
                answers.append(
                    {
                        "event": event["id"],
                        "type": event["type"],
                        "status": r.status_code,
                        "answer": answer,
                    }
                )
        with self.lock:
            self.deliveries.extend(answers)
        return answers

    # -- control, when it runs as its own process --------------------------------------------

    def state(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests,
                "sessions": self.sessions,
                "held": self.held,
                "deliveries": self.deliveries,
            }

    def _control(self, h, method: str, path: str, query: dict) -> None:
        if method == "GET" and path == "/_fake/state":
            body = self.state()
        elif method == "POST" and path == "/_fake/deliver":
            body = {"deliveries": self.deliver(int(query.get("times", "1")))}
        else:
            return self._send(h, 404, b"{}", "application/json")
        self._send(h, 200, json.dumps(body).encode(), "application/json")


class RemoteFakeStripe:
    """A FakeStripe in a process of its own, driven over HTTP."""

    def __init__(self, port: int, api_key: str, webhook_secret: str, webhook_url: str):
        self.base_url = f"http://127.0.0.1:{port}"
        self.command = [
            sys.executable,
            "-m",
            "tests.fake_stripe",
            "--port",
            str(port),
            "--api-key",
            api_key,
            "--webhook-secret",
            webhook_secret,
            "--webhook-url",
            webhook_url,
        ]
        self.process: subprocess.Popen | None = None

    def start(self) -> RemoteFakeStripe:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + "/_fake/state", timeout=2).ok:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the Stripe-format test server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def state(self) -> dict:
        return requests.get(self.base_url + "/_fake/state", timeout=30).json()

    def deliver(self, times: int = 1) -> list[dict]:
        r = requests.post(self.base_url + "/_fake/deliver", params={"times": times}, timeout=60)
        r.raise_for_status()
        return r.json()["deliveries"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--webhook-secret", required=True)
    parser.add_argument("--webhook-url", required=True)
    args = parser.parse_args()
    fake = FakeStripe(args.port, args.api_key, args.webhook_secret, args.webhook_url)
    try:
        fake.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
