"""Host name lookups bounded in time, for the Modbus links and the HTTP client.

`getaddrinfo` has no timeout: a DNS server that does not answer holds the caller for the
resolver's own timeout (5 s x attempts x servers, often 10-30 s), past every bound of a plant's
thread (a safe stop on an unreachable endpoint: about 2 x modbus_timeout_s, components §4.6).

`addresses(host, timeout_s)` gives the host's IP addresses (in getaddrinfo's order) or raises
`LookupTimeout` ("DNS lookup of plant.example did not answer within 1 s") when the lookup did not
answer within `timeout_s`, or the lookup's own error (`socket.gaierror`, `UnicodeError`).
- A literal IP address or `localhost` is given back as is (an IPv6 one without its brackets),
  without a thread.
- Else the lookup runs on a daemon thread (`dns-lookup`), at most one per host at a time: a
  caller finding one running for its host waits for that one (a hung DNS never piles threads up).
  A hung lookup's thread ends on its own when the resolver gives up.
- A good answer is kept for CACHE_S (real time): a DNS that answers now and then costs one
  lookup per CACHE_S, not one per connect. Failures are not kept.

`attempts(host, timeout_s)`: the rule of every connect by name (Modbus links and the HTTP client):
the host's addresses in order, each with the seconds left of `timeout_s` (the lookup included),
until the time is out; the caller tries each and goes on to the next when one fails.
`create_connection(host, port, timeout_s)`: a TCP connection by that rule.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
from datetime import timezone
from typing import Iterator

from core.clock import RealClock
from core.hosts import unbracketed

CACHE_S = 60.0

_CLOCK = RealClock(timezone.utc)   # network bounds run on real monotonic time, not agent time
_lock = threading.Lock()
_cache: dict[str, tuple[float, tuple[str, ...]]] = {}   # host -> (monotonic time of the answer, addresses)
_running: dict[str, "_Lookup"] = {}                     # host -> the lookup in flight


class LookupTimeout(Exception):
    """The DNS lookup of `host` did not answer within `timeout_s`. Not an OSError, so that HTTP
    libraries do not wrap it into a connection error of their own words."""

    def __init__(self, host: str, timeout_s: float):
        super().__init__(f"DNS lookup of {host} did not answer within {timeout_s:g} s")
        self.host = host
        self.timeout_s = timeout_s


def is_literal(host: str) -> bool:
    """An IP address (also `[::1]`) or `localhost`: nothing to ask a DNS server."""
    if host.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(unbracketed(host))
    except ValueError:
        return False
    return True


class _Lookup:
    """One getaddrinfo of `host` on its own daemon thread; `done` is set when it answered or failed."""

    def __init__(self, host: str):
        self.host = host
        self.done = threading.Event()
        self.result: tuple[str, ...] = ()
        self.error: BaseException | None = None
        threading.Thread(target=self._run, name="dns-lookup", daemon=True).start()

    def _run(self) -> None:
        try:
            infos = socket.getaddrinfo(self.host, None, type=socket.SOCK_STREAM)
            self.result = tuple(dict.fromkeys(info[4][0] for info in infos))
        except (OSError, UnicodeError) as exc:
            self.error = exc
        finally:
            with _lock:
                if self.result:
                    _cache[self.host] = (_CLOCK.monotonic(), self.result)
                if _running.get(self.host) is self:
                    del _running[self.host]
            self.done.set()


def addresses(host: str, timeout_s: float) -> tuple[str, ...]:
    """The IP addresses of `host` within `timeout_s` (the module docstring has the contract)."""
    if is_literal(host):
        return (unbracketed(host),)   # a socket takes `::1`, not `[::1]`
    with _lock:
        cached = _cache.get(host)
        if cached is not None and _CLOCK.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        lookup = _running.get(host)
        if lookup is None:
            lookup = _running[host] = _Lookup(host)
    if not _CLOCK.wait(lookup.done, timeout_s):
        raise LookupTimeout(host, timeout_s)
    if lookup.error is not None:
        raise type(lookup.error)(*lookup.error.args)   # a copy: the lookup may have several waiters
    if not lookup.result:
        raise socket.gaierror(socket.EAI_NONAME, f"no address for {host}")
    return lookup.result


def attempts(host: str, timeout_s: float) -> Iterator[tuple[str, float]]:
    """(address, seconds left) for each address of `host` in order while time is left of
    `timeout_s`, counted from the call (the lookup included). Raises what `addresses` raises."""
    deadline = _CLOCK.monotonic() + timeout_s
    for address in addresses(host, timeout_s):
        left = deadline - _CLOCK.monotonic()
        if left <= 0:
            return
        yield address, left


def create_connection(host: str, port: int, timeout_s: float) -> socket.socket:
    """A TCP connection to `host`:`port` within about `timeout_s`, its lookup included. Raises
    LookupTimeout, the lookup's error or the last connect's OSError (TimeoutError when the time ran out)."""
    error: OSError | None = None
    for address, left in attempts(host, timeout_s):
        try:
            return socket.create_connection((address, port), timeout=left)
        except OSError as exc:
            error = exc
    raise error or TimeoutError("timed out")


def forget() -> None:
    """Drop every kept answer (tests)."""
    with _lock:
        _cache.clear()
