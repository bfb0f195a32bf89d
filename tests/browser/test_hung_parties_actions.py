"""Every page action answers while both remote plants and the Istentore API hang (components §8.2:
no dashboard callback does Modbus, HTTP or heavy file I/O).

The remote endpoints and the API are local listeners that accept and never answer, and the Modbus
and HTTP timeouts are 4 s, so a callback that waited on a plant, on the API or on a command that
talks to them would answer after 4 s or more. The bound, 2 s, separates that from a busy machine
(3 test workers and Chromium on 2 cores answer in up to about 1.3 s); the answer times themselves
are printed, and the dashboard's speed is measured by `bench/bench_dashboard.py`.
"""
from __future__ import annotations

import dataclasses
import json
import time

import pytest

from tests.browser.helpers import api_state, browser_module, get_json, wait_for
from tests.helpers import SilentListener

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

HUNG_TIMEOUT_S = 4.0
ANSWER_BOUND_MS = 2000

# Click `clickId`, then report the milliseconds until `watchId`'s text changes and contains
# `fragment` (or, with fragment null, until it becomes visible / hidden); -1 after 6 s.
TIMED_CLICK_JS = """
const [clickId, watchId, fragment, wantVisible, done] = arguments;
const watch = () => document.getElementById(watchId);
const before = watch() ? watch().innerText : null;
const t0 = performance.now();
document.getElementById(clickId).click();
(function check() {
  const w = watch();
  let ok = false;
  if (w && fragment !== null) { ok = w.innerText !== before && w.innerText.indexOf(fragment) >= 0; }
  if (w && fragment === null) { ok = (getComputedStyle(w).display !== 'none') === wantVisible; }
  if (ok) { done(performance.now() - t0); return; }
  if (performance.now() - t0 > 6000) { done(-1); return; }
  setTimeout(check, 5);
})();
"""


def btn_id(plant: str, action: str) -> str:
    return json.dumps({"type": "plant-btn", "plant": plant, "action": action}, sort_keys=True, separators=(",", ":"))


def _hang_every_party(env):
    """Remote plants and the API on silent listeners, Modbus and HTTP timeouts at HUNG_TIMEOUT_S."""
    listeners = {name: SilentListener() for name in ("lib", "vrfb", "api")}
    for listener in listeners.values():
        env.stack.callback(listener.close)
    cfg = env.cfg
    plants = {pid: dataclasses.replace(p, remote=dataclasses.replace(p.remote, port=listeners[pid].port))
              for pid, p in cfg.plants.items()}
    return {"listeners": listeners, "cfg": dataclasses.replace(
        cfg, plants=plants,
        timing=dataclasses.replace(cfg.timing, modbus_timeout_s=HUNG_TIMEOUT_S),
        istentore_api=dataclasses.replace(cfg.istentore_api, base_url=f"http://127.0.0.1:{listeners['api'].port}",
                                          request_timeout_s=HUNG_TIMEOUT_S))}


env = browser_module("dash_hung", prepare=_hang_every_party, console_clean=False)


def test_every_page_action_answers_while_the_remote_plants_and_the_api_hang(env):
    app, page = env.app, env.page
    app.intake.submit("switch_transport", target="remote")
    wait_for(lambda: api_state(app)["transport_mode"] == "remote" and not app.coordinator.busy(), 20)
    page.open(app.dashboard.url)
    page.wait_text("status-line", "Transport: REMOTE")
    page.wait_text("state-lib", "Link: Down", timeout=15)
    assert env.listeners["lib"].accepted and env.listeners["vrfb"].accepted, "the plants' links reached the hung ports"
    timings: dict[str, float] = {}

    def timed(name, click_id, watch_id, fragment=None, visible=True):
        ms = page.driver.execute_async_script(TIMED_CLICK_JS, click_id, watch_id, fragment, visible)
        timings[name] = ms
        assert 0 <= ms <= ANSWER_BOUND_MS, f"{name} answered in {ms} ms"

    page.driver.set_script_timeout(15)
    timed("start LIB", btn_id("lib", "start"), "command-line", "LIB start:")
    timed("start VRFB", btn_id("vrfb", "start"), "command-line", "VRFB start:")
    # the start's end as the app and then the page have it (a check of the page alone could see its
    # state from before the start and click a Stop the next refresh disables: no answer, -1)
    wait_for(lambda: api_state(app)["plants"]["lib"]["transition"] not in ("starting", "stopping"), 20,
             message="LIB's start over")
    if api_state(app)["plants"]["lib"]["transition"] in ("running", "unknown"):
        page.wait_button("lib", "stop", "Stop", False, timeout=10)
        timed("stop LIB", btn_id("lib", "stop"), "command-line", "LIB stop:")
    timed("record LIB", btn_id("lib", "record"), "command-line", "LIB record:")
    timed("open source modal", "source-api", "source-modal", None, True)
    timed("cancel source modal", "source-cancel", "source-modal", None, False)
    timed("open transport modal", "transport-local", "transport-modal", None, True)
    timed("cancel transport modal", "transport-cancel", "transport-modal", None, False)
    page.tab("Manual Schedule")
    wait_for(lambda: page.visible("manual-generate"), 5)
    timed("generate random", "manual-generate", "manual-status", "Random schedule generated for LIB")
    page.tab("API Schedule")
    wait_for(lambda: page.visible("api-connect"), 5)
    timed("connect without password", "api-connect", "api-message", "Enter a password.")
    app.set_api_password("any-password")   # Fetch Now is disabled without one
    wait_for(lambda: page.el("api-fetch-now").is_enabled(), 5, message="Fetch Now enabled with a password")
    accepted_before = len(env.listeners["api"].accepted)
    timed("fetch now", "api-fetch-now", "api-message", "Fetch requested at ")
    wait_for(lambda: len(env.listeners["api"].accepted) > accepted_before, 10, message="the fetch reached the hung API")
    app.set_api_password(None)
    page.tab("History")
    page.tab("Logs")
    wait_for(lambda: page.visible("log-panel"), 5)
    page.tab("Status & Plots")
    time.sleep(2.5)  # a few refreshes while the plants hang
    durations = page.js("""return performance.getEntriesByType('resource')
        .filter(e => e.name.indexOf('_dash-update-component') >= 0).map(e => e.duration);""")
    assert durations and max(durations) <= ANSWER_BOUND_MS, f"slowest callback {max(durations):.0f} ms"
    for path in ("/api/state", "/healthz", "/_dash-layout"):
        t0 = time.monotonic()
        status, _body = get_json(app.dashboard.url + path)
        timings[path] = (time.monotonic() - t0) * 1000
        assert status == 200 and timings[path] <= ANSWER_BOUND_MS, path
    print("action answer times (ms):", {k: round(v) for k, v in timings.items()},
          "slowest callback:", round(max(durations)))
