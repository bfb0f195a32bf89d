"""Queued measurement posts survive `kill -9` (issue 12): the real program, the bundled simulator.

Story: the API is down (its port is closed) while the program samples both plants in API mode
with a post window of 1 s, so every window queues 8 items (2 plants × SoC, P, Q, V). After 15 s
the program is killed with SIGKILL. The simulator then comes up on that port and the program is
started again: every window sampled before the kill arrives, in order per series, without a gap.
"""
from __future__ import annotations

import json
import signal
import time
from datetime import datetime

from tools.istentore_sim import IstentoreSim
from tests.helpers import ClosedPort, wait_for
from tests.procs import clean_env, procs, write_config  # noqa: F401 (fixture)

PASSWORD = "durable-Posts-pw-41"
SERIES = {"lib": {"soc": 4, "p": 6, "q": 7, "v": 8}, "vrfb": {"soc": 5, "p": 11, "q": 10, "v": 9}}
QUEUE_S = 15


def journal_items(path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if line.startswith('{"item"'))
    except OSError:
        return 0


def stamps(sim, series_id) -> list[float]:
    return [datetime.fromisoformat(m["timestamp"]).timestamp() for m in sim.measurements(series_id)]


def test_posts_queued_at_a_kill_9_are_all_posted_after_the_restart(tmp_path, procs):
    with ClosedPort() as api_down:                 # refuses every request until the simulator takes it
        sim_port = api_down.port
        cfg, _ = write_config(tmp_path, startup={"schedule_source": "api"}, istentore_api={
            "base_url": f"http://127.0.0.1:{sim_port}", "measurement_post_period_s": 1,
            "measurement_post_retry_initial_s": 1, "measurement_post_retry_max_s": 2, "request_timeout_s": 1})
        env = clean_env(ISTENTORE_API_PASSWORD=PASSWORD)
        journal = tmp_path / "data" / "post_journal.jsonl"

        run1 = procs.program(cfg, "--no-dashboard", label="run1", env=env)
        wait_for(lambda: journal_items(journal) >= 8, 30, what="the first window journaled")
        first_window_at = time.time()
        time.sleep(QUEUE_S)
        run1.kill9()
        killed_at = time.time()
        assert journal_items(journal) >= 8 * (QUEUE_S - 1)

    sim = IstentoreSim(PASSWORD, port=sim_port)
    try:
        sim.start()
        run2 = procs.program(cfg, "--no-dashboard", label="run2", env=env)

        def all_before_kill_arrived():
            return all(sum(1 for t in stamps(sim, sid) if t < killed_at) >= QUEUE_S
                       for plant in SERIES.values() for sid in plant.values())
        wait_for(all_before_kill_arrived, 40, what="every window before the kill on the simulator")
        assert run2.stop(signal.SIGINT) == 0, run2.stderr()[-3000:]
        err = run2.stderr()
        assert "Recovered" in err and "queued measurement post(s) from post_journal.jsonl" in err
        for plant in SERIES.values():
            for sid in plant.values():
                before = sorted({t for t in stamps(sim, sid) if t < killed_at})
                steps = [b - a for a, b in zip(before, before[1:])]
                assert steps and all(step == 1.0 for step in steps), (sid, steps)   # no window lost
                assert before[0] <= first_window_at and before[-1] >= killed_at - 3, (sid, before[-1] - killed_at)
                arrived = stamps(sim, sid)
                assert arrived == sorted(arrived), f"series {sid} posted out of order"
        assert PASSWORD not in json.dumps([sim.measurements(s) for p in SERIES.values() for s in p.values()])
    finally:
        sim.stop()


def test_shutdown_while_the_api_hangs_every_request_exits_within_the_request_timeout(tmp_path, procs):
    """Bounded shutdown (issue 12): with every API request hanging (login, market, measurements)
    and both the fetcher and the poster blocked in HTTP, SIGINT ends the process within
    `request_timeout_s` + 2 s, exit 0, and the queued posts are kept on disk."""
    import math

    timeout_s = 4
    sim = IstentoreSim(PASSWORD)
    try:
        sim.start()
        for path in ("/login", "/market_products", "/measurements"):
            sim.set_delay(path, math.inf)
        cfg, _ = write_config(tmp_path, startup={"schedule_source": "api"}, istentore_api={
            "base_url": sim.url, "measurement_post_period_s": 1, "request_timeout_s": timeout_s})
        app = procs.program(cfg, "--no-dashboard", env=clean_env(ISTENTORE_API_PASSWORD=PASSWORD))
        journal = tmp_path / "data" / "post_journal.jsonl"
        wait_for(lambda: journal_items(journal) >= 8 and sim.calls["/login"] >= 1, 30,
                 what="a login hanging and posts queued")
        time.sleep(timeout_s / 2)         # the fetcher's login is now mid-wait
        signalled = time.monotonic()
        app.send(signal.SIGINT)
        rc = app.wait(timeout_s + 10)
        took_s = time.monotonic() - signalled
        print(f"exit {rc} {took_s:.2f} s after SIGINT with every API request hanging")
        assert rc == 0, app.stderr()[-3000:]
        assert took_s <= timeout_s + 2.0
        assert (tmp_path / "data" / "pending_posts.jsonl").exists()
    finally:
        sim.stop()
