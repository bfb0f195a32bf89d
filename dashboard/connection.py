"""The page's own contact with the server (issue 11): when the page stops getting answers (the
program ended, the network or a proxy dropped, the server hangs), a red banner says so and every
tab body is greyed, instead of frozen values that still look live.

`assets/connection.js` notes the time of each successful answer. On every tick of the page's
interval a client-side callback (no request of its own) compares it with the browser's clock:
no answer for `lost_after_ms` shows the banner. A tab that sends no periodic request (History)
is kept honest by a `/healthz` probe whenever the page has neither asked nor heard anything for
two ticks. The banner goes away with the next answer. When the page's own ticks stopped (a
background tab's timers are throttled), the silence is counted from their return, not judged.
"""
from __future__ import annotations

from dash import Input, Output, html

BANNER_ID = "connection-banner"
LOST_AFTER_TICKS = 4          # ticks without an answer (at least LOST_AFTER_MIN_MS)
LOST_AFTER_MIN_MS = 5000

WATCH_JS = """
function(n, intervalMs) {
    const c = window.hilContact;
    if (!c) { return window.dash_clientside.no_update; }
    const now = Date.now(), lostAfter = Math.max(%d, %d * intervalMs);
    if (c.lastTick && now - c.lastTick > 3 * intervalMs) { c.resumedAt = now; }   // the page itself slept
    c.lastTick = now;                                    // (a background tab, a held interval): no verdict yet
    if (!c.probing && now - c.lastOk > 2 * intervalMs && now - c.lastAsked > 2 * intervalMs) {
        c.probing = true;
        const ctrl = new AbortController(), timer = setTimeout(function () { ctrl.abort(); }, lostAfter);
        fetch("healthz", {cache: "no-store", signal: ctrl.signal})
            .then(function () { c.lastOk = Date.now(); }, function () {})
            .finally(function () { clearTimeout(timer); c.probing = false; });
    }
    const lost = now - Math.max(c.lastOk, c.resumedAt || 0) > lostAfter;
    document.body.classList.toggle("hil-contact-lost", lost);
    if (!lost) { return ["", "contact-banner"]; }
    const s = Math.round((now - c.lastOk) / 1000);
    return ["No contact with the HIL Scheduler for " + s + " s: everything on this page is frozen at its "
            + "last update and may no longer be true. Check that the program runs and that this computer "
            + "reaches it.", "contact-banner contact-lost"];
}
""" % (LOST_AFTER_MIN_MS, LOST_AFTER_TICKS)


def layout() -> html.Div:
    return html.Div(id=BANNER_ID, className="contact-banner", role="alert")


def register(app, tick_id: str) -> None:
    app.clientside_callback(WATCH_JS, Output(BANNER_ID, "children"), Output(BANNER_ID, "className"),
                            Input(tick_id, "n_intervals"), Input(tick_id, "interval"))
