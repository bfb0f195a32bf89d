"""ModbusLink over real Modbus TCP on 127.0.0.1 (components §2.3, §2.4, §11.2).

Dead plants are closed local ports, hung plants a listener that accepts and never answers, the
"grouped read refused" plant a tiny pymodbus server whose request hook refuses long reads.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

import agents.modbus_link as modbus_link
from agents.link_texts import connect_error_text
from agents.modbus_link import LinkError, ModbusLink
from agents.plant_agent import PlantEmulator
from core.clock import FakeClock
from core.points import OBSERVE_POINTS, SAMPLE_POINTS
from tests.faulty_plant import FaultyPlant
from tests.helpers import P_SP, SilentListener, TinyServer, closed_port, make_cfg, s16  # noqa: F401 (fixture)

TZ = ZoneInfo("Europe/Madrid")
START = datetime(2026, 3, 20, 12, 0, tzinfo=TZ)
BACKOFF = [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


@pytest.fixture
def clock():
    return FakeClock(START)


@pytest.fixture
def connects(monkeypatch):
    """Count the TCP connect attempts every link makes (a list of (host, port))."""
    seen: list[tuple[str, int]] = []
    create_connection = socket.create_connection

    def counting(address, *args, **kwargs):
        seen.append(address)
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counting)
    return seen


@pytest.fixture
def links():
    made: list[ModbusLink] = []

    def make(plant, clock, timeout_s=0.5, role="control", mode="local") -> ModbusLink:
        link = ModbusLink(plant, role, clock, timeout_s, mode)
        made.append(link)
        return link

    yield make
    for link in made:
        link.close()


@pytest.fixture
def single_read_reset():
    """Forget the process-wide grouped-read fallback of the endpoints a test used."""
    keys: list[str] = []
    yield keys
    for key in keys:
        ModbusLink._single_read_endpoints.discard(key)


@contextlib.contextmanager
def _lib_on_tiny_server(tmp_path, single_read_reset, **server_kw):
    """(LIB's config, a TinyServer on its local port); the endpoint's grouped-read fallback is forgotten after."""
    plant = make_cfg(tmp_path).plants["lib"]
    with TinyServer(port=plant.local.port, **server_kw) as server:
        single_read_reset.append(f"127.0.0.1:{server.port}/1")
        yield plant, server


def _messages(caplog, level, text):
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


# ------------------------------------------------------------------------------------ backoff

def test_backoff_doubles_to_30s_and_fails_at_once_while_waiting(tmp_path, closed_port, clock, connects, links,
                                                                caplog):
    caplog.set_level(logging.INFO)
    cfg = make_cfg(tmp_path, ports={"lib": {"local": closed_port()}})
    plant = cfg.plants["lib"]          # nothing listens on its local port
    link = links(plant, clock)
    assert link.link == "unknown"

    with pytest.raises(LinkError) as first:
        link.read(OBSERVE_POINTS)
    assert first.value.kind == "connect_failed" and link.link == "connect_failed"
    assert len(connects) == 1

    for wait in BACKOFF:
        # just before the end of the wait: fails at once, no connect attempt (no network I/O)
        clock.advance(wait - 0.01)
        for _ in range(3):
            t0 = time.perf_counter()
            with pytest.raises(LinkError) as exc:
                link.read(OBSERVE_POINTS)
            assert time.perf_counter() - t0 < 0.05
            assert exc.value.kind == "connect_failed"
            with pytest.raises(LinkError):
                link.write_value("p_setpoint", 1.0)
        n = len(connects)
        clock.advance(0.01)
        with pytest.raises(LinkError):
            link.read(OBSERVE_POINTS)
        assert len(connects) == n + 1, f"one attempt after the {wait} s wait"
    assert link.consecutive_failures == len(BACKOFF) + 1
    # the WARNING came once for the whole outage
    downs = _messages(caplog, logging.WARNING, "link down")
    assert downs == [f"LIB Modbus control link down ({plant.local.label}): {link.last_error}"]


@contextlib.contextmanager
def _listener_that_answers_no_connect():
    """A local port whose connects get no answer (a firewall dropping them, a hung network stack):
    a listener that never accepts, its backlog filled, so the kernel drops further SYNs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port, fillers = listener.getsockname()[1], []
        try:
            for _ in range(8):
                try:
                    fillers.append(socket.create_connection(("127.0.0.1", port), timeout=0.2))
                except TimeoutError:
                    break
            else:
                pytest.fail("the listener's backlog never filled")
            yield port
        finally:
            for filler in fillers:
                filler.close()


def test_a_connect_failure_says_whether_the_plant_refused_it_or_did_not_answer(tmp_path, closed_port, clock, links):
    """The link error tells a plant that is off (refused) from one the network does not reach (no
    answer): it said `connection refused or timed out` for both."""
    plant = make_cfg(tmp_path, ports={"lib": {"local": closed_port()}}).plants["lib"]   # nothing listens there
    refused = links(plant, clock)
    with pytest.raises(LinkError):
        refused.read(OBSERVE_POINTS)
    assert refused.last_error == "connect failed: connection refused"

    with _listener_that_answers_no_connect() as port:
        silent_plant = dataclasses.replace(plant, local=dataclasses.replace(plant.local, port=port))
        silent = links(silent_plant, clock, timeout_s=0.5)
        t0 = time.perf_counter()
        with pytest.raises(LinkError) as exc:
            silent.read(OBSERVE_POINTS)
        assert time.perf_counter() - t0 < 3.0, "the connect timeout holds"
    assert exc.value.kind == "connect_failed" and silent.link == "connect_failed"
    assert silent.last_error == "connect failed: no answer within 0.5 s"

    assert connect_error_text(socket.gaierror(-2, "Name or service not known"), 0.5) == \
        "host not found (Name or service not known)"
    assert connect_error_text(OSError(101, "Network is unreachable"), 0.5) == "network is unreachable"


def test_immediate_makes_one_attempt_during_backoff(tmp_path, closed_port, clock, connects, links):
    cfg = make_cfg(tmp_path, ports={"lib": {"local": closed_port()}})
    link = links(cfg.plants["lib"], clock)
    with pytest.raises(LinkError):
        link.read(OBSERVE_POINTS)
    assert link.in_backoff() and len(connects) == 1
    with pytest.raises(LinkError):
        link.read(OBSERVE_POINTS)                      # background: no attempt
    assert len(connects) == 1
    with pytest.raises(LinkError):
        link.read(OBSERVE_POINTS, immediate=True)      # operator command: exactly one attempt
    assert len(connects) == 2
    with pytest.raises(LinkError):
        link.write_value("p_setpoint", 0.0, immediate=True)
    assert len(connects) == 3


def test_success_resets_backoff_and_mode_change_starts_fresh(tmp_path, closed_port, clock, connects, links):
    cfg = make_cfg(tmp_path, ports={"lib": {"remote": closed_port()}})
    plant = cfg.plants["lib"]
    em = PlantEmulator(cfg, clock, cfg.data_dir, "local")
    link = links(plant, clock, mode="remote")          # remote port: closed
    em.start()
    try:
        for _ in range(3):
            with pytest.raises(LinkError):
                link.read(OBSERVE_POINTS, immediate=True)
        assert link._backoff.failures == 3 and link._backoff.delay_s(4) == 4   # the next wait: 4 s
        link.set_mode("local")                         # transport switch: fresh link, fresh backoff
        assert link.link == "unknown" and not link.in_backoff()
        assert link.read(OBSERVE_POINTS)["enable"] == 0
        assert link.link == "ok" and link._backoff.failures == 0 and link.consecutive_failures == 0
        assert connects[-1] == ("127.0.0.1", plant.local.port)
    finally:
        link.close()
        em.stop()


# -------------------------------------------------------------------------------- reconnect

def test_reconnects_after_emulator_restart_and_logs_each_transition_once(tmp_path, clock, links, caplog):
    caplog.set_level(logging.INFO)
    cfg = make_cfg(tmp_path)
    plant = cfg.plants["lib"]
    link = links(plant, clock)
    em = PlantEmulator(cfg, clock, cfg.data_dir, "local")
    em.start()
    try:
        assert link.read(OBSERVE_POINTS)["enable"] == 0
        first_client = link._client
    finally:
        em.stop()
    for _ in range(5):                                  # the outage: many failed operations
        with pytest.raises(LinkError):
            link.read(OBSERVE_POINTS)
        clock.advance(0.2)
    assert link.link == "connect_failed"
    em = PlantEmulator(cfg, clock, cfg.data_dir, "local")   # same port again
    em.start()
    try:
        clock.advance(31)                               # past any backoff
        link.write_value("p_setpoint", 12.5)
        values = link.read(OBSERVE_POINTS)
        assert values["p_setpoint"] == pytest.approx(12.5)
        assert link.link == "ok" and link._client is not first_client
        for _ in range(3):
            link.read(OBSERVE_POINTS)
    finally:
        link.close()
        em.stop()
    label = plant.local.label
    assert len(_messages(caplog, logging.WARNING, f"LIB Modbus control link down ({label})")) == 1
    assert _messages(caplog, logging.INFO, "link restored") == [f"LIB Modbus control link restored ({label})"]


def test_a_link_in_backoff_tries_again_at_once_when_another_link_to_its_plant_is_restored(tmp_path, clock, links):
    """The plant returns while the sampler waits out an 8 s backoff: once the controller's link is
    restored, the sampler's next read goes out at once (the card said Link: OK next to LINK DOWN
    for up to its whole backoff); a link to another endpoint keeps its backoff."""
    cfg = make_cfg(tmp_path)
    control, sampler = links(cfg.plants["lib"], clock), links(cfg.plants["lib"], clock, role="sampler")
    other = links(cfg.plants["vrfb"], clock, role="sampler")
    for link in (control, sampler, other):
        for _ in range(5):                              # the outage: backoffs up to 8 s
            with pytest.raises(LinkError):
                link.read(OBSERVE_POINTS, immediate=True)
    assert sampler.in_backoff() and sampler._backoff.delay_s() == 8
    em = PlantEmulator(cfg, clock, cfg.data_dir, "local")
    em.start()
    try:
        with pytest.raises(LinkError):
            sampler.read(SAMPLE_POINTS)                 # still waiting: no attempt
        assert control.read(OBSERVE_POINTS, immediate=True)["enable"] == 0   # the controller is back
        assert not sampler.in_backoff() and other.in_backoff()
        assert sampler.read(SAMPLE_POINTS) and sampler.link == "ok"
        with pytest.raises(LinkError):
            other.read(SAMPLE_POINTS)                   # VRFB: its backoff, no attempt
    finally:
        em.stop()


def test_sampler_role_logs_its_own_transitions(tmp_path, closed_port, clock, links, caplog):
    caplog.set_level(logging.INFO)
    cfg = make_cfg(tmp_path, ports={"vrfb": {"local": closed_port()}})
    link = links(cfg.plants["vrfb"], clock, role="sampler")
    with pytest.raises(LinkError):
        link.read(SAMPLE_POINTS)
    assert _messages(caplog, logging.WARNING, "link down") == [
        f"VRFB Modbus sampler link down ({cfg.plants['vrfb'].local.label}): {link.last_error}"]


# ----------------------------------------------------------------------- exception responses

def test_exception_response_keeps_connection_and_gives_read_error(tmp_path, clock, connects, links,
                                                                  single_read_reset):
    # registers 0..99 only: a read at 270 gets exception 2 (illegal address) from pymodbus itself
    with _lib_on_tiny_server(tmp_path, single_read_reset, count=100) as (plant, server):
        link = links(plant, clock)
        assert link.read(("enable",)) == {"enable": 0}
        client = link._client
        with pytest.raises(LinkError) as exc:
            link.read(("p_battery",))
        assert exc.value.kind == "read_error"
        assert link.link == "read_error" and "exception" in link.last_error
        assert link._client is client and client.connected
        assert not link.in_backoff()
        server.set(1, [1])
        assert link.read(("enable",)) == {"enable": 1}    # same connection, no new attempt
        assert link.link == "ok" and len(connects) == 1


def test_writes_accepted_while_reads_fail_do_not_end_the_read_error_episode(tmp_path, clock, links, caplog,
                                                                            single_read_reset):
    """A plant that answers every read with exception 4 but accepts the writes (the heartbeat every
    0.5 s): one "down" line and no "restored" while reads fail; one "restored" when reads work again."""
    caplog.set_level(logging.INFO)
    with _lib_on_tiny_server(tmp_path, single_read_reset) as (plant, server):
        label = plant.local.label
        link = links(plant, clock)
        assert link.read(OBSERVE_POINTS)["enable"] == 0 and link.link == "ok"
        server.fail_reads = 4
        for tick in range(16):                          # 8 s: a write every 0.5 s, a read every 1 s
            link.write_value("p_setpoint", 10.0 + tick)
            assert link.link == ("ok" if tick == 0 else "read_error")
            if tick % 2 == 0:
                with pytest.raises(LinkError) as exc:
                    link.read(OBSERVE_POINTS)
                assert exc.value.kind == "read_error" and link.link == "read_error"
            clock.advance(0.5)
        assert link.last_error == "exception response (code 4)" and link.consecutive_failures == 8
        assert _messages(caplog, logging.WARNING, "link down") == [
            f"LIB Modbus control link down ({label}): exception response (code 4)"]
        assert _messages(caplog, logging.INFO, "link restored") == []
        server.fail_reads = None
        assert link.read(OBSERVE_POINTS)["p_setpoint"] == pytest.approx(25.0) and link.link == "ok"  # last write
        link.write_value("p_setpoint", 0.0)
    assert _messages(caplog, logging.INFO, "link restored") == [f"LIB Modbus control link restored ({label})"]
    assert len(_messages(caplog, logging.WARNING, "link down")) == 1


def test_writes_refused_while_reads_work_are_one_warning_not_a_link_flapping(tmp_path, clock, links, caplog,
                                                                            single_read_reset):
    """A PLC in local mode: every write answered with exception 4, reads fine. The link is up (it
    stays `ok`); the refusal is one WARNING for the episode and one INFO when writes are taken
    again, not a "link down" / "link restored" pair at every dispatch check."""
    caplog.set_level(logging.INFO)
    with _lib_on_tiny_server(tmp_path, single_read_reset) as (plant, server):
        label = plant.local.label
        link = links(plant, clock)
        server.fail_writes = 4
        for tick in range(8):                           # a dispatch check: read back, write, read back
            assert link.read(OBSERVE_POINTS)["p_setpoint"] == 0.0 and link.link == "ok"
            with pytest.raises(LinkError) as exc:
                link.write_value("p_setpoint", 10.0 + tick)
            assert exc.value.kind == "write_refused" and exc.value.exception_code == 4 and link.link == "ok"
            assert str(exc.value) == "write refused at p_setpoint: exception response (code 4)"
            clock.advance(1.0)
        assert _messages(caplog, logging.WARNING, "link down") == []
        assert _messages(caplog, logging.INFO, "link restored") == []
        assert _messages(caplog, logging.WARNING, "refused") == [
            f"LIB Modbus control writes refused ({label}): write refused at p_setpoint: exception response (code 4)"]
        server.fail_writes = None
        link.write_value("p_setpoint", 25.0)
        link.write_value("p_setpoint", 26.0)
        assert link.read(OBSERVE_POINTS)["p_setpoint"] == pytest.approx(26.0)
    assert _messages(caplog, logging.INFO, "accepted") == [
        f"LIB Modbus control writes to p_setpoint accepted again ({label})"]


def test_one_point_refused_while_others_are_taken_is_one_episode_of_that_point(tmp_path, clock, links, caplog,
                                                                              single_read_reset):
    """A plant refusing P only (Q and the heartbeat taken, every check): one WARNING for P when it
    starts and one INFO when P is taken again, however many writes to other points come between."""
    caplog.set_level(logging.INFO)
    with _lib_on_tiny_server(tmp_path, single_read_reset) as (plant, server):
        label = plant.local.label
        link = links(plant, clock)
        p_address = plant.local.points["p_setpoint"].address
        server.fail_writes_at = {p_address: 4}
        for tick in range(6):
            with pytest.raises(LinkError):
                link.write_value("p_setpoint", 10.0 + tick)
            link.write_value("q_setpoint", 5.0 + tick)       # taken: does not end P's episode
            clock.advance(1.0)
        assert _messages(caplog, logging.WARNING, "refused") == [
            f"LIB Modbus control writes refused ({label}): write refused at p_setpoint: exception response (code 4)"]
        assert _messages(caplog, logging.INFO, "accepted") == []
        server.fail_writes_at = {}
        link.write_value("p_setpoint", 25.0)
        assert link.read(OBSERVE_POINTS)["p_setpoint"] == pytest.approx(25.0)
    assert _messages(caplog, logging.INFO, "accepted") == [
        f"LIB Modbus control writes to p_setpoint accepted again ({label})"]


def test_a_write_refused_episode_ends_with_a_transport_switch(tmp_path, clock, links, caplog, single_read_reset):
    """Refusals on the new endpoint get their own WARNING; no "accepted again" for one that never refused."""
    caplog.set_level(logging.INFO)
    plant = make_cfg(tmp_path).plants["lib"]
    with TinyServer(port=plant.local.port) as local, TinyServer(port=plant.remote.port) as remote:
        single_read_reset += [f"127.0.0.1:{local.port}/1", f"127.0.0.1:{remote.port}/1"]
        link = links(plant, clock)
        local.fail_writes = remote.fail_writes = 4
        with pytest.raises(LinkError):
            link.write_value("p_setpoint", 10.0)
        link.set_mode("remote")
        with pytest.raises(LinkError):
            link.write_value("p_setpoint", 10.0)
        assert [m.split(" (")[1].split(")")[0] for m in _messages(caplog, logging.WARNING, "writes refused")] == [
            plant.local.label, plant.remote.label]
        link.set_mode("local")
        local.fail_writes = None
        link.write_value("p_setpoint", 10.0)
    assert _messages(caplog, logging.INFO, "accepted again") == []


def test_grouped_read_refused_falls_back_to_single_reads_for_good(tmp_path, clock, links, caplog,
                                                                  single_read_reset):
    caplog.set_level(logging.INFO)
    with _lib_on_tiny_server(tmp_path, single_read_reset, refuse_reads_over=2,
                             values={1: 1, P_SP: s16(-125), 270: s16(333), 281: 5000}) as (plant, server):
        link = links(plant, clock)
        values = link.read(OBSERVE_POINTS)
        assert values["enable"] == 1 and values["p_setpoint"] == pytest.approx(-12.5)
        assert values["p_battery"] == pytest.approx(33.3) and values["soc"] == pytest.approx(0.5)
        assert link.link == "ok"
        infos = _messages(caplog, logging.INFO, "grouped read refused")
        assert infos == ["LIB control: grouped read refused (exception 2); using single-point reads"]
        # an expected fallback is not a link outage
        assert not _messages(caplog, logging.WARNING, "link down")

        # from now on: one request per point, never a refused grouped read again
        server.requests.clear()
        for _ in range(3):
            link.read(OBSERVE_POINTS)
        reads = [r for r in server.requests if r[0] == 3]
        assert len(reads) == 3 * len(OBSERVE_POINTS)
        assert all(count <= 2 for _, _, count in reads)

        # the fallback belongs to the endpoint: a new link (another role) reads singly at once
        server.requests.clear()
        sampler = links(plant, clock, role="sampler")
        sampler.read(SAMPLE_POINTS)
        assert all(count <= 2 for fc, _, count in server.requests if fc == 3)
        assert len(_messages(caplog, logging.INFO, "grouped read refused")) == 1


# ------------------------------------------------------------------------------ hung endpoint

def test_hung_endpoint_does_not_delay_the_other_plant(tmp_path):
    from core.clock import RealClock
    clock = RealClock(TZ)
    cfg = make_cfg(tmp_path)
    em = PlantEmulator(cfg, clock, cfg.data_dir, "local")
    em.start()
    listener = SilentListener()
    try:
        lib_plant = cfg.plants["lib"]
        lib_plant = dataclasses.replace(lib_plant, local=dataclasses.replace(lib_plant.local,
                                                                              port=listener.port))
        lib = ModbusLink(lib_plant, "control", clock, 0.5, "local")
        vrfb = ModbusLink(cfg.plants["vrfb"], "control", clock, 0.5, "local")
        stop = threading.Event()
        lib_results: list[tuple[float, str]] = []
        vrfb_latencies: list[float] = []

        def lib_loop():
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    lib.read(OBSERVE_POINTS, immediate=True)
                    lib_results.append((time.perf_counter() - t0, "ok"))
                except LinkError as exc:
                    lib_results.append((time.perf_counter() - t0, exc.kind))

        def vrfb_loop():
            while not stop.is_set():
                t0 = time.perf_counter()
                vrfb.read(OBSERVE_POINTS)
                vrfb_latencies.append(time.perf_counter() - t0)
                clock.wait(stop, 0.01)

        threads = [threading.Thread(target=lib_loop, name="test.lib"),
                   threading.Thread(target=vrfb_loop, name="test.vrfb")]
        for t in threads:
            t.start()
        clock.wait(stop, 1.3)
        stop.set()
        for t in threads:
            t.join(3)
        lib.close()
        vrfb.close()
        assert not any(t.is_alive() for t in threads), "a link thread is stuck"
        # the hung plant: every request ended after about modbus_timeout_s, link down
        assert lib_results and all(kind == "connect_failed" for _, kind in lib_results)
        assert all(0.4 <= dt <= 1.0 for dt, _ in lib_results)
        assert lib.link == "connect_failed"
        # the other plant kept reading at loopback speed meanwhile
        assert len(vrfb_latencies) > 20
        assert max(vrfb_latencies) < 0.25
    finally:
        listener.close()
        em.stop()


# ------------------------------------------------------------------------------- device guard

def test_device_guard_is_per_endpoint_and_a_stalled_holder_is_waited_for_at_most_wait_s(tmp_path, clock, links):
    cfg = make_cfg(tmp_path)
    sampler, control = links(cfg.plants["lib"], clock, role="sampler"), links(cfg.plants["lib"], clock)
    other_plant = links(cfg.plants["vrfb"], clock)
    held_by_sampler, release = threading.Event(), threading.Event()

    def stalled_holder():
        with sampler.device_guard() as held:
            assert held
            held_by_sampler.set()
            release.wait(10)

    holder = threading.Thread(target=stalled_holder)
    holder.start()
    try:
        assert held_by_sampler.wait(5)
        with other_plant.device_guard(wait_s=0.0) as held:
            assert held, "another endpoint has its own guard"
        t0 = time.monotonic()
        with control.device_guard(wait_s=0.2) as held:
            waited_s = time.monotonic() - t0
            assert held is False, "the body runs unguarded once the wait is over"
        assert 0.15 <= waited_s < 2.0
    finally:
        release.set()
        holder.join(5)
    with control.device_guard(wait_s=0.0) as held:
        assert held, "released by its holder"


def test_a_link_flapping_every_few_seconds_is_told_once_not_at_every_flap(tmp_path, clock, links, caplog):
    """A plant (a NAT, a PLC comm module) that drops its connections every 3 s (also a new one) and
    answers again 3 s later: the link state follows each flap, but the log says `link down`/`restored` for the first
    two outages, then one WARNING that the link flaps, then nothing per flap (DEBUG), and one INFO
    once it has stayed up for 60 s. (Before: two lines per flap and role, 2400 an hour.)"""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        plant_cfg = make_cfg(tmp_path, ports={"lib": {"local": plant.port}}).plants["lib"]
        link = links(plant_cfg, clock)
        for _ in range(40):                              # two minutes of flapping
            assert link.read(("enable",))["enable"] == 0 and link.link == "ok"
            plant.hook = lambda fc, addr, values: ("drop_noapply",)   # a moment of dropped connections
            with pytest.raises(LinkError):
                link.read(("enable",))
            plant.hook = None
            assert link.link == "connect_failed"
            clock.advance(3.0)
        assert link.read(("enable",))["enable"] == 0      # then it stays up
        clock.advance(59.0)
        link.read(("enable",))
        assert not _messages(caplog, logging.INFO, "stable again")
        clock.advance(2.0)
        link.read(("enable",))
        link.read(("enable",))
    hil = [r for r in caplog.records if r.name.startswith("hil") and r.levelno >= logging.INFO]
    lines = [r.getMessage() for r in hil]
    assert len(_messages(caplog, logging.WARNING, "link down")) == 2, lines
    assert len(_messages(caplog, logging.INFO, "link restored")) == 2, lines
    flapping = _messages(caplog, logging.WARNING, "link flapping")
    assert len(flapping) == 1 and "3 outages in 60 s" in flapping[0], lines
    stable = _messages(caplog, logging.INFO, "stable again")
    assert len(stable) == 1 and "LIB Modbus control link" in stable[0], lines
    assert len(lines) == 6, lines


def test_a_flapping_link_that_then_stays_down_is_told(tmp_path, clock, links, caplog):
    """While a link flaps its outages are logged at DEBUG; one that then lasts 60 s is a real
    outage again: one WARNING, and its restore at INFO (the operator must not read the last line as
    a link that came back)."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        plant_cfg = make_cfg(tmp_path, ports={"lib": {"local": plant.port}}).plants["lib"]
        link = links(plant_cfg, clock)
        for _ in range(3):
            link.read(("enable",))
            plant.hook = lambda fc, addr, values: ("drop_noapply",)
            with pytest.raises(LinkError):
                link.read(("enable",))
            plant.hook = None
            clock.advance(3.0)
        assert len(_messages(caplog, logging.WARNING, "link flapping")) == 1
        plant.hook = lambda fc, addr, values: ("drop_noapply",)       # now every request is dropped
        for _ in range(4):
            clock.advance(20.0)
            with pytest.raises(LinkError):
                link.read(("enable",))
        down = _messages(caplog, logging.WARNING, "link down for 60 s after flapping")
        assert len(down) == 1 and "LIB Modbus control" in down[0]
        plant.hook = None
        clock.advance(31.0)
        link.read(("enable",))
    assert len(_messages(caplog, logging.INFO, "link restored")) == 3   # two before the flapping, this one


def test_a_plant_answering_as_another_unit_id_is_said_to_do_so_not_to_be_silent(tmp_path, clock, links):
    """The remote endpoint is configured with unit id 1 and the plant answers every request as unit
    id 2 (a device that puts its own address in the answer). pymodbus drops those answers and waits
    out the timeout: the link said `no answer within 0.5 s`, which sends the operator after the
    network. It says which unit id answered, and the link is down (no value of another device is taken)."""
    with FaultyPlant() as plant:
        plant.answer_unit = 2
        plant_cfg = make_cfg(tmp_path, ports={"lib": {"local": plant.port}}).plants["lib"]
        link = links(plant_cfg, clock)
        with pytest.raises(LinkError) as exc:
            link.read(("enable",))
        assert exc.value.kind == "connect_failed" and link.link == "connect_failed"
        assert str(exc.value) == "answered as unit id 2, not the configured unit id 1 (no answer as 1 within 0.5 s)"
        plant.answer_unit = None
        clock.advance(1.0)
        assert link.read(("enable",)) == {"enable": 0.0} and link.link == "ok"


def test_an_answer_to_another_request_is_never_taken_as_the_registers_read(tmp_path, clock, links):
    """The plant (a gateway out of step after a fault) answers a read of `enable` with the answer of
    a write (function code 6, `enable` 1) carrying the read's transaction id. pymodbus hands it over
    as a response with `registers == [1]`: the plant, disabled, was read as enabled. It is a failed
    request, and the connection, out of step, is closed (a stale answer cannot follow on it)."""
    with FaultyPlant() as plant:
        plant_cfg = make_cfg(tmp_path, ports={"lib": {"local": plant.port}}).plants["lib"]
        link = links(plant_cfg, clock)
        assert link.read(("enable",)) == {"enable": 0.0}
        first_client = link._client
        plant.hook = lambda fc, addr, values: ("raw", bytes([6, 0, 1, 0, 1])) if fc == 3 else None
        with pytest.raises(LinkError) as exc:
            link.read(("enable",))
        assert str(exc.value) == "I/O error: answer to another request (function code 6 to a request of code 3)"
        assert link.link == "connect_failed" and link._client is None
        plant.hook = None
        clock.advance(1.0)
        assert link.read(("enable",)) == {"enable": 0.0} and link._client is not first_client


def test_a_connection_the_plant_closed_while_idle_costs_no_sample(tmp_path, clock, connects, links, caplog):
    """Plants and gateways close a connection after an idle time or a comm restart; the client learns
    it only from its next request. A background read on a connection that had answered is sent
    again once on a new connection: no failed sample, no `link down`/`restored` pair. A plant that
    drops the request on the new connection too is down as before, after one extra connect."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        plant_cfg = make_cfg(tmp_path, ports={"lib": {"local": plant.port}}).plants["lib"]
        link = links(plant_cfg, clock)
        plant.set(1, [1])
        assert link.read(("enable",)) == {"enable": 1.0}
        plant.drop_all()                                   # its idle timeout closed the connection
        assert link.read(("enable",)) == {"enable": 1.0} and link.link == "ok"
        assert len(connects) == 2 and link.connect_failures == 0
        assert not _messages(caplog, logging.WARNING, "link down")
        plant.drop_all()
        plant.hook = lambda fc, addr, values: ("drop_noapply",)   # now it drops every request
        with pytest.raises(LinkError) as exc:
            link.read(("enable",))
        assert exc.value.kind == "connect_failed" and exc.value.dropped and link.link == "connect_failed"
        assert len(connects) == 3 and link.connect_failures == 1
        assert len(_messages(caplog, logging.WARNING, "link down")) == 1


def test_a_plant_that_only_takes_multi_register_writes_gets_fc16(tmp_path, clock, links, caplog):
    """Many inverters and PPCs implement FC16 only and answer FC6 with exception 1 (illegal
    function): every setpoint and `enable` write was refused and the plant could not be started or
    stopped. The endpoint's one-register writes go out as FC16 from then on (one INFO), like the
    grouped-read fallback; a refusal with another code stays a refusal."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        plant_cfg = make_cfg(tmp_path, ports={"lib": {"local": plant.port}}).plants["lib"]
        key = f"127.0.0.1:{plant.port}/1"
        plant.hook = lambda fc, addr, values: ("exc", 1) if fc == 6 else None
        try:
            link = links(plant_cfg, clock)
            link.write_value("p_setpoint", 250.0)
            link.write_counts("enable", 1)
            assert plant.get(P_SP)[0] == 2500 and plant.get(1)[0] == 1 and link.link == "ok"
            assert [r[1] for r in plant.requests if r[1] != 3] == [6, 16, 16]
            other = links(plant_cfg, clock, role="sampler")       # the fallback belongs to the endpoint
            other.write_counts("enable", 0)
            assert plant.get(1)[0] == 0 and plant.requests[-1][1] == 16
            assert len(_messages(caplog, logging.INFO, "one-register writes refused (exception 1)")) == 1
            plant.hook = lambda fc, addr, values: ("exc", 3)
            with pytest.raises(LinkError) as exc:
                link.write_value("p_setpoint", 100.0)
            assert exc.value.kind == "write_refused" and plant.get(P_SP)[0] == 2500
            modbus_link.ModbusLink._fc16_endpoints.discard(key)
            plant.hook = lambda fc, addr, values: ("exc", 1)     # refused whatever the function: no FC16
            with pytest.raises(LinkError) as exc:
                link.write_value("p_setpoint", 100.0)
            assert exc.value.kind == "write_refused" and exc.value.exception_code == 1
            assert key not in modbus_link.ModbusLink._fc16_endpoints and plant.requests[-2][1] == 6
        finally:
            modbus_link.ModbusLink._fc16_endpoints.discard(key)
