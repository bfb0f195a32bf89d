"""`ClosedPort` (tests/helpers.py), the suite's dead host: while it is open a connect to its port is
refused at once, as to a port nothing holds, and no server (not even one with SO_REUSEADDR, as the
Modbus and HTTP servers of the suite use) can bind the port, so another test worker cannot bring the
dead host to life; once closed the port is free again."""
from __future__ import annotations

import errno
import socket
import time

from tests.helpers import HOST, ClosedPort, closed_port  # noqa: F401  (fixture)


def connect_error(port: int) -> int:
    with socket.socket() as c:
        c.settimeout(2)
        try:
            c.connect((HOST, port))
        except OSError as e:
            return e.errno
    return 0


def server_bind_error(port: int) -> int:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            s.listen()
        except OSError as e:
            return e.errno
    return 0


def test_a_closed_port_refuses_connects_and_cannot_be_served_on_until_closed():
    with ClosedPort() as dead:
        t0 = time.monotonic()
        assert connect_error(dead.port) == errno.ECONNREFUSED
        assert time.monotonic() - t0 < 0.5, "refused at once, not after a timeout"
        assert server_bind_error(dead.port) == errno.EADDRINUSE, "no server can take the port"
        assert ClosedPort.held() >= {dead.port}
    assert dead.port not in ClosedPort.held()
    assert server_bind_error(dead.port) == 0, "closed: the port is free again"


def test_the_fixture_gives_distinct_dead_ports_released_at_the_end(closed_port):
    ports = [closed_port(), closed_port()]
    assert ports[0] != ports[1]
    assert [connect_error(p) for p in ports] == [errno.ECONNREFUSED] * 2
    assert ClosedPort.held() >= set(ports)
