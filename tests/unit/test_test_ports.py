"""The test suite's own port picking (tests/helpers.py): each xdist worker draws from a slice of its
own, so two workers never race for one port (a full run once failed `Address already in use` when
one worker's emulator took a port another had just picked)."""
import pytest

from tests.helpers import _ALL_TEST_PORTS, TEST_PORTS, _worker_ports, free_port


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_the_workers_slices_are_disjoint_and_inside_the_test_range(count):
    slices = [set(_worker_ports(f"gw{k}", str(count))) for k in range(count)]
    assert all(len(s) == len(_ALL_TEST_PORTS) // count for s in slices)
    assert all(a.isdisjoint(b) for i, a in enumerate(slices) for b in slices[i + 1:])
    assert set().union(*slices) <= set(_ALL_TEST_PORTS)


@pytest.mark.parametrize("worker, count", [(None, None), ("", "3"), ("master", "3"), ("gw0", None), ("gw0", "0")])
def test_outside_xdist_the_whole_range_is_used(worker, count):
    assert _worker_ports(worker, count) == _ALL_TEST_PORTS


def test_a_free_port_is_from_this_workers_slice():
    assert all(free_port() in TEST_PORTS for _ in range(20))
