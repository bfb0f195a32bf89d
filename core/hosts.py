"""Which dashboard and metrics hosts are loopback (contract: they may serve without auth). Pure, no I/O."""
import ipaddress


def is_loopback_host(host: str) -> bool:
    """True for `localhost` (any case), 127.0.0.0/8 and `::1` (also `[::1]`); not for names resolving there."""
    try:
        ip = ipaddress.ip_address(host[1:-1] if host[:1] + host[-1:] == "[]" else host)
    except (ValueError, TypeError):
        return isinstance(host, str) and host.lower() == "localhost"
    return ip in ipaddress.ip_network("127.0.0.0/8") if ip.version == 4 else ip == ipaddress.IPv6Address("::1")
