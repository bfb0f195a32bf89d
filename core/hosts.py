"""Which dashboard and metrics hosts are loopback (contract: they may serve without auth). Pure, no I/O."""
from __future__ import annotations

import ipaddress


def unbracketed(host: str) -> str:
    """`host` without the brackets of an IPv6 address written as in a URL (`[::1]` -> `::1`)."""
    return host[1:-1] if host[:1] + host[-1:] == "[]" else host


def url_host(host: str) -> str:
    """`host` as a URL writes it: an IPv6 address in brackets (`::1` -> `[::1]`)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def is_loopback_host(host: str) -> bool:
    """True for `localhost` (any case), 127.0.0.0/8 and `::1` (also `[::1]`); not for names resolving there."""
    try:
        ip = ipaddress.ip_address(unbracketed(host))
    except (ValueError, TypeError):
        return isinstance(host, str) and host.lower() == "localhost"
    return ip in ipaddress.ip_network("127.0.0.0/8") if ip.version == 4 else ip == ipaddress.IPv6Address("::1")


def open_emulator_note(host: str, label: str) -> str | None:
    """What an emulated plant listening on `host` exposes when that is not loopback (Modbus TCP has
    no login: anyone who reaches it writes its registers, and their values are recorded and posted);
    None on loopback."""
    if is_loopback_host(host):
        return None
    return (f"{label} listens on a host that is not loopback: any machine that reaches it can write its registers "
            "(Modbus TCP has no login), and what it reads is recorded and posted; use 127.0.0.1 unless the "
            "network is the lab's own")


MISDIRECTED_TEXT = ("Misdirected request: without dashboard.auth this server answers only to a loopback host "
                    "name (127.0.0.1, localhost, [::1]).\n")


def host_header_name(host: str) -> str:
    """The name or address of a `Host` header value, without its port (`[::1]:8050` -> `[::1]`)."""
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def misdirected(host_header: str | None) -> bool:
    """A request to a server without auth (so on loopback) whose `Host` is no loopback name: a web
    page reaching it through a DNS name rebound to 127.0.0.1 (answered 421)."""
    return not is_loopback_host(host_header_name(host_header or ""))


def listen_scope(host: str) -> frozenset[str]:
    """The addresses a socket listening on `host` takes its port on, for clash checks: {`*`} (every
    address) for a wildcard (empty, 0.0.0.0, ::), both loopback addresses for `localhost` (it may
    resolve to either), else the address or name itself (127.0.0.1 and 127.0.0.2 are two sockets)."""
    bare = unbracketed(host)
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        if not bare.strip():
            return frozenset({"*"})
        return frozenset({"127.0.0.1", "::1"}) if bare.lower() == "localhost" else frozenset({bare.lower()})
    return frozenset({"*"}) if ip.is_unspecified else frozenset({str(ip)})
