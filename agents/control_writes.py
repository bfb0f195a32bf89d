"""Setpoint writes of one plant's controller (components §4.3), run on its thread `control.<id>`
(`agents/control_agent.PlantController`, whose link, episodes and dispatch status they use).

`write_setpoints(ctl, p_kw, q_kvar, immediate, target_changed)`: encode P and Q (a value the
register cannot hold is refused, ERROR once), read the setpoint registers back, write what differs
(P first, then Q), read back again; a point not verified on the plant is not remembered as written
(`ctl._verified_words`) and is retried at the next check. Returns the write status
(`ok|partial|failed|refused`) and puts it on `dispatch_status_by_plant`, with `setpoint_problem`: why
the registers do not hold what was written (`core.dispatch.not_taken_text`; None at `ok` and when the
link failed: the card's LINK DOWN and state line say that). At a changed target the
writes go first and the readback after (`_write_first`): a breakpoint's setpoint waits behind no
read. Positive P = discharge.
"""
from __future__ import annotations

import logging

from agents.modbus_link import LinkError
from core.codec import decode, decode_shortest
from core.dispatch import (SETPOINT_UNITS, TAKEN_WITHIN_PU, changed_externally, differing, encode_setpoints,
                           not_taken_text, rating, rounded_by_plant, words_text, write_status)
from core.points import SETPOINT_POINTS, applied_values, readback_points
from core.recording import format_value
from core.timeutil import format_local_iso

log = logging.getLogger("hil.control")
NOT_APPLIED_SAID_AFTER_S = 10.0   # a plant ramping to a new setpoint applies another value meanwhile


def write_setpoints(ctl, p_kw: float, q_kvar: float, immediate: bool, target_changed: bool = True) -> str:
    """Encode, read back, write what differs, verify. Returns the write status. A dispatch check of a
    changed target (not a command's, `immediate`) writes first and reads back after (`_write_first`)."""
    wanted, refused = encode_setpoints(ctl.link.endpoint.points, p_kw, q_kvar, ctl.plant.model.power_limits)
    _log_refused(ctl, refused)
    new = [n for n in SETPOINT_POINTS if n in wanted and ctl._verified_words.get(n) != wanted[n]]
    if target_changed and not immediate and new:
        return _write_first(ctl, wanted, new, refused)
    try:
        current = _read_taken(ctl, wanted, immediate)
    except LinkError as exc:
        if ctl.link.link == "connect_failed":
            ctl._verified_words.clear()
            return _record_write(ctl, "failed", None, str(exc), wrote=False)
        differ = [n for n in SETPOINT_POINTS if n in wanted]   # unknown: write all
    else:
        differ = differing(current, wanted)
        if not differ:
            ctl._verified_words = dict(wanted)
            ctl._episodes.end("external", ctl.clock.monotonic())
            _log_not_taken(ctl, wanted, current)
            problem = not_taken_text(ctl.link.endpoint.points, wanted, current, {}, refused)
            return _record_write(ctl, write_status(bool(refused), 1, 1), current, None, wrote=False, problem=problem)
        if changed_externally(differ, ctl._verified_words, wanted, target_changed):
            _warn_external(ctl, differ[0], current, wanted)
    errors = ctl.link.write_points(wanted, differ, immediate)
    return _verify(ctl, wanted, errors, refused, sent=differ)


def _write_first(ctl, wanted: dict, new: list[str], refused: list) -> str:
    """A new target's setpoints go out first, the readback after (its write waited behind a
    readback: 0.8 s on a plant answering in 0.8 s; that readback only spared writing a value the
    register already held). `new`: the points whose
    words differ from those last verified (unknown: written). A point the target did not change that
    reads otherwise was changed by someone else: rewritten at once, as a check does (components §4.3)."""
    errors = ctl.link.write_points(wanted, new, immediate=False, guard_wait_s=0.0)   # a sample re-reads
    if errors and ctl.link.link == "connect_failed":   # no readback: on a hung plant it costs a timeout
        ctl._verified_words.clear()
        return _record_write(ctl, "failed", None, list(errors.values())[-1], wrote=new[0] not in errors)
    try:
        after = _read_taken(ctl, wanted, immediate=False, sent=[n for n in new if n not in errors])
    except LinkError as exc:
        ctl._verified_words.clear()
        return _record_write(ctl, "failed", None, str(exc), wrote=True,
                             problem=_unread(ctl, wanted, errors, exc, refused))
    rest = [n for n in SETPOINT_POINTS if n in wanted and n not in new and after[n] != wanted[n]]
    if not rest:
        return _verify(ctl, wanted, errors, refused, after=after)
    if changed_externally(rest, ctl._verified_words, wanted, False):
        _warn_external(ctl, rest[0], after, wanted)
    return _verify(ctl, wanted, errors | ctl.link.write_points(wanted, rest, immediate=False), refused,
                   sent=new + rest)


def _verify(ctl, wanted: dict, errors: dict, refused: list, sent: list[str] = (), after: dict | None = None) -> str:
    """After the writes of `sent` (`errors`: the points that did not go out): read back (unless
    `after` was just read) and remember the points verified on the plant; record and return the status."""
    error = list(errors.values())[-1] if errors else None
    if after is None:
        try:
            after = _read_taken(ctl, wanted, immediate=False, sent=[n for n in sent if n not in errors])
        except LinkError as exc:
            ctl._verified_words.clear()
            return _record_write(ctl, "failed", None, error or str(exc), wrote=True,
                                 problem=_unread(ctl, wanted, errors, exc, refused))
    ctl._verified_words = {n: words for n, words in wanted.items() if after[n] == words}
    _log_not_taken(ctl, {n: words for n, words in wanted.items() if n not in errors}, after)
    status = write_status(bool(refused), len(ctl._verified_words), len(wanted))
    problem = not_taken_text(ctl.link.endpoint.points, wanted, after, errors, refused)
    return _record_write(ctl, status, after, error, wrote=True, problem=problem)


def _unread(ctl, wanted: dict, errors: dict, exc: LinkError, refused: list = ()) -> str | None:
    """Why, when the readback after the writes failed: the writes' own errors, else `setpoints not read
    back (<error>)`; None when the link is down (the card's LINK DOWN says it)."""
    if ctl.link.link == "connect_failed":
        return None
    return not_taken_text(ctl.link.endpoint.points, wanted, None, errors, list(refused)) or \
        f"setpoints not read back ({exc})"


def _log_not_taken(ctl, wanted: dict, after: dict) -> None:
    """A write acknowledged (or not needed) whose register reads another value (the plant keeps
    its own, e.g. clamps it): one WARNING per point and episode, one INFO when it holds again.
    Only a dispatched plant's write is tried again at each check (a start, a stop or the zeroing
    of a plant that stopped itself writes once)."""
    now, points = ctl.clock.monotonic(), ctl.link.endpoint.points
    again = "; rewritten every check" if ctl._gate() else ""
    for name, words in wanted.items():
        if after[name] == words:
            if ctl._episodes.end(("not_taken", name), now) is not None:
                log.info("%s: %s holds the wanted value again", ctl.name, name)
        elif ctl._episodes.begin(("not_taken", name), now):
            log.warning("%s: %s not taken (wrote %s %s, register reads %s %s)%s",
                        ctl.name, name, words_text(points[name], words), SETPOINT_UNITS[name],
                        words_text(points[name], after[name]), SETPOINT_UNITS[name], again)


def read_setpoints(ctl, immediate: bool) -> dict[str, list[int]]:
    """The setpoint registers' words (writes are verified there). A map's applied-setpoint readback
    is read in the same request: `ctl._not_applied` keeps each setpoint the plant applies otherwise
    (kW / kvar; `core.points.applied_values`), e.g. a plant limiting itself below 500 kW written."""
    points = ctl.link.endpoint.points
    words = ctl.link.read_words(SETPOINT_POINTS + readback_points(points), immediate=immediate)
    ctl._not_applied = applied_values(points, words)
    return {n: words[n] for n in SETPOINT_POINTS}


def _read_taken(ctl, wanted: dict, immediate: bool, sent: list[str] = ()) -> dict[str, list[int]]:
    """`read_setpoints`, a register that a plant rounding to its own resolution holds as the value
    written read as the words written: a point just `sent` (written, acknowledged) within the
    tolerance of `core.dispatch.rounded_by_plant` (its words remembered; one INFO per point), and a
    point verified so before holding those very words. Anything else (a refused write, a register
    changed or reverted since, the previous step beside a new one) is compared exactly."""
    read = read_setpoints(ctl, immediate)
    limits = ctl.plant.model.power_limits
    taken = {n: wanted[n] for n in wanted if ctl._verified_words.get(n) == wanted[n]
             and ctl._rounded_words.get(n) == (wanted[n], read[n])}
    rounded = rounded_by_plant(ctl.link.endpoint.points, {n: wanted[n] for n in sent}, read, limits)
    for name, (held, value) in rounded.items():
        ctl._rounded_words[name], taken[name] = (wanted[name], read[name]), wanted[name]
        if ctl._episodes.begin(("rounded", name), ctl.clock.monotonic()):
            log.info("%s: the plant holds %s=%s %s when %s %s is written (its own resolution); counted as "
                     "taken: within %g %% of the rated %s %s", ctl.name, name, format_value(held),
                     SETPOINT_UNITS[name], format_value(value), SETPOINT_UNITS[name], TAKEN_WITHIN_PU * 100,
                     format_value(rating(limits, name)), SETPOINT_UNITS[name])
    _log_not_applied(ctl, wanted)
    return {**read, **taken}


def _log_not_applied(ctl, wanted: dict) -> None:
    """A plant whose applied-setpoint readback (`ctl._not_applied`, this read's) has been further than
    TAKEN_WITHIN_PU of its rating from the value written for NOT_APPLIED_SAID_AFTER_S (a ramp is not
    reported): one WARNING per point and episode (the card says `plant applies` at once), one INFO
    when it applies the value written again."""
    points, limits, now = ctl.link.endpoint.points, ctl.plant.model.power_limits, ctl.clock.monotonic()
    for name, words in wanted.items():
        written, applied = decode(points[name], words), ctl._not_applied.get(name)
        if applied is None or abs(applied - written) <= TAKEN_WITHIN_PU * rating(limits, name):
            ctl._episodes.end(("not_applied", name), now)
            if ctl._episodes.end(("not_applied_said", name), now) is not None:
                log.info("%s: the plant applies the %s written again", ctl.name, name)
            continue
        ctl._episodes.begin(("not_applied", name), now)
        if now - ctl._episodes.since(("not_applied", name)) >= NOT_APPLIED_SAID_AFTER_S and \
                ctl._episodes.begin(("not_applied_said", name), now):
            log.warning("%s: the plant applies %s=%s %s, not the %s %s written (its %s_readback): a plant "
                        "limiting itself, or a point whose word order, scale or unit does not fit the plant",
                        ctl.name, name, format_value(applied), SETPOINT_UNITS[name], format_value(written),
                        SETPOINT_UNITS[name], name)


def _log_refused(ctl, refused: list[tuple[str, float]]) -> None:
    points = ctl.link.endpoint.points
    for name, value in refused:
        if ctl._episodes.begin(("refused", name, value), ctl.clock.monotonic()):
            log.error("%s: cannot encode %s=%s %s as %s at scale %s; not written", ctl.name, name,
                      format_value(value), SETPOINT_UNITS[name], points[name].format,
                      format_value(points[name].scale))


def _warn_external(ctl, name: str, current: dict, wanted: dict) -> None:
    if ctl._episodes.begin("external", ctl.clock.monotonic()):
        point, unit = ctl.link.endpoint.points[name], SETPOINT_UNITS[name]
        log.warning("%s: setpoint register changed externally (read %s %s, expected %s %s); rewritten",
                    ctl.name, words_text(point, current[name]), unit, words_text(point, wanted[name]), unit)


def _record_write(ctl, status: str, words: dict | None, error: str | None, wrote: bool,
                  problem: str | None = None) -> str:
    """Publish a write check's outcome; `problem` is why the registers do not hold what was written
    (None when the link failed: its error is `last_error`), dropped at `ok`."""
    points = ctl.link.endpoint.points
    fields = {"write_status": status, "readback_ok": words is not None, "last_error": error,
              "setpoint_problem": None if status == "ok" else problem}
    fields |= {"write_failed_at": format_local_iso(ctl.clock.now())} if status == "failed" else {}
    ctl._check_wrote = wrote
    if words is not None:
        verified = {n: decode_shortest(points[n], words[n]) for n in ctl._verified_words}
        if "p_setpoint" in verified:
            fields["last_written_p_kw"] = verified["p_setpoint"]
        if "q_setpoint" in verified:
            fields["last_written_q_kvar"] = verified["q_setpoint"]
        if wrote:
            fields["last_write_at"] = format_local_iso(ctl.clock.now())
        fields.update(applied_p_kw=ctl._not_applied.get("p_setpoint"),
                      applied_q_kvar=ctl._not_applied.get("q_setpoint"))
    ctl._publish_dispatch(**fields)
    return status
