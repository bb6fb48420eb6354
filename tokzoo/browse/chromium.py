"""Headless Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``), standard library only.

Used to check a built site the way a person opens it: console errors, images that did not load, clicks,
screenshots. The pipe needs no port, no websocket client and no driver binary matched to the browser's
version: Chromium reads commands on file descriptor 3 and answers on 4, one JSON message per NUL byte.

    with Chromium() as browser:
        browser.open(Path("site/index.html").resolve().as_uri())
        browser.wait_for("document.body.dataset.ready")
        print(browser.problems())
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENVIRONMENT = "TOKZOO_CHROMIUM"


class ChromiumError(RuntimeError):
    """The browser is missing, died, or did not answer in time."""


def find_chromium() -> str:
    """``$TOKZOO_CHROMIUM`` or the first of :data:`CANDIDATES` on PATH; ChromiumError saying how to get one."""
    named = os.environ.get(ENVIRONMENT)
    if named:
        if not (shutil.which(named) or Path(named).is_file()):
            raise ChromiumError(f"{ENVIRONMENT}={named}: no such executable")
        return shutil.which(named) or named
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise ChromiumError(
        "no Chromium found (looked for " + ", ".join(CANDIDATES) + f" on PATH and ${ENVIRONMENT}); "
        "install Debian's package: apt-get install chromium (`make test` does this when run as root)"
    )


class Chromium:
    """One headless browser with one page; collects console errors, exceptions and failed loads."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900, timeout: float = 30.0):
        self.executable, self.size, self.timeout = executable or find_chromium(), (width, height), timeout
        self.console: list[str] = []
        self._next_id, self._buffer, self._events = 0, b"", []

    def __enter__(self) -> "Chromium":
        self._profile = tempfile.mkdtemp(prefix="tokzoo-chromium-")
        to_browser, from_browser = os.pipe(), os.pipe()
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser[0], from_browser[1]))
        os.close(to_browser[0])
        os.close(from_browser[1])

        def descriptors():  # the child's fd 3 reads commands, fd 4 writes answers
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        args = [
            self.executable,
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
            f"--user-data-dir={self._profile}",
            f"--window-size={self.size[0]},{self.size[1]}",
            "about:blank",
        ]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(3, 4),
            preexec_fn=descriptors,
        )
        os.close(child_in)
        os.close(child_out)
        self._write, self._read = to_browser[1], from_browser[0]
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", session=True)
            self.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": self.size[0], "height": self.size[1], "deviceScaleFactor": 1, "mobile": False},
                session=True,
            )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for fd in (getattr(self, "_write", None), getattr(self, "_read", None)):
            if fd is not None:
                os.close(fd)
        self._write = self._read = None
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- the protocol ---------------------------------------------------------------------------
    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        """Send one command and return its result; events that arrive meanwhile are recorded."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._event(reply)

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise ChromiumError(f"no answer from {self.executable} within {self.timeout:.0f} s")
            data = os.read(self._read, 1 << 16)
            if not data:
                stderr = (
                    self._process.stderr.read().decode(errors="replace")[-2000:]
                    if self._process.poll() is not None
                    else ""
                )
                raise ChromiumError(f"{self.executable} closed the DevTools pipe{': ' + stderr if stderr else ''}")
            self._buffer += data
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.console.append(
                "console."
                + params["type"]
                + ": "
                + " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            )
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.console.append(
                "exception: " + details.get("exception", {}).get("description", details.get("text", ""))
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.console.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.console.append(f"load failed: {params.get('errorText')} (request {params.get('requestId')})")

    # -- what a test does -----------------------------------------------------------------------
    def evaluate(self, expression: str):
        """Value of a JavaScript expression in the page (promises awaited); ChromiumError if it throws."""
        result = self.call(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, session=True
        )
        if "exceptionDetails" in result:
            raise ChromiumError(
                f"{expression[:80]}: {result['exceptionDetails'].get('exception', {}).get('description')}"
            )
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session=True)

    def wait_for(self, expression: str, timeout: float | None = None):
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except ChromiumError:
                value = None  # the page is between documents
            if value:
                return value
            time.sleep(0.05)
        raise ChromiumError(
            f"still false after {timeout or self.timeout:.0f} s: {expression}; console: {self.console or 'nothing'}"
        )

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the first element matching ``selector``
        (of its first line box, for a link that wraps)."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            "e.scrollIntoView({block: 'center'}); const r = e.getClientRects()[0];"
            "return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        if box is None:
            raise ChromiumError(f"nothing matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
                session=True,
            )

    def broken_images(self) -> list[str]:
        """Sources of the page's images that fail to load once every lazy image is asked for now."""
        return self.evaluate("""(async () => {
            const images = [...document.images];
            images.forEach(i => { i.loading = 'eager'; });
            await Promise.all(images.map(i => i.complete ? null :
                new Promise(done => { i.addEventListener('load', done); i.addEventListener('error', done); })));
            return images.filter(i => !i.naturalWidth).map(i => i.getAttribute('src'));
        })()""")

    def screenshot(self, path: Path) -> Path:
        """PNG of the whole page (beyond the window when it scrolls)."""
        metrics = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": self.size[0], "height": min(int(metrics["height"]), 4000), "scale": 1}
        data = self.call(
            "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}, session=True
        )["data"]
        from tokzoo.io.writes import write_output

        return write_output(path, base64.b64decode(data))

    def drain(self, seconds: float = 0.2) -> None:
        """Take in the events that arrive within ``seconds`` (console messages after the last command)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._event(self._receive(deadline))
        except ChromiumError:
            pass
