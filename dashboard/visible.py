"""Only the tab on screen refreshes, and a refresh sends only what changed (issue 13).

One `dcc.Store` per periodically refreshed tab (`tick-status`, `tick-manual`, `tick-api`,
`tick-logs`). A client-side callback, on every tick of the page's interval and on every tab
change, writes a new value (the browser's ms clock) into the store of the visible tab only, so
the callbacks of hidden tabs send no request at all. A tab that becomes visible gets its store
written at once, which brings it up to date without waiting for the next tick. The tabs'
server callbacks take their store as their periodic input instead of the interval.
"""
from __future__ import annotations

import hashlib
import json

from dash import Input, Output, dcc

from dashboard import constants as C

TICKED_TABS = ("status", "manual", "api", "logs")


def tab_tick_id(tab: str) -> str:
    """The store whose `data` changes on each tick while `tab` is shown."""
    return f"tick-{tab}"


TAB_TICK_JS = """
function(n, tab) {
    const tabs = %s;
    if (tabs.indexOf(tab) < 0) { throw window.dash_clientside.PreventUpdate; }
    const now = Date.now();
    return tabs.map(function (t) { return t === tab ? now : window.dash_clientside.no_update; });
}
""" % json.dumps(list(TICKED_TABS))


def layout() -> list:
    return [dcc.Store(id=tab_tick_id(tab)) for tab in TICKED_TABS] + [dcc.Store(id=SENT_STORE_ID),
                                                                     dcc.Store(id=CELLS_STORE_ID)]


def register(app) -> None:
    app.clientside_callback(TAB_TICK_JS, [Output(tab_tick_id(tab), "data") for tab in TICKED_TABS],
                            Input(C.TICK_ID, "n_intervals"), Input(C.TABS_ID, "value"), prevent_initial_call=True)


# ------------------------------------------------------------------------------ only what changed

SENT_STORE_ID = "status-sent"


def _digest(value) -> str:
    """Short digest of an output value; text, numbers, booleans and None (most outputs) are hashed
    as they are, anything else as its JSON."""
    if value is None or isinstance(value, (str, bool, int, float)):
        text = f"{type(value).__name__}:{value!r}"
    else:
        from plotly.utils import PlotlyJSONEncoder

        text = json.dumps(value, cls=PlotlyJSONEncoder, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=3).hexdigest()


FULL_RESEND_MS = 5000   # every output is sent again this often, so an update the page lost is healed


class AssignPatch:
    """A Patch that only sets values (applied again, it changes nothing), which `only_changed` may
    therefore skip when the page already holds it: the tracking bars' two values."""

    def __init__(self, patch):
        self.patch = patch


def only_changed(callback, reset_arg: int, clock_arg: int | None = None):
    """Wrap a periodic multi-output callback so that it sends only the outputs whose value differs
    from what the page already shows. The page keeps, in the `SENT_STORE_ID` store (a trailing
    output and state), a short digest per output of what it was last sent; the store arrives in the
    same response as the outputs, so a dropped response drops both. An output left alone
    (`no_update`) keeps its digest; a Patch or a dict (a store or a figure, which other callbacks
    such as the live figure's rebuild may also write) is always sent; an `AssignPatch` is sent, as
    its Patch, only when it differs from the last one sent, like a plain value.
    Argument `reset_arg` (e.g. the last-command store) is the mark of other callbacks writing the
    same outputs: when it changes, everything is sent again. Argument `clock_arg` (the tab's tick
    store, the browser's ms clock) sends everything again once per FULL_RESEND_MS as well: an update
    the page received but never applied (a tab still mounting its content) is not lost for good."""
    from dash import Patch, no_update

    def wrapped(*args):
        *args, sent = args
        values = callback(*args)
        period = None
        if clock_arg is not None and isinstance(args[clock_arg], (int, float)):
            period = int(args[clock_arg] // FULL_RESEND_MS)
        mark = _digest([args[reset_arg], period])
        old = (sent or "").split(",")
        old = old[1:] if old and old[0] == mark else []
        out, digests = [], []
        for i, value in enumerate(values):
            before = old[i] if i < len(old) else ""
            if isinstance(value, AssignPatch):
                digest = _digest(value.patch.to_plotly_json())
                out.append(no_update if digest == before else value.patch)
                digests.append(digest)
                continue
            if value is no_update or isinstance(value, (Patch, dict)):
                out.append(value)
                digests.append(before if value is no_update else "")
                continue
            digest = _digest(value)
            out.append(no_update if digest == before else value)
            digests.append(digest)
        new_sent = ",".join([mark] + digests)
        return out + [new_sent if new_sent != sent else no_update]

    wrapped.__name__ = getattr(callback, "__name__", "wrapped")
    return wrapped


# ------------------------------------------------------------------------------ cells through one store

CELLS_STORE_ID = "status-cells"

# A Dash callback's cost grows with its number of outputs (118 outputs: 2-4 ms more per round trip
# than 30, `bench/bench_outputs.py`). The status refresh's plain values (texts, classes, disabled
# flags, styles) therefore reach the page as one store, {index: value} of the changed ones only, and
# a client-side callback writes them into their elements (same ids, same values).
CELLS_JS = """
function(cells) {
    if (!cells) { throw window.dash_clientside.PreventUpdate; }
    const out = new Array(%d).fill(window.dash_clientside.no_update);
    for (const k in cells) { out[Number(k)] = cells[k]; }
    return out;
}
"""


def is_cell(output: tuple[str, str]) -> bool:
    """A plain value (not a figure, a Patch target or a store): relayed through `CELLS_STORE_ID`."""
    return output[1] not in ("figure", "data")


def register_through_cells(app, outputs: list[tuple[str, str]], callback, *dependencies) -> None:
    """Register `callback`, an `only_changed` callback over `outputs` (+ its sent store), with
    `dependencies` (its Inputs and States). Its cell outputs reach the page as one `CELLS_STORE_ID`
    value, {index: value} of the changed ones (no_update when none changed), which a client-side
    callback writes into their elements; the other outputs, in order, and the sent store stay
    server outputs."""
    from dash import no_update

    cells = [i for i, out in enumerate(outputs) if is_cell(out)]
    others = [i for i, out in enumerate(outputs) if not is_cell(out)]

    def wrapped(*args):
        shown = args[-1]
        *values, sent = callback(*args[:-1], sent_text(shown))
        changed = {str(k): values[i] for k, i in enumerate(cells) if values[i] is not no_update}
        return [changed or no_update] + [values[i] for i in others] + [sent_patch(shown, sent)]

    wrapped.__name__ = getattr(callback, "__name__", "wrapped")
    app.callback([Output(CELLS_STORE_ID, "data")] + [Output(*outputs[i]) for i in others]
                 + [Output(SENT_STORE_ID, "data")], *dependencies)(wrapped)
    app.clientside_callback(CELLS_JS % len(cells), [Output(*outputs[i]) for i in cells],
                            Input(CELLS_STORE_ID, "data"), prevent_initial_call=True)


def sent_text(shown) -> str | None:
    """The digests string `only_changed` keeps, from the sent store as the page holds it: a dict
    {"0": mark, "1": digest of output 0, ...} (None, or anything else: nothing known to be shown)."""
    if not isinstance(shown, dict):
        return None
    try:
        return ",".join(str(shown[str(i)]) for i in range(len(shown)))
    except KeyError:
        return None


def sent_patch(shown, sent):
    """What goes to the page of `only_changed`'s new digests string `sent`: a Patch merging only the
    digests that changed into the dict the page holds (`merge_patch`). The whole string went on
    every tick (~770 B for the Status tab's outputs) though a tick changes a few."""
    if not isinstance(sent, str):
        return sent   # no_update
    return merge_patch(shown, {str(i): part for i, part in enumerate(sent.split(","))})


def merge_patch(old, new):
    """What a store's update sends: a Patch merging only the fields of dict `new` that differ from
    the dict `old` the page holds (the live store repeated ~400 B per plant per tick, the sent
    digests ~770 B), no_update when none does, or `new` itself when there is nothing to merge into
    (no store yet, `old` holding a field `new` lacks, `new` not a dict: a rebuild's no_update)."""
    from dash import Patch, no_update

    if not isinstance(old, dict) or not isinstance(new, dict) or set(old) - set(new):
        return new
    changed = {k: v for k, v in new.items() if k not in old or old[k] != v}
    if not changed:
        return no_update
    patch = Patch()
    patch.update(changed)
    return patch
