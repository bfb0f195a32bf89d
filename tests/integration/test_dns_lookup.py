"""A host name whose DNS lookup hangs costs a plant's thread (and the HTTP client) no more than its
bounds (`name_lookup.py`): a safe stop on such an endpoint stays within 2 x modbus_timeout_s + 0.5 s
(components §4.6), an Istentore request within its timeout.

A DNS server that does not answer cannot be had in the sandbox (tests contact 127.0.0.1 only), so
`socket.getaddrinfo` is replaced for each test: names under `.invalid` hang like an unanswered
lookup (until the test ends, at most HANG_S, then EAI_AGAIN as a resolver gives up), names in
`KNOWN` answer 127.0.0.1, names in `DUAL` answer ::1 first (nothing listens there on the test's
port: refused) and 127.0.0.1 second, anything else goes to the real one. Every call is noted with
its thread.
"""
from __future__ import annotations

import dataclasses
import socket
import threading
import time

import pytest

import name_lookup
from agents.modbus_link import LinkError, ModbusLink
from core.clock import FakeClock, RealClock
from core.points import OBSERVE_POINTS
from istentore_api import IstentoreAPIError
from tests.faulty_plant import FaultyPlant
from tests.integration.test_control import START, TZ, Rig
from tests.integration.test_istentore_bounded_exchange import RawHTTPServer, client, fetch_day

HANG_S = 5.0
KNOWN = {"plant.example", "api.example"}
DUAL = {"dual.example"}
TIMEOUT_S = 1.0


class FakeDNS:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []   # (host, name of the calling thread)
        self.release = threading.Event()
        self._real = socket.getaddrinfo

    def getaddrinfo(self, host, port, *args, **kwargs):
        self.calls.append((host, threading.current_thread().name))
        if isinstance(host, str) and host.endswith(".invalid"):
            self.release.wait(HANG_S)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host in DUAL:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port or 0, 0, 0)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 0))]
        return self._real("127.0.0.1" if host in KNOWN else host, port, *args, **kwargs)

    def lookups(self, host):
        return [thread for name, thread in self.calls if name == host]


@pytest.fixture
def dns(monkeypatch):
    fake = FakeDNS()
    name_lookup.forget()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    yield fake
    fake.release.set()   # the hung lookups end (as a resolver's own timeout would end them)
    name_lookup.forget()


def _on_host(link: ModbusLink, host: str) -> None:
    """Point `link`'s current endpoint at `host` (same port)."""
    local = dataclasses.replace(link.plant.local, host=host)
    link.plant = dataclasses.replace(link.plant, local=local)
    link.endpoint = link._resolve(link.mode)


def test_a_safe_stop_on_a_host_whose_lookup_hangs_stays_within_its_bound(tmp_path, dns):
    rig = Rig(tmp_path, RealClock(TZ), emulator=False, timing={"modbus_timeout_s": TIMEOUT_S})
    try:
        _on_host(rig.lib.link, "plant.invalid")
        rig.set_transition("running", gate=True)
        t0 = time.perf_counter()
        result = rig.lib.safe_stop()
        elapsed = time.perf_counter() - t0
    finally:
        rig.close()
    assert elapsed <= 2 * TIMEOUT_S + 0.5, f"{elapsed:.2f} s"
    port = rig.cfg.plants["lib"].local.port
    assert result == {"threshold_reached": False, "disable_ok": False, "error":
                      f"connect failed: DNS lookup of plant.invalid did not answer within 1 s (plant.invalid:{port})"}
    assert dns.lookups("plant.invalid") == ["dns-lookup"], "one lookup, waited for by both connects"


def test_a_named_plant_is_looked_up_off_the_thread_once_and_a_literal_address_not(tmp_path, dns):
    with FaultyPlant() as plant:
        rig = Rig(tmp_path, FakeClock(START), emulator=False, ports={"lib": {"local": plant.port}})
        link = rig.lib.link
        try:
            _on_host(link, "plant.example")
            link.read(OBSERVE_POINTS, immediate=True)
            link.close()
            link.read(OBSERVE_POINTS, immediate=True)      # a new connection: the kept answer
            assert dns.lookups("plant.example") == ["dns-lookup"]
            assert link._client.comm_params.host == "127.0.0.1"   # pymodbus never looks the name up itself
            _on_host(link, "127.0.0.1")
            link.close()
            link.read(OBSERVE_POINTS, immediate=True)
            assert "dns-lookup" not in dns.lookups("127.0.0.1")
            assert link.link == "ok"
        finally:
            rig.close()


def test_a_lookup_that_fails_is_said_to_and_not_kept(tmp_path, dns):
    rig = Rig(tmp_path, FakeClock(START), emulator=False)
    link = rig.lib.link
    try:
        _on_host(link, "plant.invalid")
        dns.release.set()                                   # the resolver gives up at once
        for _ in range(2):
            with pytest.raises(LinkError):
                link.read(OBSERVE_POINTS, immediate=True)
        assert link.last_error == "connect failed: host not found (Temporary failure in name resolution)"
        assert len(dns.lookups("plant.invalid")) == 2
    finally:
        rig.close()


def test_an_api_request_to_a_host_whose_lookup_hangs_ends_within_its_timeout(dns):
    server = RawHTTPServer(lambda server, conn: None, "/unused")
    api = client(server, timeout_s=TIMEOUT_S)
    api.base_url = api.base_url.replace("127.0.0.1", "api.invalid")
    try:
        started = time.monotonic()
        with pytest.raises(IstentoreAPIError, match="DNS lookup of api.invalid did not answer within 1 s") as caught:
            fetch_day(api)
        elapsed_s = time.monotonic() - started
    finally:
        api.close()
        server.stop()
    assert caught.value.retryable
    assert elapsed_s < TIMEOUT_S + 0.5
    assert server.connections == 0


def test_an_api_host_that_is_not_found_is_a_connection_failure_as_before(dns):
    server = RawHTTPServer(lambda server, conn: None, "/unused")
    api = client(server, timeout_s=TIMEOUT_S)
    api.base_url = api.base_url.replace("127.0.0.1", "api.invalid")
    dns.release.set()                                       # the resolver gives up at once
    try:
        not_found = r"^POST /login: connection failed: \[Errno -3\] Temporary failure in name resolution$"
        with pytest.raises(IstentoreAPIError, match=not_found) as caught:
            fetch_day(api)
    finally:
        api.close()
        server.stop()
    assert caught.value.retryable


def test_an_api_host_name_is_looked_up_off_the_thread_and_kept(dns):
    server = RawHTTPServer(lambda server, conn: None, "/unused")
    api = client(server, timeout_s=TIMEOUT_S)
    api.base_url = api.base_url.replace("127.0.0.1", "api.example")
    try:
        assert fetch_day(api) == {"lib": {}, "vrfb": {}}
        api.close()                                         # the next request opens a new connection
        assert fetch_day(api) == {"lib": {}, "vrfb": {}}
    finally:
        api.close()
        server.stop()
    assert dns.lookups("api.example") == ["dns-lookup"]
    assert server.connections == 2


def test_an_api_host_whose_first_address_refuses_is_reached_on_its_next_one(dns):
    # dual.example has two addresses: ::1 (nothing listens there on the server's port) and
    # 127.0.0.1 (the server). The HTTP client connected to the first one only and failed with
    # 'connection refused'; it now tries each address in the exchange's time left, as the Modbus
    # links do (name_lookup.attempts, one rule for both).
    server = RawHTTPServer(lambda server, conn: None, "/unused")
    api = client(server, timeout_s=5.0)
    api.base_url = api.base_url.replace("127.0.0.1", "dual.example")
    try:
        assert fetch_day(api) == {"lib": {}, "vrfb": {}}
    finally:
        api.close()
        server.stop()
    assert dns.lookups("dual.example") == ["dns-lookup"]
    assert server.connections >= 1


def test_a_bracketed_ipv6_literal_connects_without_a_lookup():
    """`[::1]` (an IPv6 address as written in a URL) is a literal: connected to as `::1`; with its
    brackets every connect failed as `host not found`."""
    listener = socket.socket(socket.AF_INET6)
    try:
        listener.bind(("::1", 0))
    except OSError:
        listener.close()
        pytest.skip("no IPv6 loopback on this machine")
    listener.listen(1)
    try:
        assert name_lookup.addresses("[::1]", 1.0) == ("::1",)
        with name_lookup.create_connection("[::1]", listener.getsockname()[1], 1.0) as conn:
            assert conn.getpeername()[0] == "::1"
    finally:
        listener.close()
