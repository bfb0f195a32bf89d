"""Plain HTTP routes and guards of the dashboard's Flask server (components §8.1, §8.5, §8.7, §8.9).

- Basic auth (when `dashboard.auth` is set) on every route except `/healthz`: 401 with
  `WWW-Authenticate: Basic realm="HIL Scheduler"`, constant-time comparison, never logged; the
  operator's or the viewer's credentials (`dashboard/roles.py` says what a viewer may do). After
  repeated wrong credentials the address gets 429 (core/basic_auth.py `FailedLogins`), except a
  client holding the `hil_login` cookie of its credentials, given at its first login.
- Without auth (the dashboard then listens on loopback only), a request whose `Host` is not a
  loopback name or address gets 421: a web page the operator opens cannot reach the dashboard
  through a DNS name rebound to 127.0.0.1 (`/healthz` stays open).
- Every answer says it may not be framed by another site (`X-Frame-Options: DENY`, CSP
  `frame-ancestors 'none'`): no click on Start through an invisible frame.
- Request bodies over 8 MiB: 413 (checked from the header before anything reads the body, and by
  Flask's `MAX_CONTENT_LENGTH` for bodies without a length).
- `GET /api/state`: JSON from one snapshot, `Cache-Control: no-store`; never the password or a token.
  Each plant carries `forecast` (agents/forecaster.py: `soc_end`, `first_violation_at`,
  `undeliverable_kwh`, the warning, the start SoC and its origin) of the active source, or null.
- `GET /metrics`: Prometheus text format from the app's own registry (dashboard/metrics.py); no I/O.
- `GET /healthz`: 200 `{"status": "ok"}` or 503 `{"status": "failing", "failing": [...]}`.
- `POST /_dash-update-component` for outputs this server has no callback for (a page open across a
  restart into another version): 410 and one WARNING per output, not a 500 with a traceback.
- `GET /_dash-component-suites/<package>/<path>` of a file Dash did not register (a typo, a probe,
  `..`): 404 with a one-line reason, not Dash's 500 with a logged traceback per request.
- `GET /download/manual?plant=<id>`: the plant's manual schedule in the upload format.
- `GET /download/history?date=YYYY-MM-DD&plant=<id>`: that daily file's bytes under its own name;
  the server maps (date, plant) to the path itself. Not gated: waitress sends the file from its
  event loop (`wsgi.file_wrapper`), the request thread only stats it; nothing is parsed.
- `GET /download/report?date=YYYY-MM-DD&plant=<id>|all`: the day report (dashboard/day_report.py) of
  that day as one HTML download; 404 with the reason when no plant has data that day. Built under
  the dashboard's heavy-load gate (`dctx.heavy_loads`, dashboard/load_gate.py, shared with the
  History tab): when it stays busy past its short wait, 503 with `Retry-After` and one line.
"""
from __future__ import annotations

import json
import logging
import threading

from dash.exceptions import DependencyException
from flask import Flask, Response, abort, g, request, send_file

from core.basic_auth import REALM, REFUSED_TEXT, TRUST_COOKIE, FailedLogins
from core.hosts import MISDIRECTED_TEXT, misdirected
from core.day_report import ReportError
from core.names import PLANT_IDS, safe_plant_name
from core.schedule_csv import schedule_to_csv
from dashboard import constants as C
from dashboard import files, roles
from dashboard.common import logged_name
from dashboard.api_state import api_state_document, json_default
from dashboard.context import DashboardContext
from dashboard.day_report import build_report

UNAUTHENTICATED_PATHS = ("/healthz",)
UNKNOWN_CALLBACKS_LOGGED_MAX = 100
log = logging.getLogger("hil.dashboard")


def _json(payload, status: int = 200) -> Response:
    body = json.dumps(payload, default=json_default, allow_nan=False)
    return Response(body, status=status, mimetype="application/json", headers={"Cache-Control": "no-store"})


def _finite(value):
    """Replace NaN and infinities (never valid JSON) by None, recursively."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _not_framed(response: Response) -> Response:
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    return response


def _give_token(response: Response) -> Response:
    """Set the TRUST_COOKIE of a client that logged in without a valid one (page script cannot read it)."""
    if (token := g.get("hil_login_token")) is not None:
        response.set_cookie(TRUST_COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure)
    return response


def _authenticate(failed_logins: FailedLogins, accounts, mono: float) -> tuple[str, str] | Response:
    """(role, username) of the request's credentials, else its answer: 401, or 429 while its address
    is refused after repeated wrong credentials and the client did not log in with them before
    (core.basic_auth.FailedLogins; `_give_token` sets the TRUST_COOKIE that says it did)."""
    client = request.remote_addr or "unknown"
    verdict = failed_logins.judge(client, mono, request.headers.get("Authorization"),
                                  lambda header: roles.identify(header, accounts), request.cookies.get(TRUST_COOKIE))
    if verdict.kind == "accepted":
        g.hil_login_token = verdict.token
        return verdict.who
    if verdict.kind == "refused":
        return Response(REFUSED_TEXT, status=429, mimetype="text/plain",
                        headers={"Retry-After": str(max(1, round(verdict.refused_s)))})
    if (line := verdict.log_line("Dashboard", client)) is not None:
        log.warning("%s", line)
    return Response("Authentication required.\n", status=401, headers={"WWW-Authenticate": REALM},
                    mimetype="text/plain")


def register_routes(server: Flask, dctx: DashboardContext, auth_password: str | None,
                    viewer_password: str | None = None) -> None:
    cfg = dctx.cfg
    auth, viewer = cfg.dashboard.auth, cfg.dashboard.viewer
    accounts = []
    if auth is not None:
        accounts.append((roles.OPERATOR, auth.username, auth_password or ""))
        if viewer is not None and viewer_password:
            accounts.append((roles.VIEWER, viewer.username, viewer_password))
    server.config["MAX_CONTENT_LENGTH"] = C.MAX_REQUEST_BYTES
    failed_logins = FailedLogins(threading.Lock())

    @server.before_request
    def guard():
        if auth is None and request.path not in UNAUTHENTICATED_PATHS and misdirected(request.host):
            return Response(MISDIRECTED_TEXT, status=421, mimetype="text/plain")
        length = request.content_length
        if length is not None and length > C.MAX_REQUEST_BYTES:
            abort(413)
        if auth is not None and request.path not in UNAUTHENTICATED_PATHS:
            who = _authenticate(failed_logins, accounts, dctx.clock.monotonic())
            if isinstance(who, Response):
                return who
            g.hil_role, g.hil_user = who
        if length is None and request.environ.get("wsgi.input_terminated"):
            # A chunked body has no length to check: read it (cached for the view) through Flask's
            # MAX_CONTENT_LENGTH cap, which cuts it silently; a body that reaches the cap is refused.
            if len(request.get_data(cache=True)) >= C.MAX_REQUEST_BYTES:
                abort(413)
        return None

    server.after_request(_not_framed)
    server.after_request(_give_token)

    @server.route("/api/state")
    def api_state():
        doc = api_state_document(cfg, dctx.snapshot())
        forecaster = getattr(dctx.hil, "forecaster", None)   # computed off the request path
        for pid, plant in doc["plants"].items():
            plant["forecast"] = forecaster.summary(pid) if forecaster is not None else None
        return _json(_finite(doc))

    @server.route("/metrics")
    def metrics():
        from dashboard.metrics import render
        body, ctype = render(dctx.hil.metrics_registry)
        return Response(body, status=200, headers={"Content-Type": ctype, "Cache-Control": "no-store"})

    @server.route("/healthz")
    def healthz():
        failing = dctx.hil.registry.failing()
        if failing:
            return _json({"status": "failing", "failing": failing}, 503)
        return _json({"status": "ok"})

    _register_downloads(server, dctx)
    server.register_error_handler(DependencyException, _unknown_component_file)


def _unknown_component_file(_exc: DependencyException) -> Response:
    return Response("No such dashboard component file.\n", status=404, mimetype="text/plain")


def _register_downloads(server: Flask, dctx: DashboardContext) -> None:
    """The download routes: manual schedule, history day file, day report."""
    cfg = dctx.cfg

    @server.route("/download/manual")
    def download_manual():
        plant = request.args.get("plant")
        if plant not in PLANT_IDS:
            abort(404)
        frame = dctx.snapshot().manual.get(plant)
        if frame is None or len(frame) == 0:
            return Response(f"No manual schedule for {dctx.names[plant]}.\n", status=404, mimetype="text/plain")
        name = f"manual_schedule_{safe_plant_name(dctx.names[plant], plant)}.csv"
        return Response(schedule_to_csv(frame), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})

    @server.route("/download/history")
    def download_history():
        path = files.history_path(cfg, request.args.get("date"), request.args.get("plant"))
        if path is None:
            return Response("No such recorded day.\n", status=404, mimetype="text/plain")
        return send_file(path, mimetype="text/csv", as_attachment=True, download_name=path.name, max_age=0)

    @server.route("/download/report")
    def download_report():
        day, plant = files.parse_date(request.args.get("date")), request.args.get("plant")
        if day is None or plant not in PLANT_IDS + ("all",):
            return Response("No such day or plant.\n", status=404, mimetype="text/plain")
        with dctx.heavy_loads.slot() as got:
            if not got:
                return Response(C.REPORT_BUSY + "\n", status=503, mimetype="text/plain",
                                headers={"Retry-After": str(C.HEAVY_LOAD_RETRY_AFTER_S), "Cache-Control": "no-store"})
            try:
                text, _ = build_report(cfg, day, list(PLANT_IDS) if plant == "all" else [plant], dctx.clock.now())
            except ReportError as exc:
                return Response(f"No report: {exc}.\n", status=404, mimetype="text/plain")
        name = f"report_{day.isoformat()}{'' if plant == 'all' else '_' + plant}.html"
        return Response(text, mimetype="text/html",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})


def _outputs_text(output: str) -> str:
    """A callback's outputs as a page sent them (`..id.prop...id.prop..` or `id.prop`), each
    component id as a log may quote it (`common.logged_name`)."""
    parts = [part.rpartition(".") for part in output.strip(".").split("...")]
    return ", ".join(f"{logged_name(cid)}.{logged_name(prop)}" if cid else logged_name(prop) for cid, _, prop in parts)


def refuse_unknown_callbacks(server: Flask, callback_map) -> None:
    """A callback request for outputs this server has no Python callback for gets 410 with a short
    JSON reason, instead of Dash's 500 and a logged traceback on every tick. That is what a page
    left open across a restart into another version sends (or a forged request); the first request
    for each such output (at most 100 distinct) is logged as one WARNING. Register after the auth
    guard and after every callback."""
    logged: set[str] = set()

    @server.before_request
    def unknown_callback():
        if request.method != "POST" or not request.path.endswith("/_dash-update-component"):
            return None
        body = request.get_json(silent=True)   # cached: Dash's own get_json does not parse again
        output = body.get("output") if isinstance(body, dict) else None
        if not isinstance(output, str) or "callback" in callback_map.get(output, {}):
            return None
        if output not in logged and len(logged) < UNKNOWN_CALLBACKS_LOGGED_MAX:
            logged.add(output)
            log.warning("Dashboard: a page asked for a callback this server does not have (outputs %s); "
                        "that page must be reloaded", _outputs_text(output))
        return _json({"error": "unknown callback: reload the page"}, status=410)
