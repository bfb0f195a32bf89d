"""A safe stop on a slow plant keeps components §4.6's bound (timeout_s + 6 x modbus_timeout_s):
the decay wait reads P/Q in one request and starts no read that could not end by its timeout.
Reading all observation points per poll (three requests on the default map) with a read allowed to
start at the deadline took 4.86 s against a bound of 4.65 s (review reproducer). Real Modbus TCP."""
import time

from core.clock import RealClock
from tests.faulty_plant import FaultyPlant
from tests.helpers import ENABLE, P_BAT, P_SP
from tests.integration.test_control import TZ, Rig


def test_a_safe_stop_on_a_slow_plant_stays_within_its_bound(tmp_path):
    """Each answer takes 0.4 s (timeout 0.5 s); the battery never decays. The decay wait's reads are
    one request each, published as P/Q only: SoC and enable keep the age of their own read."""
    timeout_s, modbus_s, delay_s = 1.65, 0.5, 0.4
    with FaultyPlant() as plant:
        rig = Rig(tmp_path, RealClock(TZ), emulator=False, ports={"lib": {"local": plant.port}},
                  timing={"modbus_timeout_s": modbus_s}, safe_stop={"timeout_s": timeout_s})
        try:
            plant.set(ENABLE, [1])
            plant.set(P_SP, [5000])
            plant.frozen_battery = True
            plant.set(P_BAT, [5000])
            rig.lib._observe()
            before = dict(rig.sd["plant_observed_state_by_plant"]["lib"])
            plant.hook = lambda fc, addr, values: ("delay", delay_s)
            rig.set_transition("running", gate=True)
            n0 = len(plant.requests)
            t0 = time.perf_counter()
            result = rig.lib.safe_stop()
            elapsed = time.perf_counter() - t0
            plant.hook = None
            reads = [a for _, fc, a, _v in plant.requests[n0:] if fc == 3 and a != ENABLE]
            assert result["disable_ok"] is True
            assert elapsed <= timeout_s + 6 * modbus_s, f"safe stop took {elapsed:.2f} s"
            assert reads and set(reads) <= {P_BAT, P_SP}, reads   # the zero's readback, then P/Q alone
            after = rig.sd["plant_observed_state_by_plant"]["lib"]
            assert after["p_battery_kw"] == 500.0 and after["observed_at"] > before["observed_at"]
            assert after["full_observed_at"] == before["full_observed_at"] == before["observed_at"]
        finally:
            plant.hook = None
            rig.close()
