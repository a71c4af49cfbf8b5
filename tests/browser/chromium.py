"""Browser tests' tools: Debian's Chromium through Playwright, and a page that notes what
a person would see go wrong.

    with chromium() as browser:
        page = Watched.open(browser, stack.base_url, "login-flow", locale="fr-FR")
        page.goto("/")
        page.check("login")   # no console error, no failed request, axe clean, screenshot

Playwright cannot download a browser of its own here: the tests drive /usr/bin/chromium
(HOSTLEDGER_CHROMIUM), which `make test` installs (deploy/preflight.sh browser).
Screenshots go to tests/output/screenshots/ (HOSTLEDGER_TEST_OUTPUT to move it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import selectors
import time
from pathlib import Path

import eventlet.patcher
from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = os.environ.get("HOSTLEDGER_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(os.environ.get("HOSTLEDGER_TEST_OUTPUT") or ROOT / "tests" / "output")
SCREENSHOTS = OUTPUT / "screenshots"
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
# axe-core's impacts that fail a page
FAILING_IMPACTS = ("serious", "critical")

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
_STATUS_IN_CONSOLE = re.compile(r"status of (\d{3})")
_real_select = eventlet.patcher.original("select")
_real_os = eventlet.patcher.original("os")


class _RealPollSelector(selectors._PollLikeSelector):
    """poll(2) itself, not eventlet's green select."""

    _selector_cls = _real_select.poll
    _EVENT_READ = _real_select.POLLIN
    _EVENT_WRITE = _real_select.POLLOUT


class _UnpatchedLoopPolicy(asyncio.DefaultEventLoopPolicy):
    def __init__(self):
        super().__init__()
        # learns that the driver exited from the loop itself, not from a (green) thread
        self._watcher = asyncio.PidfdChildWatcher()

    def new_event_loop(self):
        loop = asyncio.SelectorEventLoop(_RealPollSelector())
        self._watcher.attach_loop(loop)
        return loop

    def get_child_watcher(self):
        return self._watcher


@contextlib.contextmanager
def _playwright_unpatched():
    """Playwright's event loop as if eventlet were not there.

    The test run is monkey-patched by eventlet (tests/conftest.py). Playwright's loop,
    on eventlet's green select, os.read and os.write, hands its greenlet to eventlet's
    hub and never gets it back: an `expect` that polls, a screenshot or stopping the
    driver waits forever. So, while the browser is open, the loop polls with poll(2),
    learns of the driver's exit from a pidfd (not from a green thread), and the pipes to
    the driver are read and written for real. The stack's processes are separate:
    nothing in this process needs to run meanwhile. No Playwright call here may need a
    thread of its own either (threads are green): take a screenshot's bytes rather than
    giving it a path."""
    policy = asyncio.get_event_loop_policy()
    green_read, green_write = os.read, os.write
    asyncio.set_event_loop_policy(_UnpatchedLoopPolicy())
    os.read, os.write = _real_os.read, _real_os.write
    try:
        yield
    finally:
        os.read, os.write = green_read, green_write
        asyncio.set_event_loop_policy(policy)


@contextlib.contextmanager
def chromium():
    """A headless Chromium for one test module (root needs --no-sandbox)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(deploy/preflight.sh browser), or set HOSTLEDGER_CHROMIUM"
        )
    with _playwright_unpatched(), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class Watched:
    """A browser tab whose console errors, failed requests and error answers are noted
    from the moment it opens; `check()` asserts there were none since the last check."""

    def __init__(self, page: Page, base_url: str, name: str):
        self.page = page
        self.base_url = base_url
        self.name = name
        self.console: list[str] = []
        self.failed: list[str] = []
        self.answers: list[tuple[int, str]] = []
        self.in_flight = 0  # requests of the tab not finished (or failed) yet
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console.append(f"uncaught: {exc}"))
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_finished)
        page.on("requestfailed", self._on_failed)
        page.on("response", self._on_response)

    def _on_request(self, request) -> None:
        self.in_flight += 1

    def _on_finished(self, request) -> None:
        self.in_flight -= 1

    def _on_failed(self, request) -> None:
        self.in_flight -= 1
        # net::ERR_ABORTED is the browser cancelling a request of a page it is leaving (the
        # icon of a page a click already navigated away from): not an answer that failed.
        # What the server answered badly is caught by its status in `answers`.
        if request.failure != "net::ERR_ABORTED":
            self.failed.append(f"{request.method} {request.url}: {request.failure}")

    @classmethod
    def open(
        cls,
        browser: Browser,
        base_url: str,
        name: str,
        viewport: dict = DESKTOP,
        color_scheme: str = "light",
        **context_options,
    ) -> Watched:
        """A tab in a fresh browser context (its own cookies); `context_options` as
        Playwright's new_context takes them (locale="fr-FR", java_script_enabled=False)."""
        context = browser.new_context(
            viewport=viewport, color_scheme=color_scheme, **context_options
        )
        return cls(context.new_page(), base_url, name)

    def _on_console(self, message) -> None:
        if message.type in ("error", "assert"):
            self.console.append(message.text)
        elif message.type == "warning" and "Content Security Policy" in message.text:
            self.console.append(message.text)

    def _on_response(self, response) -> None:
        if response.status >= 400:
            self.answers.append((response.status, response.url))

    # -- moving around --

    def goto(self, path: str):
        response = self.page.goto(self.base_url + path, wait_until="load")
        self.settle()
        return response

    def settle(self, timeout: float = 10.0) -> None:
        """Until the page has loaded and none of its requests is in flight. Playwright's
        "networkidle" waits for that and then half a second more of no request at all;
        the pages start none of their own after they load (no timers, no htmx load
        triggers), so that half second is only spent. A request still in flight after
        `timeout` seconds: networkidle after all."""
        self.page.wait_for_load_state("load")
        deadline = time.monotonic() + timeout
        while self.in_flight > 0:
            if time.monotonic() > deadline:
                self.page.wait_for_load_state("networkidle")
                return
            self.page.wait_for_timeout(10)  # the driver's events are read meanwhile

    @property
    def path(self) -> str:
        return self.page.url.removeprefix(self.base_url)

    def close(self) -> None:
        self.page.context.close()

    # -- what a person would see go wrong --

    def check(self, what: str, allow: tuple[int, ...] = (), screenshot: bool = True) -> None:
        """No console error, no failed request, no answer >= 400 (but the `allow`ed
        statuses: a form sent back with its errors), no serious or critical axe-core
        violation; then a full-page screenshot named after the test and `what`."""
        self.settle()
        answers = [(s, u) for s, u in self.answers if s not in allow]
        console = [
            text
            for text in self.console
            if not (
                (m := _STATUS_IN_CONSOLE.search(text))
                and int(m.group(1)) in allow
                and text.startswith("Failed to load resource")
            )
        ]
        problems = {"console": console, "failed requests": self.failed, "answers": answers}
        self.console, self.failed, self.answers = [], [], []
        assert not any(problems.values()), f"{what} at {self.path}: {problems}"
        violations = self.accessibility_violations()
        # axe-core's own probes (an empty style attribute) break the page's CSP: not the page's
        self.console = [t for t in self.console if "Content Security Policy" not in t]
        assert not violations, f"{what} at {self.path}: axe-core found {violations}"
        if screenshot:
            self.screenshot(what)

    def accessibility_violations(self) -> list[dict]:
        """axe-core's serious and critical violations on the page as it is now (run
        through the DevTools protocol: the page's CSP does not apply to it). axe-core is
        put into the page once per document: a page htmx swapped in place keeps it."""
        if not self.page.evaluate("() => typeof window.axe?.run === 'function'"):
            self.page.evaluate(AXE)
        violations = self.page.evaluate(
            "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        )
        return [
            {
                "id": v["id"],
                "impact": v["impact"],
                "help": v["help"],
                "nodes": [n["html"][:200] for n in v["nodes"][:5]],
            }
            for v in violations
            if v["impact"] in FAILING_IMPACTS
        ]

    def screenshot(self, what: str) -> Path:
        viewport = self.page.viewport_size or DESKTOP
        width = "phone" if viewport["width"] < 600 else "desktop"
        scheme = self.page.evaluate(
            "matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'"
        )
        path = SCREENSHOTS / self.name / f"{what}-{width}-{scheme}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        # the bytes, written here: with path= Playwright writes from a (green) thread
        path.write_bytes(self.page.screenshot(full_page=True))
        return path
