"""core.hosts: which hosts are loopback, and what an emulated plant on another host exposes."""
import pytest

from core.hosts import is_loopback_host, open_emulator_note


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_an_emulator_on_loopback_exposes_nothing(host):
    assert is_loopback_host(host) and open_emulator_note(host, "LIB emulator 127.0.0.1:5020") is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.20", "plant-gw.lab", "::ffff:127.0.0.1"])
def test_an_emulator_on_another_host_is_said_to_be_writable_by_anyone_who_reaches_it(host):
    """Security review: `plants.*.modbus.local.host: 0.0.0.0` passed silently, and anyone on the network
    could then write the emulated plant's registers, recorded and posted as measurements."""
    note = open_emulator_note(host, f"LIB emulator {host}:5020")
    assert note == (f"LIB emulator {host}:5020 listens on a host that is not loopback: any machine that reaches it "
                    "can write its registers (Modbus TCP has no login), and what it reads is recorded and posted; "
                    "use 127.0.0.1 unless the network is the lab's own")
