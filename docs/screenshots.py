"""The README's screenshots of the review service (docs/img/serve-*.png), taken from a demo output.

    .venv/bin/python docs/screenshots.py demo-out

Works on a copy of OUT (the demo's register is not touched): adds a county reviewer ``wang`` of
the first county and a specialist ``li`` (a random password), lets ``li`` assign three alerts to
``wang`` and ``wang`` record a 自检, serves the copy with ``redline serve`` on a free 127.0.0.1
port, and photographs the queue, an alert and the field list on a 360 px phone with Debian's
chromium (selenium). Needs the installation's signing key to be an admin of the register (true
for the demo's own output).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from redline.register import Register

IMG = Path(__file__).parent / "img"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser(width: int, height: int) -> webdriver.Chrome:
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--force-device-scale-factor=1", "--window-size=1280,900",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--lang=zh-CN"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=opts)
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    return d


def _login(d: webdriver.Chrome, url: str, name: str, password: str) -> None:
    d.get(f"{url}/login")
    d.find_element(By.ID, "username").send_keys(name)
    d.find_element(By.ID, "password").send_keys(password)
    d.find_element(By.ID, "login").click()
    time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="a demo output folder (make demo: demo-out)")
    args = ap.parse_args()
    IMG.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="redline-shots-") as tmp:
        out = Path(tmp) / "demo-out"
        shutil.copytree(args.out, out)
        reg = Register(out / "register.gpkg")
        alerts = reg.alerts().sort_values("first_detected")
        county = str(alerts["admin_id"].iloc[0])
        password = secrets.token_urlsafe(12)
        for name, role, counties in (("wang", "reviewer", county), ("li", "specialist", "")):
            if reg.user(name) is None:
                reg.add_user(name, role=role, password=password, counties=counties)
        mine = list(alerts[alerts["admin_id"].astype(str) == county]["alert_id"][:3])
        reg.assign(mine, to="wang", by="li")
        reg.review(mine[0], by="wang", to_status="under_review", note="影像判读：疑似林地砍伐")
        reg.review(mine[0], by="wang", step="self_check", note="自检通过，建议专检")
        port = _port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "redline.cli", "serve", str(out), "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            d = _browser(1280, 900)
            _login(d, url, "li", password)
            d.get(f"{url}/?sort=first_detected&order=asc")
            time.sleep(1.5)  # the map's features
            d.save_screenshot(str(IMG / "serve-queue.png"))
            d.get(f"{url}/alerts/{mine[0]}")
            time.sleep(1.0)
            d.save_screenshot(str(IMG / "serve-alert.png"))
            d.quit()
            d = _browser(360, 740)
            _login(d, url, "wang", password)
            d.get(f"{url}/field")
            time.sleep(0.5)
            d.save_screenshot(str(IMG / "serve-field.png"))
            d.quit()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print("\n".join(str(p) for p in sorted(IMG.glob("serve-*.png"))))


if __name__ == "__main__":
    main()
