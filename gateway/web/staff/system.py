"""/staff/system (administrators): whether every service answers, each read model's
place in its log, and the events a service could not apply (parked), each with a way
to apply it again.

The same service calls as `GET /health`, `GET /api/v1/staff/read-models`,
`GET /api/v1/staff/parked-events` and `POST /api/v1/staff/parked-events/.../retry`,
asked of every service side by side; a service that does not answer in time is shown
as not answering, and the rest of the page still comes.
"""

from __future__ import annotations

import time

import eventlet

from contracts.errors import Conflict, NotFound
from gateway.web.pages import PageCall, page
from services.infra.settings import SERVICES

PARKED = "GET /api/v1/staff/parked-events"
RETRY = (
    "POST /api/v1/staff/parked-events/<any(customers,billing,orders,helpdesk,"
    "mailgateway):service>/<int:parked_id>/retry"
)
SYSTEM_URL = "/staff/system"
# how long the page waits for all the services' answers together
WAIT_SECONDS = 3.0
PAGE_SIZE = 20


class StaffSystemPages:
    """Mixed into GatewayService."""

    @page("GET", SYSTEM_URL, staff=PARKED)
    def web_staff_system(self, call: PageCall):
        s = call.services
        asked = {}
        for service in SERVICES:
            proxy = getattr(s, service)
            asked[service] = {
                "ping": proxy.ping.call_async(),
                "models": proxy.read_models.call_async(),
                "parked": proxy.parked_events.call_async(False),
            }
        deadline = time.monotonic() + WAIT_SECONDS
        health, models, parked = {}, [], []
        for service, replies in asked.items():
            answers = {name: _answer(reply, deadline) for name, reply in replies.items()}
            health[service] = answers["ping"] == "ok"
            for model in answers["models"] or []:
                models.append(
                    {
                        "service": service,
                        "name": model["read_model"],
                        "position": model["position"],
                        "head": model["head"],
                        "lag": max(model["head"] - model["position"], 0),
                        "skipped": model["skipped"],
                    }
                )
            parked.extend(answers["parked"] or [])
        parked.sort(key=lambda p: p["parked_at"])
        number, size = call.page_args(PAGE_SIZE)
        listing = {
            "items": parked[(number - 1) * size : number * size],
            "total": len(parked),
            "page": number,
            "page_size": size,
        }
        done = call.request.args.get("done", "")
        notice = {
            "retried": call.gettext("The event was applied."),
            "still_failing": call.gettext(
                "The event could not be applied this time either; it stays parked."
            ),
            "gone": call.gettext("This event was already applied or is no longer parked."),
        }.get(done)
        return call.render(
            "staff/system.html",
            health=health,
            models=models,
            parked=listing,
            notice=notice,
            notice_kind="ok" if done == "retried" else "wait",
        )

    @page(
        "POST",
        SYSTEM_URL + "/parked/<any(customers,billing,orders,helpdesk,mailgateway):service>"
        "/<int:parked_id>/retry",
        staff=RETRY,
    )
    def web_staff_retry_parked(self, call: PageCall):
        service = getattr(call.services, call.path["service"])
        try:
            answer = service.retry_parked(call.path["parked_id"])
        except NotFound:
            return call.redirect(SYSTEM_URL, done="gone")
        except Conflict as exc:
            gone = "already resolved" in str(exc)
            return call.redirect(SYSTEM_URL, done="gone" if gone else "still_failing")
        done = "retried" if answer.get("resolved_at") else "still_failing"
        return call.redirect(SYSTEM_URL, done=done)


def _answer(reply, deadline: float):
    """The reply's result, or None when it fails or does not come by `deadline`."""
    with eventlet.Timeout(max(deadline - time.monotonic(), 0.01), False):
        try:
            return reply.result()
        except Exception:  # noqa: BLE001 - a service that fails is shown as not answering
            return None
    return None
