"""Browser-test plumbing: a real `HilApp` (both emulated plants on free local ports, dashboard on
port 0) and headless Chromium driven by Debian's chromedriver, shared per test module.

`browser_module(...)` makes a module's `env` fixture (app, optional Istentore simulator, browser);
`settled_page()` makes its per-test `page` fixture that starts and ends at rest. A module that
shares them marks its tests `leaks_ok` (the resources outlive each test) and the module fixture
checks at teardown that nothing is left behind: no thread, listening port or child process that
was not there before the module started.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import shutil
import threading
import time
import urllib.request
from datetime import date, datetime, time as dt_time, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.schedules import frame_from_rows
from tests.helpers import ClosedPort, free_port, shift
from tests.leaks import ResourceBaseline
from tools.istentore_sim import IstentoreSim   # bundled and required: a broken one fails, never skips

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NO_BROWSER = "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
SCREEN_SIZES = {"wide": (1400, 1000), "laptop": (1280, 720), "phone": (390, 844)}


def make_config(tmp: Path, *, api_url: str | None = None, auth=None, closed: contextlib.ExitStack | None = None,
                **timing):
    """The shipped config with every endpoint on a free local port (nothing listens on the remote
    ones), data and logs in `tmp`, the dashboard on port 0 and fast timing for tests. With `closed`,
    the remote ports are `ClosedPort`s held until that stack closes, so they stay dead; without it
    another test worker may start a server there."""
    from core.config import load_config

    def remote_port() -> int:
        return closed.enter_context(ClosedPort()).port if closed is not None else free_port()

    cfg = load_config(ROOT / "config.yaml")
    plants = {
        pid: dataclasses.replace(
            p,
            local=dataclasses.replace(p.local, host="127.0.0.1", port=free_port()),
            remote=dataclasses.replace(p.remote, host="127.0.0.1", port=remote_port()))
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


def api_mode_config(tmp: Path, api_url: str):
    """`make_config` against the API at `api_url`, started in API mode, measurements posted every 1 s."""
    cfg = make_config(tmp, api_url=api_url)
    return dataclasses.replace(cfg, startup=dataclasses.replace(cfg.startup, schedule_source="api"),
                               istentore_api=dataclasses.replace(cfg.istentore_api, measurement_post_period_s=1))


def start_app(cfg, with_logging: bool = False, clock=None):
    """A started `HilApp` with its dashboard (on `clock`, the real one by default); optionally with
    the process logging set up (Logs tab)."""
    from hil_scheduler import HilApp, Options

    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    cfg.general.log_dir.mkdir(parents=True, exist_ok=True)
    app = HilApp(cfg, clock=clock, options=Options(dashboard=True))
    app.log_handles = None
    try:      # a start that fails part-way stops what it started (servers, threads, log handles)
        if with_logging:
            from logger_config import setup_logging
            app.log_handles = setup_logging("INFO", cfg.general.log_dir, cfg.tz, app.sd, stream=io.StringIO(),
                                            clock=app.clock)
        app.start()
    except BaseException:
        stop_app(app)
        raise
    return app


@contextlib.contextmanager
def api_app(tmp: Path, password: str):
    """(simulator, app): the bundled simulator with `password` and an API-mode app on it, both
    stopped at the end, each only if it started."""
    with contextlib.ExitStack() as stack:
        sim = IstentoreSim(password)
        stack.callback(sim.stop)
        sim.start()
        app = start_app(api_mode_config(tmp, sim.url))
        stack.callback(stop_app, app)
        yield sim, app


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

    def show_tab(self, label: str, marker: str) -> None:
        """Click tab `label` and wait until its element `marker` is visible."""
        self.tab(label)
        wait_for(lambda: self.visible(marker), 10, message=f"{label} tab")

    def upload_manual_csv(self, path: Path, mode: str | None = None) -> None:
        """Give `path` to the Manual tab's upload, in CSV mode `mode` (as_in_file | shift) when set."""
        from selenium.webdriver.common.by import By

        if mode is not None:
            self.js("dash_clientside.set_props('manual-csv-mode', {value: arguments[0]});", mode)
            time.sleep(0.3)
        self.driver.find_element(By.CSS_SELECTOR, "#manual-upload input[type=file]").send_keys(str(path))

    def disconnect(self) -> str:
        """Click Disconnect on the API tab, confirming the modal it opens while measurement posts are
        queued; the message once the password is cleared."""
        self.click("api-disconnect")
        wait_for(lambda: self.visible("api-disconnect-modal") or "Password cleared at " in self.text("api-message"),
                 10, message="the Disconnect modal or the password cleared")
        if self.visible("api-disconnect-modal"):
            self.click("api-disconnect-confirm")
        return self.wait_text("api-message", "Password cleared at ")

    def visible(self, element_id) -> bool:
        try:
            return self.el(element_id).is_displayed()
        except Exception:  # noqa: BLE001
            return False

    def choose_log(self, value: str) -> None:
        """Pick `value` in the Logs tab's file list as an operator can: once the list (refreshed when
        the tab is shown) offers it."""
        options = ("const l = window.dash_component_api && dash_component_api.getLayout('log-select');"
                   "return l && l.props && l.props.options ? l.props.options.map(o => o.value) : null;")
        wait_for(lambda: value in (self.js(options) or []), 10, message=f"log {value!r} in the list")
        self.js("dash_clientside.set_props('log-select', {value: arguments[0]});", value)

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


def screenshots_at_sizes(page: Page, stem: str, scroll_to: str | None = None) -> None:
    """Screenshots `<stem>_<w>x<h>` of what `page` shows at each of SCREEN_SIZES (its window
    resized, `scroll_to` scrolled into view when given); the window is back at 1400x1000 after."""
    try:
        for width, height in SCREEN_SIZES.values():
            page.driver.set_window_size(width, height)
            time.sleep(0.4)   # let the layout settle at the new size before the capture
            if scroll_to is not None:
                page.js("document.getElementById(arguments[0]).scrollIntoView({block: 'center'});", scroll_to)
                time.sleep(0.4)
            path = page.screenshot(f"{stem}_{width}x{height}")
            assert path.stat().st_size > 5000, path
    finally:
        page.driver.set_window_size(*SCREEN_SIZES["wide"])


def plot_js(element_id: str) -> str:
    """A JS expression: the plotly graph div inside the dcc.Graph with this id (null before it draws)."""
    return f"document.querySelector('#{element_id} .js-plotly-plot')"


def live_x(instant: datetime, tz, day: date | None = None) -> str:
    """The x text (`YYYY-MM-DD HH:MM:SS`) at which the live figure drawn on local `day` (default:
    `instant`'s own local day) puts `instant` (aware), computed here apart from `dashboard.live_axis`:
    UTC plus the zone's UTC offset at that day's local midnight (display time, components §8.2). It is
    the local wall time on a day with one offset, but not after the change on a DST day: there local
    wall time folds back (autumn) or jumps (spring) while the live axis keeps every real hour apart."""
    day = instant.astimezone(tz).date() if day is None else day
    offset = datetime.combine(day, dt_time(0), tzinfo=tz).utcoffset()   # no DST change falls on a midnight here
    return (instant.astimezone(timezone.utc).replace(tzinfo=None) + offset).strftime("%Y-%m-%d %H:%M:%S")


def boxes_overlap(a, b) -> bool:
    """Two [left, top, right, bottom] boxes share some area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def pointed_plot_boxes(page: Page, graph_id: str, boxes_js: str, timeout: float = 10.0, what: str = "drawn"):
    """What `boxes_js` (a function body of `arguments[0]`, the graph div; null until ready) returns
    for the graph `graph_id`, scrolled into view and pointed at so that its modebar shows."""
    from selenium.webdriver.common.action_chains import ActionChains

    page.js("document.getElementById(arguments[0]).scrollIntoView({block: 'center'});", graph_id)
    ActionChains(page.driver).move_to_element(page.el(graph_id)).perform()
    return wait_for(lambda: page.js(f"return (function() {{ {boxes_js} }})({plot_js(graph_id)});"), timeout,
                    message=f"{graph_id} {what}")


# A fetch wrapper in the page: while `window.__holdTicks` is true, every tick request is answered
# 204 without reaching the server (the page stops refreshing); RELEASE_TICKS_JS lets them through.
HOLD_TICKS_JS = """
if (!window.__origFetch) { window.__origFetch = window.fetch; }
window.__holdTicks = true;
window.fetch = function(input, init) {
  if (window.__holdTicks && init && typeof init.body === 'string' && /"id":"tick(-[a-z]+)?"/.test(init.body)) {
    return Promise.resolve(new Response(null, {status: 204}));
  }
  return window.__origFetch.apply(this, arguments);
};
"""
RELEASE_TICKS_JS = "window.__holdTicks = false;"


@contextlib.contextmanager
def coordinator_held(app, method: str, bound_s: float = 20.0):
    """Inside the block the coordinator's `method` (`safe_stop_all`: a switch's or a Stop All's
    stops; `start_all`) waits, up to `bound_s`, until the block ends, so the command that called it
    stays running; on leaving, it goes on and `method` is the original again."""
    release = threading.Event()
    original = getattr(app.coordinator, method)

    def held(*args, **kwargs):
        release.wait(bound_s)
        return original(*args, **kwargs)

    setattr(app.coordinator, method, held)
    try:
        yield
    finally:
        release.set()
        setattr(app.coordinator, method, original)


@contextlib.contextmanager
def switch_held_open(app, page: Page):
    """Inside the block a switch started now stays running (the coordinator's `safe_stop_all`
    waits, up to 20 s, until the block ends) and `page` does not refresh (HOLD_TICKS_JS); on
    leaving, the switch goes on, the ticks are released and `safe_stop_all` is the original again."""
    with coordinator_held(app, "safe_stop_all"):
        try:
            page.js(HOLD_TICKS_JS)
            yield
        finally:
            page.js(RELEASE_TICKS_JS)


def record_ticks_js(output_id: str | None = None) -> str:
    """JS for a fetch wrapper that keeps each tick response's text in `window.__tickLog` (from now
    on; only ticks whose request names `output_id` when given)."""
    only = "" if output_id is None else f"\n      && init.body.indexOf({json.dumps(output_id)}) >= 0"
    return f"""
if (!window.__origFetch) {{ window.__origFetch = window.fetch; }}
window.__tickLog = [];
window.fetch = function(input, init) {{
  const p = window.__origFetch.apply(this, arguments);
  if (init && typeof init.body === 'string' && init.body.indexOf('"id":"tick"') >= 0{only}) {{
    p.then(r => r.clone().text()).then(t => window.__tickLog.push(t)).catch(() => {{}});
  }}
  return p;
}};
"""


# ------------------------------------------------------------------------------- module fixtures

def publish_manual(app, values: dict) -> None:
    """A manual schedule per plant ({plant: (P kW, Q kvar)}) from an hour ago to three hours ahead."""
    now = app.clock.now()
    for pid, (p, q) in values.items():   # absolute offsets (`now - timedelta` is wall-clock: DST)
        start = shift(now, -3600)
        frame = frame_from_rows([start, shift(start, 1800)], [p, p], [q, q], app.cfg.tz, end_at=shift(now, 3 * 3600))
        app.store.publish_schedule("manual", pid, frame)


def settle(app) -> None:
    """Back to rest: no command or switch running, LOCAL, MANUAL, no API password, every plant
    stopped, recording off."""
    def idle():
        state = api_state(app)
        return not app.coordinator.busy() and not state["schedule_switching"] and not state["transport_switching"]
    wait_for(idle, 20, message="no switch running")
    if api_state(app)["transport_mode"] != "local":
        app.intake.submit("switch_transport", target="local")
        wait_for(lambda: api_state(app)["transport_mode"] == "local" and not app.coordinator.busy(), 20,
                 message="transport back to local")
    if api_state(app)["active_schedule_source"] != "manual":
        app.intake.submit("switch_source", target="manual")
        wait_for(lambda: api_state(app)["active_schedule_source"] == "manual" and not app.coordinator.busy(), 20,
                 message="source back to manual")
    app.set_api_password(None)
    for pid in app.cfg.plants:
        if recorder_of(app) is not None:
            app.set_recording(pid, False)
        wait_for(lambda: api_state(app)["plants"][pid]["transition"] in ("stopped", "running", "unknown"), 15,
                 message=f"{pid} settled")
        st = api_state(app)["plants"][pid]
        if st["transition"] != "stopped" or st["scheduler_running"]:
            app.intake.submit("stop", pid)
        wait_for(lambda: api_state(app)["plants"][pid]["transition"] == "stopped"
                 and not api_state(app)["plants"][pid]["scheduler_running"], 15, message=f"{pid} stopped")


class _Browsers:
    """The module's Chromium drivers, all downloading into one folder."""

    def __init__(self, downloads: Path):
        self.downloads = downloads
        self.drivers: dict[str, object] = {}

    def plain(self) -> Page:
        """One 1400x1000 window whose size a test may change."""
        self.drivers["plain"] = new_driver(self.downloads)
        return Page(self.drivers["plain"])

    def page_at(self, size: str) -> Page:
        """One browser per size of SCREEN_SIZES, made at first use, with exactly that viewport (a
        headless window keeps its frame and a minimum width of 500 px)."""
        if size not in self.drivers:
            width, height = SCREEN_SIZES[size]
            driver = new_driver(self.downloads, width, height)
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
            self.drivers[size] = driver
        return Page(self.drivers[size])

    def severe_console_errors(self) -> list[dict]:
        return [e for d in self.drivers.values() for e in Page(d).severe_console_errors()]

    def quit(self) -> None:
        for driver in self.drivers.values():
            driver.quit()


def _start_sim(stack: contextlib.ExitStack, api_password: str | None):
    """The bundled Istentore simulator accepting `api_password`, started (None without a password)."""
    if api_password is None:
        return None
    sim = IstentoreSim(api_password)
    sim.start()
    stack.callback(sim.stop)
    return sim


def browser_module(tmp_name: str, *, api_password: str | None = None, with_logging: bool = False,
                   configure=None, prepare=None, clock=None, seed=None, per_size: bool = False,
                   console_clean: bool = True, leak_grace_s: float = 5.0):
    """The module-scoped `env` fixture of a browser-test module (skipped without Chromium).

    In order: the simulator (`api_password` given), the config (`make_config`, remote ports closed, then
    `configure(cfg) -> cfg`), `prepare(env)` for files before the start, the app (`with_logging`,
    on `clock(cfg)` when given), `seed(env)`, then the browser: `env.page` (one 1400x1000 window,
    the dashboard open) or, `per_size`, `env.page_at(size)` (one per SCREEN_SIZES, made at first
    use). `prepare` and `seed` may return a dict of more `env` attributes (`prepare` may replace
    `cfg`) and register cleanups on `env.stack`. `env` also has tmp, downloads (the browsers'
    download folder), sim (None without `api_password`), cfg, app and clock.
    At teardown: no SEVERE browser console entry (`console_clean`), then browsers, app and
    simulator stopped and no thread, port or process left after `leak_grace_s`."""

    @pytest.fixture(scope="module", name="env")
    def env_fixture(tmp_path_factory):
        if not browser_available():
            pytest.skip(NO_BROWSER)
        baseline = ResourceBaseline()
        tmp = tmp_path_factory.mktemp(tmp_name)
        with contextlib.ExitStack() as stack:
            env = SimpleNamespace(tmp=tmp, downloads=tmp / "downloads", sim=_start_sim(stack, api_password),
                                  stack=stack)
            env.downloads.mkdir()
            cfg = make_config(tmp, api_url=env.sim.url if env.sim is not None else None, closed=stack)
            env.cfg = configure(cfg) if configure is not None else cfg
            vars(env).update((prepare(env) if prepare is not None else None) or {})
            env.app = start_app(env.cfg, with_logging, clock(env.cfg) if clock is not None else None)
            stack.callback(stop_app, env.app)
            env.clock = env.app.clock
            vars(env).update((seed(env) if seed is not None else None) or {})
            browsers = _Browsers(env.downloads)
            stack.callback(browsers.quit)
            if per_size:
                env.page_at = browsers.page_at
            else:
                env.page = browsers.plain()
                env.page.open(env.app.dashboard.url)
            yield env
            if console_clean:
                assert browsers.severe_console_errors() == [], "no browser console errors"
        baseline.check(grace_s=leak_grace_s, context="module teardown: ")

    return env_fixture


def settled_page(size: str = "wide"):
    """A per-test `page` fixture for a module's `env`: the app at rest (`settle`), the dashboard
    freshly opened (`env.page`, or `env.page_at(size)`); after the test, ticks released and at rest."""

    @pytest.fixture(name="page")
    def page_fixture(env):
        settle(env.app)
        page = env.page_at(size) if hasattr(env, "page_at") else env.page
        page.open(env.app.dashboard.url)
        yield page
        page.js(RELEASE_TICKS_JS)
        settle(env.app)

    return page_fixture
