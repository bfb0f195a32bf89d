"""A Modbus link's failures in the operator's words (`agents/modbus_link.py`): pure functions of the
exception, the link's timeout (s) and unit ids; no I/O."""
from __future__ import annotations

import socket

from pymodbus.exceptions import ModbusException, ModbusIOException

from name_lookup import LookupTimeout


def connect_error_text(exc: Exception, timeout_s: float) -> str:
    """Why a connect failed: the plant refused it, did not answer, or its host is not known or not
    reachable, or its DNS lookup did not answer (the text names the host)."""
    if isinstance(exc, LookupTimeout):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"host not found ({exc.strerror or exc})"
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()


def io_error_text(exc: Exception, timeout_s: float, unit: int, other_unit: int | None) -> str:
    """A failed request: `no answer within 1 s` for pymodbus's timeout (`No response received after
    0 retries, continue with next request`; naming `other_unit` when another unit id answered
    meanwhile), else `I/O error: ...`."""
    text = exc.string if isinstance(exc, ModbusException) else str(exc)
    if isinstance(exc, ModbusIOException) and "No response received" in text:
        if other_unit is not None:
            return (f"answered as unit id {other_unit}, not the configured unit id {unit} "
                    f"(no answer as {unit} within {timeout_s:g} s)")
        return f"no answer within {timeout_s:g} s"
    return f"I/O error: {text.removeprefix('[Input/Output] ') or type(exc).__name__}"
