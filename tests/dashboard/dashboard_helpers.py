"""Helpers for the dashboard tests: the management API over HTTP, and a headless Chromium.

The browser is Debian's `chromium` driven by Selenium through Debian's
`chromium-driver` (`apt-get install chromium chromium-driver`; `.ci/run`
installs them): nothing is downloaded at test time, and Selenium Manager is
never asked for a driver, since both paths are given.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Where Debian puts them; WARREN_CHROMIUM / WARREN_CHROMEDRIVER override.
CHROMIUM = os.environ.get("WARREN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("WARREN_CHROMEDRIVER", "/usr/bin/chromedriver")

#: The flags that work in this project's containers (no sandbox as root, no GPU,
#: nothing fetched from the network by the browser itself).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return (f"{path} not found: `apt-get install chromium chromium-driver` "
                    f"(Debian's {package}; .ci/run installs it)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


def call(
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    auth: tuple[str, str] | None = ("guest", "guest"),
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """(status, decoded JSON or None) of one request to the management API."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    return status, json.loads(payload) if payload else None


def wait_for(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy; its last exception or value on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last = error
        if time.monotonic() > deadline:
            if isinstance(last, BaseException):
                raise AssertionError(f"timed out after {timeout} s") from last
            raise AssertionError(f"timed out after {timeout} s; last value {last!r}")
        time.sleep(interval)


class Browser:
    """One headless Chromium; `console_errors()` gives what went wrong in the page."""

    def __init__(self, download_dir: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="warren-chromium-")
        self.download_dir = download_dir
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        options.add_experimental_option("prefs", {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
        })
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(20)
        # Downloads in headless mode go where we say (CDP: Browser.setDownloadBehavior).
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(download_dir)},
        )
        # Unhandled promise rejections and errors, counted in the page too (a
        # second witness besides the browser log).
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
            window.__warrenErrors = [];
            window.addEventListener('error', e => window.__warrenErrors.push('error: ' + e.message));
            window.addEventListener('unhandledrejection',
                e => window.__warrenErrors.push('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)));
        """})
        self.log: list[dict[str, Any]] = []

    def drain_log(self) -> list[dict[str, Any]]:
        entries = self.driver.get_log("browser")
        self.log.extend(entries)
        return entries

    def console_errors(self, allow: Callable[[dict[str, Any]], bool] = lambda entry: False) -> list[str]:
        """SEVERE browser log entries (console.error, uncaught exceptions, failed
        requests) and errors the page caught, except those `allow` accepts."""
        self.drain_log()
        problems = [e["message"] for e in self.log if e["level"] == "SEVERE" and not allow(e)]
        try:
            problems += self.driver.execute_script("return window.__warrenErrors || []")
        except Exception:  # noqa: BLE001 - a page in the middle of loading
            pass
        return problems

    def forget_log(self) -> None:
        self.drain_log()
        self.log.clear()

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
