"""Dashboard constants in one place: component ids, texts fixed by components §8, colours, limits.

Ids are plain strings except the per-plant action buttons, which use pattern-matching ids
`{"type": "plant-btn", "plant": <id>, "action": <action>}` so that one callback serves every
button and a forged request with an unknown plant or action reaches the validation in one place.
"""
from __future__ import annotations

from core.recording import MAX_DAILY_FILE_BYTES

PAGE_TITLE = "HIL Scheduler Dashboard"

# Tabs in order (label, value); the first is the default.
TABS = (
    ("Status & Plots", "status"),
    ("Manual Schedule", "manual"),
    ("API Schedule", "api"),
    ("History", "history"),
    ("Logs", "logs"),
)

# ---------------------------------------------------------------------------------- limits
MAX_REQUEST_BYTES = 8 * 1024 * 1024     # 413 above (components §8.1)
MAX_UPLOAD_BYTES = 5_000_000            # the upload component and the server refuse more
CSV_START_STEP_S = 300                  # the CSV start defaults to the next whole 5 minutes
MAX_HISTORY_FILE_BYTES = MAX_DAILY_FILE_BYTES
LOG_TAIL_LINES = 2000
LISTING_TTL_S = 60.0                    # directory listings (history days, log dates)
HEAVY_LOADS_AT_ONCE = 1                 # history file reads and day reports at a time (dashboard/load_gate.py): 2 cores
HEAVY_LOAD_WAIT_S = 2.0                 # a load that finds them running waits this long, then is told "busy"
HEAVY_LOAD_MAX_WAITING = 2              # ... with at most this many others waiting (more: "busy" at once)
HEAVY_LOAD_RETRY_AFTER_S = 2            # Retry-After of a route's 503 "busy"; History's retry period
WEBGL_MIN_POINTS = 20_000               # traces above this use scattergl
LIVE_MAX_POINTS = 4_000                 # a live trace grown by patches beyond this is drawn whole again
LIVE_VISIBLE_BUCKETS = 800              # live/history traces: rows on screen exact up to 2x this, else min/max
LIVE_OUTSIDE_BUCKETS = 150              # min/max buckets for the rows left and right of the screen
NOW_LINE_MIN_MOVE_S = 30.0              # with nothing new, the now line moves at most this often
REBUILD_RETRY_S = 60.0                  # a whole-figure request not answered by then is asked again
LIVE_FIGURE_HEIGHT = 640
# Live plot x windows (value, label, seconds back from now; None = today 00:00-24:00). A window
# shows a sixth of its span ahead of now and slides on when now passes half of that.
LIVE_RANGES = (("15m", "15 min", 900), ("1h", "1 h", 3600), ("6h", "6 h", 21600), ("day", "day", None))
LIVE_RANGE_DEFAULT = "1h"
LIVE_LEAD_FRACTION = 1 / 6
MANUAL_PREVIEW_HEIGHT = 320
MODEBAR_ROW_PX = 30   # the Plotly modebar's buttons: 2 px below a graph's top, 22-26 px high
TITLED_TOP_PX = MODEBAR_ROW_PX + 24   # a top margin holding the modebar's row, then a title's
LEGEND_ROWS_PX = 40   # two rows of a horizontal legend anchored on the plot's top (a phone wraps it to two)
# Preview time axes: the day as "Dec 3" on every tick, not "Dec 3, 2026" (narrow enough not to be
# turned at 390 px, where turned labels ran into the forecast line under the plot)
PREVIEW_TIME_TICKS = {"tickformatstops": [
    {"dtickrange": [None, 60_000], "value": "%H:%M:%S<br>%b %-d"},
    {"dtickrange": [60_000, 86_400_000], "value": "%H:%M<br>%b %-d"},
    {"dtickrange": [86_400_000, None], "value": "%b %-d"}]}
API_PREVIEW_HEIGHT = 380
TRACKING_FIGURE_HEIGHT = 110

# ---------------------------------------------------------------------------------- ids
TABS_ID = "tabs"
TICK_ID = "tick"
LAST_CMD_ID = "last-cmd"

SOURCE_BTN = {"manual": "source-manual", "api": "source-api"}
TRANSPORT_BTN = {"local": "transport-local", "remote": "transport-remote"}
LIVE_RANGE_ID = "live-range"
SUMMARY_ID = "plant-summary"
STATUS_LINE_ID = "status-line"
API_LINE_ID = "api-line"
COMMAND_LINE_ID = "command-line"

SOURCE_MODAL_ID = "source-modal"
SOURCE_CONFIRM_ID = "source-confirm"
SOURCE_CANCEL_ID = "source-cancel"
SOURCE_PENDING_ID = "source-pending"
TRANSPORT_MODAL_ID = "transport-modal"
TRANSPORT_CONFIRM_ID = "transport-confirm"
TRANSPORT_CANCEL_ID = "transport-cancel"
TRANSPORT_PENDING_ID = "transport-pending"
START_ALL_BTN_ID = "start-all"
STOP_ALL_BTN_ID = "stop-all"
START_ALL_MODAL_ID = "start-all-modal"
START_ALL_CONFIRM_ID = "start-all-confirm"
START_ALL_CANCEL_ID = "start-all-cancel"
START_ALL_PENDING_ID = "start-all-pending"
STOP_ALL_MODAL_ID = "stop-all-modal"
STOP_ALL_CONFIRM_ID = "stop-all-confirm"
STOP_ALL_CANCEL_ID = "stop-all-cancel"
STOP_ALL_PENDING_ID = "stop-all-pending"

PLANT_BTN_TYPE = "plant-btn"
PLANT_ACTIONS = ("start", "stop", "record", "stop_recording")
HOLD_ACTIONS = ("hold", "resume")       # the override row's buttons (dashboard/override_views.py)


def plant_btn(plant: str, action: str) -> dict:
    return {"type": PLANT_BTN_TYPE, "plant": plant, "action": action}


def plant_id(kind: str, plant: str) -> str:
    """Per-plant component id: `state-lib`, `live-fig-vrfb`, ..."""
    return f"{kind}-{plant}"


# Manual Schedule tab
MANUAL_PLANT_ID = "manual-plant"
MANUAL_START_HOUR_ID = "manual-start-hour"
MANUAL_END_HOUR_ID = "manual-end-hour"
MANUAL_STEP_ID = "manual-step"
MANUAL_MIN_ID = "manual-min-kw"
MANUAL_MAX_ID = "manual-max-kw"
MANUAL_GENERATE_ID = "manual-generate"
MANUAL_CLEAR_ID = "manual-clear"
MANUAL_DOWNLOAD_ID = "manual-download"
MANUAL_UPLOAD_ID = "manual-upload"
MANUAL_DATE_ID = "manual-csv-date"
MANUAL_HOUR_ID = "manual-csv-hour"
MANUAL_MINUTE_ID = "manual-csv-minute"
MANUAL_MODE_ID = "manual-csv-mode"
MANUAL_STATUS_ID = "manual-status"
MANUAL_SAVE_NOTE_ID = "manual-save-note"   # the selected plant's schedule not saved (saver's error), else empty
# The class of a message line (`style.css`): an outcome in blue, a failure (nothing changed) in the
# failure colour, like the Status tab's command line.
MESSAGE_CLASS = "line message"
MESSAGE_BAD_CLASS = "line message message-bad"
MANUAL_PREVIEW_ID = "manual-preview"
MANUAL_STORE_ID = "manual-store"
MANUAL_GUARD_ID = "manual-upload-guard"
MANUAL_OVERRIDE_ID = "manual-override"

# API Schedule tab
API_PASSWORD_ID = "api-password"
API_CONNECT_ID = "api-connect"
API_DISCONNECT_ID = "api-disconnect"
API_FETCH_ID = "api-fetch-now"
API_MESSAGE_ID = "api-message"
API_STATUS_ID = "api-status"
API_ERROR_ID = "api-error"
API_PREVIEW_ID = "api-preview"
API_STORE_ID = "api-store"
API_CONNECT_STORE_ID = "api-connect-store"   # {"at": ISO} of a Connect awaiting its answer
API_DISCONNECT_MODAL_ID = "api-disconnect-modal"   # opened by Disconnect while posts are queued
API_DISCONNECT_BODY_ID = "api-disconnect-modal-body"
API_DISCONNECT_CANCEL_ID = "api-disconnect-cancel"
API_DISCONNECT_CONFIRM_ID = "api-disconnect-confirm"

# History tab
HISTORY_DATE_ID = "history-date"
HISTORY_PLANT_ID = "history-plant"
HISTORY_FIGURE_ID = "history-figure"
HISTORY_MESSAGE_ID = "history-message"
HISTORY_DOWNLOAD_ID = "history-download"

# Logs tab
LOG_SELECT_ID = "log-select"
LOG_RELOAD_ID = "log-reload"
LOG_FILE_LABEL_ID = "log-file-label"
LOG_PANEL_ID = "log-panel"
LOG_STORE_ID = "log-store"
LOG_SCROLL_ID = "log-scroll"
LOG_LIVE_VALUE = "live"

# Components that change something when used: shown disabled to a viewer (dashboard/roles.py).
CONTROL_ID_TYPES = (PLANT_BTN_TYPE,)
CONTROL_IDS = frozenset({
    *SOURCE_BTN.values(), *TRANSPORT_BTN.values(), SOURCE_CONFIRM_ID, TRANSPORT_CONFIRM_ID,
    START_ALL_BTN_ID, STOP_ALL_BTN_ID, START_ALL_CONFIRM_ID, STOP_ALL_CONFIRM_ID,
    MANUAL_START_HOUR_ID, MANUAL_END_HOUR_ID, MANUAL_STEP_ID, MANUAL_MIN_ID, MANUAL_MAX_ID,
    MANUAL_GENERATE_ID, MANUAL_CLEAR_ID, MANUAL_UPLOAD_ID, MANUAL_DATE_ID, MANUAL_HOUR_ID,
    MANUAL_MINUTE_ID, MANUAL_MODE_ID, MANUAL_OVERRIDE_ID,
    API_PASSWORD_ID, API_CONNECT_ID, API_DISCONNECT_ID, API_DISCONNECT_CONFIRM_ID, API_FETCH_ID,
})

# ---------------------------------------------------------------------------------- texts
# the confirmation modals' texts are written when they open (dashboard/modal_texts.py)
SOURCE_MODAL_TITLE = "Confirm Schedule Source Switch"
TRANSPORT_MODAL_TITLE = "Confirm Transport Mode Switch"
START_ALL_MODAL_TITLE = "Confirm Start All"
STOP_ALL_MODAL_TITLE = "Confirm Stop All"
DISCONNECT_MODAL_TITLE = "Confirm Disconnect"
SHIFT_MODE = "shift"
AS_IN_FILE_MODE = "as_in_file"
NO_MANUAL_SCHEDULE = "No manual schedule for selected plant."
NO_API_SCHEDULE = "No API schedule available."
INVALID_SELECTION = "Invalid selection."
FILE_TOO_LARGE = "File too large to display."
HISTORY_BUSY = ("Another history view or day report is loading, so {what} is not loaded yet and the plot is "
                f"unchanged; it is tried again every {HEAVY_LOAD_RETRY_AFTER_S} s.")
HISTORY_ZOOM_BUSY = ("Another history view or day report is loading, so the plot was not redrawn for this zoom "
                     "(it may show fewer points than recorded); zoom again in a moment.")
REPORT_BUSY = "Busy: another history view or day report is loading; try again in a moment."

# ---------------------------------------------------------------------------------- colours
COLOR_P_SETPOINT = "#1f77b4"   # blue
COLOR_P_POI = "#17becf"        # cyan (dotted)
COLOR_P_BATTERY = "#2ca02c"    # green
COLOR_SOC = "#9467bd"          # purple
COLOR_Q_SETPOINT = "#ff7f0e"   # orange
COLOR_Q_POI = "#e377c2"        # dotted
COLOR_Q_BATTERY = "#d62728"
COLOR_V_POI = "#8c564b"        # brown
COLOR_LIB = "#1f77b4"
COLOR_VRFB = "#2ca02c"
