"""A gateway that closes the TCP connection after each answer (serial gateways in "one request per
connection" mode, very short idle timeouts), over real Modbus TCP on 127.0.0.1: every request, read
or write, background or an operator's, whose connection the plant closed is sent again once on a new
connection without counting a failure (docs/DECISIONS.md); a second drop is a failure."""
from __future__ import annotations

import dataclasses
import logging
import socket
import threading

from agents.modbus_link import LinkError, ModbusLink
from core.codec import encode
from tests.faulty_plant import FaultyPlant
from tests.helpers import ENABLE, P_SP, make_cfg
from tests.integration.test_control import _started, fake_clock, msgs, rigs  # noqa: F401 (fixtures)


class ClosingGateway(FaultyPlant):
    """Answers every request, then closes the connection."""

    @staticmethod
    def _send(conn, tid, unit, pdu):
        FaultyPlant._send(conn, tid, unit, pdu)
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _link(tmp_path, port, clock) -> ModbusLink:
    plant = make_cfg(tmp_path).plants["lib"]
    plant = dataclasses.replace(plant, local=dataclasses.replace(plant.local, port=port))
    return ModbusLink(plant, "control", clock, 0.5, "local")


def test_every_request_after_an_answer_goes_out_on_a_new_connection(tmp_path, fake_clock, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG, logger="hil")
    with ClosingGateway() as gw:
        link = _link(tmp_path, gw.port, fake_clock)
        try:
            assert link.read_words(("p_setpoint", "q_setpoint"))["p_setpoint"] == [0]
            errors = link.write_points({"p_setpoint": encode(link.endpoint.points["p_setpoint"], 10.0)},
                                       ["p_setpoint"], immediate=False)
            assert errors == {} and link.link == "ok" and gw.get(P_SP) == [100]
            link.write_counts("enable", 1, immediate=True)                 # an operator's write
            assert link.read_raw("enable", immediate=True) == [1]          # and immediate read
            assert link.read(("p_battery",))["p_battery"] == 10.0          # a background read
            assert gw.get(ENABLE) == [1] and link.consecutive_failures == 0 and link.connect_failures == 0
            assert msgs(caplog, logging.WARNING) == []
        finally:
            link.close()


def test_a_second_drop_of_the_same_request_is_a_failure(tmp_path, fake_clock):  # noqa: F811
    with FaultyPlant() as plant:
        link = _link(tmp_path, plant.port, fake_clock)
        try:
            link.read(("p_battery",))
            plant.hook = lambda fc, addr, values: ("drop_noapply",) if values is not None else None
            try:
                link.write_counts("enable", 1)
                raise AssertionError("the write went through")
            except LinkError as exc:
                assert exc.kind == "connect_failed" and exc.dropped
            writes = [r for r in plant.requests if r[1] in (6, 16)]
            assert len(writes) == 2, "sent once, then once again on a new connection, not more"
            assert link.link == "connect_failed" and link.consecutive_failures == 1
        finally:
            link.close()


def test_a_start_and_its_breakpoints_through_a_closing_gateway(tmp_path, fake_clock, rigs, caplog):  # noqa: F811
    """The operator's Start succeeds and every later breakpoint's setpoint goes out at its instant
    (not after a reconnect backoff); the link is never down, nothing flaps."""
    caplog.set_level(logging.DEBUG, logger="hil")
    with ClosingGateway() as gw:
        rig = rigs(tmp_path, fake_clock, emulator=False, ports={"lib": {"local": gw.port}})
        _started(rig, 100.0, 10.0)   # the operator's Start, then one step
        assert gw.get(P_SP) == [1000] and gw.get(ENABLE) == [1] and rig.gate()
        for p_kw in (200.0, 300.0, 400.0):
            fake_clock.advance(1.0)
            rig.target(p_kw, 10.0)
            rig.lib.step()
            assert gw.get(P_SP) == [int(p_kw * 10)], f"{p_kw} kW not written at its breakpoint"
            assert rig.dispatch()["write_status"] == "ok" and rig.lib.link.link == "ok"
        assert rig.lib.link.connect_failures == 0
        assert msgs(caplog, logging.WARNING) == [] and msgs(caplog, contains="flapping") == []


def _busy_on_enable(gw, times: int, then=None):
    """The plant answers busy (exception 6) to the first `times` writes of `enable`, then `then`."""
    seen = {"n": 0}

    def hook(fc, addr, values):
        if values is None or addr != ENABLE:
            return None
        seen["n"] += 1
        return ("exc", 6) if seen["n"] <= times else then
    gw.hook = hook


def test_a_stops_busy_window_works_behind_a_closing_gateway(tmp_path, fake_clock):  # noqa: F811
    """Each busy answer closes the connection: each retry of the busy window finds it closed, is
    reconnected once and sent again, and the disable goes through; no failure is counted. (Before, the
    retry after a busy answer raised the link's internal resend signal to the caller, uncounted.)"""
    with ClosingGateway() as gw:
        link = _link(tmp_path, gw.port, fake_clock)
        try:
            gw.set(ENABLE, [1])
            link.read(("p_battery",))   # the connection has answered; the gateway has closed it
            _busy_on_enable(gw, 2)
            with link.busy_retries(5.0, threading.Event()):
                link.write_counts("enable", 0, immediate=True)
            assert gw.get(ENABLE) == [0] and link.link == "ok" and link.consecutive_failures == 0
        finally:
            link.close()


def test_a_drop_on_the_new_connection_of_a_busy_retry_is_a_counted_failure(tmp_path, fake_clock):  # noqa: F811
    """Busy, then the retry's new connection drops too: a link failure as any other (link state,
    last_error, consecutive_failures, the LinkError the stop reads), never an uncounted one."""
    with ClosingGateway() as gw:
        link = _link(tmp_path, gw.port, fake_clock)
        try:
            gw.set(ENABLE, [1])
            link.read(("p_battery",))
            _busy_on_enable(gw, 1, then=("drop_noapply",))
            with link.busy_retries(5.0, threading.Event()):
                try:
                    link.write_counts("enable", 0, immediate=True)
                    raise AssertionError("the write went through")
                except LinkError as exc:
                    assert type(exc) is LinkError and exc.kind == "connect_failed" and exc.dropped
            assert link.link == "connect_failed" and link.consecutive_failures == 1
            assert link.last_error is not None and gw.get(ENABLE) == [1]
        finally:
            link.close()
