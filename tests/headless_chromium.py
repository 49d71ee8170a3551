"""Drive Debian's headless chromium over the DevTools protocol on a pipe (no extra packages).

``--dump-dom`` with ``--virtual-time-budget`` does not wait for Web Audio decoding (it runs off
the main thread, outside virtual time), so a page whose scripts finish after decoding audio is
read this way instead: load it, wait in the page until a condition holds, then take the DOM and
a screenshot. Messages are JSON separated by NUL bytes on fds 3 (to chromium) and 4 (from it).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """One headless chromium process with one page."""

    def __init__(self, width: int = 1280, height: int = 1400) -> None:
        assert CHROMIUM is not None, "chromium is not installed"
        to_child, self._out = os.pipe()
        self._in, from_child = os.pipe()
        self._profile = tempfile.TemporaryDirectory()

        def fds() -> None:  # in the child: the protocol's fixed, inheritable descriptors 3 and 4
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}",
             "--autoplay-policy=no-user-gesture-required", "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_child)
        os.close(from_child)
        self._buffer, self._next_id, self.session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]

    def call(self, method: str, **params: Any) -> dict:
        """Send one command and return its result (events in between are dropped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, path: Path, wait_for: str, timeout_ms: int = 20000) -> str:
        """Load a file, wait until the JS expression ``wait_for`` is true; return the DOM."""
        self.call("Page.enable")
        url = path.resolve().as_uri()
        self.call("Page.navigate", url=url)
        loaded = f"document.readyState === 'complete' && location.href === {json.dumps(url)}"
        deadline = time.monotonic() + timeout_ms / 1000
        while not self.call("Runtime.evaluate", expression=loaded, returnByValue=True)["result"][
            "value"
        ]:  # the navigation replaces the page's context: wait for the new one first
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.05)
        poll = (
            "new Promise(done => { const t0 = Date.now(); (function poll() {"
            f" if (({wait_for}) || Date.now() - t0 > {timeout_ms})"
            " done(document.documentElement.outerHTML); else setTimeout(poll, 100); })(); })"
        )
        result = self.call("Runtime.evaluate", expression=poll, awaitPromise=True,
                           returnByValue=True)  # fmt: skip
        return result["result"]["value"]

    def screenshot(self, out: Path) -> Path:
        """Save a PNG of the whole page."""
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        out.write_bytes(base64.b64decode(data["data"]))
        return out

    def close(self) -> None:
        """Stop the browser process this object started."""
        self.session = None  # Browser.close goes to the browser, not the page
        with contextlib.suppress(RuntimeError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._in)
        os.close(self._out)
        self._profile.cleanup()
