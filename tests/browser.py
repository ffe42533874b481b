"""A real headless Chromium (Debian's, driven by Selenium) with the network cut off, for page tests.

Two locks keep every request on the machine: ``--host-resolver-rules`` makes every host name but
127.0.0.1 unresolvable, and the DevTools ``Network.setBlockedURLs`` blocks http(s)/ws(s) URLs.
Pages of a server on 127.0.0.1 (:func:`open_server_page`, the review service) keep plain http
to it: there every other http request goes to a closed proxy port instead (Chromium never
proxies loopback), and https/ws(s) stay blocked.
Every URL the page asks for is still recorded (DevTools ``Network.requestWillBeSent`` in the
performance log, and the page's own ``performance`` resource entries), so a test can assert that
nothing tried to leave.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: screenshots and other artefacts of browser tests (ignored by git); REDLINE_TEST_ARTIFACTS overrides
ARTIFACTS = Path(os.environ.get("REDLINE_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
LOCAL_SCHEMES = ("file://", "data:", "blob:", "about:", "chrome-error:")
WIDTH, HEIGHT = 1280, 900


@dataclass
class PageVisit:
    """An open page: the driver (the caller quits it), what the page asked for, console errors
    (level SEVERE), and the load time in ms (navigation start → load event end)."""

    driver: webdriver.Chrome
    requests: list[str]
    console_errors: list[str]
    load_ms: float
    resources: list[str] = field(default_factory=list)
    origin: str = ""  # a server's own origin (http://127.0.0.1:PORT), whose URLs are local too

    def external_requests(self) -> list[str]:
        """Every requested URL that is not a local file/data/blob URL nor the server's own
        (should be empty)."""
        self.refresh_logs()
        local = LOCAL_SCHEMES + ((self.origin + "/",) if self.origin else ())
        return [u for u in [*self.requests, *self.resources] if not u.startswith(local)]

    def refresh_logs(self) -> None:
        """Collect the requests and console errors logged since the page opened."""
        self.requests += _requests(self.driver)
        self.console_errors += _errors(self.driver)
        self.resources = self.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")

    def wait_for(self, script: str, timeout_s: float = 10.0) -> object:
        """Poll a JavaScript expression (``return …``) until it is truthy; return its value."""
        end = time.monotonic() + timeout_s
        while True:
            value = self.driver.execute_script(script)
            if value or time.monotonic() > end:
                return value
            time.sleep(0.1)

    def screenshot(self, name: str) -> Path:
        """Save a PNG of the viewport under :data:`ARTIFACTS` and print its path."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path


def _requests(driver: webdriver.Chrome) -> list[str]:
    out = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            out.append(msg["params"]["request"]["url"])
    return out


def _errors(driver: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _chromium(extra: tuple[str, ...] = (), window: tuple[int, int] = (WIDTH, HEIGHT)) -> webdriver.Chrome:
    """Headless Chromium whose host names, but 127.0.0.1, do not resolve; ``window``: its size in CSS px."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--force-device-scale-factor=1",
                "--allow-file-access-from-files", f"--window-size={window[0]},{window[1]}", "--lang=zh-CN", *extra):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _visit(driver: webdriver.Chrome, url: str, blocked: list[str], *, settle_s: float, timeout_s: float, origin: str = "") -> PageVisit:
    try:
        driver.set_page_load_timeout(timeout_s)
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": blocked})
        driver.get(url)
        visit = PageVisit(driver=driver, requests=[], console_errors=[], load_ms=float("nan"), origin=origin)
        visit.wait_for("return document.readyState === 'complete' && performance.timing.loadEventEnd > 0", timeout_s)
        time.sleep(settle_s)
        visit.load_ms = float(driver.execute_script("return performance.timing.loadEventEnd - performance.timing.navigationStart"))
        visit.refresh_logs()
        return visit
    except BaseException:
        driver.quit()
        raise


def open_page(path: Path, *, settle_s: float = 0.5, timeout_s: float = 30.0, window: tuple[int, int] = (WIDTH, HEIGHT)) -> PageVisit:
    """Open a local HTML file in headless Chromium with the network cut off; wait for the load
    event (and ``settle_s`` for scripts run after it). ``window``: the window's size in CSS px
    (a laptop screen: 1366 × 768)."""
    return _visit(_chromium(window=window), Path(path).resolve().as_uri(), ["http://*", "https://*", "ws://*", "wss://*"], settle_s=settle_s,
                  timeout_s=timeout_s)


def open_server_page(url: str, *, settle_s: float = 0.2, timeout_s: float = 30.0, window: tuple[int, int] = (WIDTH, HEIGHT)) -> PageVisit:
    """Open a page of a server on 127.0.0.1 (``http://127.0.0.1:PORT/…``) in headless Chromium
    with the rest of the network cut off: other host names do not resolve, other http goes to a
    closed proxy port (loopback is never proxied), https and ws(s) are blocked. ``window``:
    the window's size in CSS px (a phone: 360 × 740)."""
    origin = "/".join(url.split("/")[:3])
    if not origin.startswith("http://127.0.0.1:"):
        raise ValueError(f"{url}: only servers on http://127.0.0.1 are opened")
    driver = _chromium(("--proxy-server=http://127.0.0.1:9",), window)
    if window != (WIDTH, HEIGHT):
        # headless Chromium's windows are at least 500 px wide: a phone's viewport is emulated
        # (DevTools), laid out as a phone does (``mobile``: the viewport meta tag applies)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": window[0] < 600})
    return _visit(driver, url, ["https://*", "ws://*", "wss://*"], settle_s=settle_s, timeout_s=timeout_s, origin=origin)
