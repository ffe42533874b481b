"""A real headless Chromium (Debian's, driven by Selenium) with the network blocked, for page tests."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@dataclass
class PageVisit:
    driver: webdriver.Chrome
    requests: list[str]
    console_errors: list[str]


def open_page(path: Path, *, wait_s: float = 2.0) -> PageVisit:
    """Open a local HTML file in headless Chromium with every non-local request blocked.

    Returns the driver (still open: the caller quits it), every URL the page requested, and the
    console messages of level SEVERE.
    """
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--allow-file-access-from-files", "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]})
    driver.get(Path(path).resolve().as_uri())
    driver.implicitly_wait(wait_s)
    import time

    time.sleep(wait_s)
    requests = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            requests.append(msg["params"]["request"]["url"])
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return PageVisit(driver=driver, requests=requests, console_errors=errors)
