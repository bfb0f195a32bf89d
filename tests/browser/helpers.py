"""Browser-test plumbing: a real `HilApp` (both emulated plants on free local ports, dashboard on
port 0) and one headless Chromium driven by Debian's chromedriver, shared per test module.

A module that shares them marks its tests `leaks_ok` (the resources outlive each test) and its
module fixture checks at teardown that nothing is left behind: no thread, listening port or child
process that was not there before the module started.
"""
from __future__ import annotations

import dataclasses
import io
import json
import shutil
import time
import urllib.request
from pathlib import Path

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def make_config(tmp: Path, *, api_url: str | None = None, auth=None, **timing):
    """The shipped config with every endpoint on a free local port (remote ports stay closed),
    data and logs in `tmp`, the dashboard on port 0 and fast timing for tests."""
    from core.config import load_config

    cfg = load_config(ROOT / "config.yaml")
    plants = {
        pid: dataclasses.replace(
            p,
            local=dataclasses.replace(p.local, host="127.0.0.1", port=free_port()),
            remote=dataclasses.replace(p.remote, host="127.0.0.1", port=free_port()))
        for pid, p in cfg.plants.items()
    }
    timing_values = {"measurement_period_s": 1, "measurements_write_period_s": 2, "data_fetcher_period_s": 120,
                     "modbus_timeout_s": 0.5}
    timing_values.update(timing)
    api = dataclasses.replace(cfg.istentore_api, measurement_post_period_s=2,
                              measurement_post_retry_initial_s=1, request_timeout_s=2,
                              **({"base_url": api_url} if api_url else {}))
    return dataclasses.replace(
        cfg, plants=plants,
        recording=dataclasses.replace(cfg.recording, data_dir=tmp / "data"),
        general=dataclasses.replace(cfg.general, log_dir=tmp / "logs"),
        dashboard=dataclasses.replace(cfg.dashboard, host="127.0.0.1", port=0, auth=auth),
        timing=dataclasses.replace(cfg.timing, **timing_values),
        safe_stop=dataclasses.replace(cfg.safe_stop, timeout_s=5),
        istentore_api=api,
    )


def start_app(cfg, with_logging: bool = False, clock=None):
    """A started `HilApp` with its dashboard (on `clock`, the real one by default); optionally with
    the process logging set up (Logs tab)."""
    from hil_scheduler import HilApp, Options

    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    cfg.general.log_dir.mkdir(parents=True, exist_ok=True)
    app = HilApp(cfg, clock=clock, options=Options(dashboard=True))
    handles = None
    if with_logging:
        from logger_config import setup_logging
        handles = setup_logging("INFO", cfg.general.log_dir, cfg.tz, app.sd, stream=io.StringIO())
    app.start()
    app.log_handles = handles
    return app


def stop_app(app) -> None:
    try:
        app.shutdown("test end")
    finally:
        if getattr(app, "log_handles", None) is not None:
            app.log_handles.close()


def recorder_of(app):
    """The measurement agent's recorder, or None while it is not wired into HilApp."""
    direct = getattr(app, "recorder", None)
    return direct if direct is not None else getattr(getattr(app, "measurement", None), "recorder", None)


def poster_of(app):
    direct = getattr(app, "poster", None)
    return direct if direct is not None else getattr(getattr(app, "measurement", None), "poster", None)


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def api_state(app) -> dict:
    return get_json(app.dashboard.url + "/api/state")[1]


def wait_for(predicate, timeout: float = 10.0, poll: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {message} (last: {last!r})")


def on_one_local_day(clock, attempt):
    """Run `attempt()` (a check that asserts) and return its result; it must pass within one local
    day. The dashboard's "today" views move to the new day at local midnight (live figure rebuilt,
    Today (live) log filtered, History's in-memory day, the fetcher's today), so when `attempt()`
    fails and the local date changed while it ran, it runs once more, wholly on the new day.
    A failure without a date change is a failure."""
    day = clock.now().date()
    try:
        return attempt()
    except Exception:  # noqa: BLE001 - re-raised unless the day changed under the check
        if clock.now().date() == day:
            raise
    return attempt()


def read_registers(port: int, address: int, count: int = 1) -> list[int]:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    try:
        assert client.connect(), f"cannot connect to 127.0.0.1:{port}"
        rr = client.read_holding_registers(address, count=count, device_id=1)
        assert not rr.isError(), rr
        return list(rr.registers)
    finally:
        client.close()


def int16(word: int) -> int:
    return word - 0x10000 if word >= 0x8000 else word


def plant_registers(app, plant: str) -> dict:
    """enable and the setpoints read from the local emulator by an independent client."""
    port = app.cfg.plants[plant].local.port
    enable = read_registers(port, 1)[0]
    p, _, q = read_registers(port, 86, 3)
    return {"enable": enable, "p_setpoint_kw": int16(p) / 10, "q_setpoint_kvar": int16(q) / 10}


# --------------------------------------------------------------------------------------- browser

class Page:
    """A thin helper around one selenium Chrome driver (ids, texts, waits, screenshots)."""

    def __init__(self, driver):
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait_text("status-line", "Source:", timeout=15)

    def el(self, element_id):
        """The element with this id (a dict id as Dash renders it), found by getElementById."""
        if isinstance(element_id, dict):
            element_id = json.dumps(element_id, sort_keys=True, separators=(",", ":"))
        found = self.driver.execute_script("return document.getElementById(arguments[0]);", element_id)
        if found is None:
            from selenium.common.exceptions import NoSuchElementException
            raise NoSuchElementException(f"no element with id {element_id!r}")
        return found

    def text(self, element_id) -> str:
        try:
            return self.el(element_id).text
        except Exception:  # noqa: BLE001 - element re-rendered between find and read
            return ""

    def click(self, element_id) -> None:
        self.el(element_id).click()

    def wait_text(self, element_id, fragment: str, timeout: float = 10.0, exact: bool = False) -> str:
        def check():
            t = self.text(element_id)
            return t if (t == fragment if exact else fragment in t) else None
        return wait_for(check, timeout, message=f"#{element_id} to show {fragment!r} (now {self.text(element_id)!r})")

    def button(self, plant: str, action: str):
        return self.el({"type": "plant-btn", "plant": plant, "action": action})

    def button_state(self, plant: str, action: str) -> tuple[str, bool]:
        b = self.button(plant, action)
        return b.text, not b.is_enabled()

    def wait_button(self, plant: str, action: str, text: str, disabled: bool, timeout: float = 10.0):
        def check():
            try:
                return self.button_state(plant, action) == (text, disabled)
            except Exception:  # noqa: BLE001
                return False
        wait_for(check, timeout, message=f"{plant} {action} button = ({text!r}, disabled={disabled}); "
                                         f"now {self._safe_state(plant, action)}")

    def _safe_state(self, plant, action):
        try:
            return self.button_state(plant, action)
        except Exception:  # noqa: BLE001
            return None

    def tab(self, label: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.XPATH, f"//div[contains(@class,'tab') and normalize-space()='{label}']").click()

    def visible(self, element_id) -> bool:
        try:
            return self.el(element_id).is_displayed()
        except Exception:  # noqa: BLE001
            return False

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def severe_console_errors(self) -> list[dict]:
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]


def new_driver(download_dir: Path | None = None, width: int = 1400, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--enable-unsafe-swiftshader", f"--window-size={width},{height}", "--disable-extensions",
                "--no-first-run", "--password-store=basic"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if download_dir is not None:
        opts.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                               "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    if download_dir is not None:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.set_page_load_timeout(30)
    return driver


def browser_available() -> bool:
    return Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()
