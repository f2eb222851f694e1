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
        # In every page: errors and unhandled promise rejections (a second
        # witness besides the browser log), and each fetch's path, to check
        # what the polling asks for.
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
            window.__warrenErrors = [];
            window.__warrenFetches = [];
            window.addEventListener('error', e => window.__warrenErrors.push('error: ' + e.message));
            window.addEventListener('unhandledrejection',
                e => window.__warrenErrors.push('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)));
            (() => {  // a function scope: a global `const fetch` would shadow window.fetch
                const original = window.fetch.bind(window);
                window.fetch = (input, init) => {
                    window.__warrenFetches.push(((init && init.method) || 'GET') + ' ' + String(input));
                    return original(input, init);
                };
            })();
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


class Dashboard:
    """The dashboard in `browser`, served by the Warren at `base_url`."""

    def __init__(self, browser: Browser, base_url: str, screenshots: Path) -> None:
        self.browser = browser
        self.driver = browser.driver
        self.base_url = base_url
        self.screenshots = screenshots
        #: Browser log entries a test expects (a refused login's 401...).
        self.allowed: list[Callable[[dict[str, Any]], bool]] = []

    # -- navigation --------------------------------------------------------------

    def open(self, hash_: str = "") -> None:
        """Load the dashboard afresh at `hash_` ("#/queues")."""
        self.driver.get(f"{self.base_url}/{hash_}")
        self.wait_script("return document.readyState === 'complete'")

    def go(self, hash_: str) -> None:
        """Go to another page of the loaded dashboard, as a click on a link does."""
        self.driver.execute_script("location.hash = arguments[0]", hash_)

    def reset(self, refresh_ms: int = 1000) -> None:
        """A clean tab: no stored credentials nor list settings; polls every `refresh_ms`."""
        self.open()
        self.driver.execute_script(
            "sessionStorage.clear(); localStorage.clear();"
            "localStorage.setItem('warren.refresh', arguments[0]);", str(refresh_ms))
        self.driver.refresh()  # the header's refresh menu shows the setting

    def login(self, username: str = "guest", password: str = "guest", hash_: str = "#/admin") -> None:
        self.open(hash_)
        self.fill("#login-username", username)
        self.fill("#login-password", password)
        self.click("#login-submit")
        self.wait_visible("#shell")

    # -- finding and acting ---------------------------------------------------------

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait_visible(self, css: str, timeout: float = 10.0) -> Any:
        return wait_for(lambda: (e := self.find(css)).is_displayed() and e, timeout)

    def wait_text(self, css: str, expected: str | Callable[[str], bool], timeout: float = 10.0) -> str:
        """The text of `css` once it contains `expected` (or `expected(text)` is true)."""
        def check() -> str | None:
            text = self.find(css).text
            ok = expected(text) if callable(expected) else expected in text
            return text if ok else None

        try:
            return wait_for(check, timeout)
        except AssertionError:
            shown = self.find_all(css)
            raise AssertionError(
                f"{css} never showed {expected!r}; it shows "
                f"{shown[0].text if shown else '(nothing)'!r}") from None

    def wait_script(self, script: str, *args: Any, timeout: float = 10.0) -> Any:
        return wait_for(lambda: self.driver.execute_script(script, *args), timeout)

    def _again(self, action: Callable[[], Any]) -> Any:
        """Run `action`, again if a refresh replaced the element under it meanwhile
        (the polled pages re-render their tables every refresh)."""
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(50):
            try:
                return action()
            except StaleElementReferenceException:
                time.sleep(0.02)
        return action()

    def fill(self, css: str, text: str) -> None:
        def fill() -> None:
            element = self.find(css)
            element.clear()
            element.send_keys(text)

        self._again(fill)

    def select(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        self._again(lambda: Select(self.find(css)).select_by_value(value))

    def click(self, css: str) -> None:
        self._again(lambda: self.find(css).click())

    def text(self, css: str) -> str:
        return str(self._again(lambda: self.find(css).text))

    def cell(self, table_id: str, row: str, column: str) -> str:
        """The text of one cell: the table's row whose data-row is `row`, column `column`."""
        return self.driver.execute_script(
            "const row = [...document.querySelectorAll(`#${arguments[0]} tr[data-row]`)]"
            ".find(r => r.dataset.row === arguments[1]);"
            "const cell = row && row.querySelector(`td[data-col=\"${arguments[2]}\"]`);"
            "return cell ? cell.textContent : null;", table_id, row, column)

    def rows(self, table_id: str) -> list[str]:
        return self.driver.execute_script(
            "return [...document.querySelectorAll(`#${arguments[0]} tr[data-row]`)]"
            ".map(r => r.dataset.row);", table_id)

    def fetches(self) -> list[str]:
        return self.driver.execute_script("return window.__warrenFetches || []")

    # -- screenshots ------------------------------------------------------------------

    def screenshot(self, name: str) -> Path:
        """The whole page as `name`.png in the screenshots folder (and in
        $WARREN_DASHBOARD_SCREENSHOTS when set, e.g. docs/images for the docs)."""
        # Let the last render and any transition settle.
        self.driver.execute_script("return new Promise(r => requestAnimationFrame(() => r()))")
        # The whole height, laid out without the vertical scrollbar (as the
        # capture lays the page out), so the width is the window's.
        width, height = self.driver.execute_script(
            "return [window.innerWidth, document.documentElement.scrollHeight]")
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        })
        data = base64.b64decode(shot["data"])
        path = self.screenshots / f"{name}.png"
        path.write_bytes(data)
        extra = os.environ.get("WARREN_DASHBOARD_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            (Path(extra) / f"dashboard-{name}.png").write_bytes(data)
        assert data.startswith(b"\x89PNG") and len(data) > 5000, "an empty screenshot"
        return path
