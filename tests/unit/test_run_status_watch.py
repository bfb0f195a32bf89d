"""`core.run_status_watch`: one `late` per episode once the bound passed, `recovered` only after it,
and the episode ends when its plant or its state is gone (the story in
`tests/integration/test_run_status_follows.py`)."""
from core.run_status_watch import RunStatusEvent, RunStatusWatch


def test_a_start_not_followed_is_late_once_then_recovered():
    w = RunStatusWatch(30.0)
    w.started("local", 100.0)
    assert w.observe("local", False, True, True, 129.9) is None
    assert w.observe("local", False, True, True, 130.0) == RunStatusEvent("late", "start", 30.0)
    assert w.observe("local", False, True, True, 160.0) is None
    assert w.observe("local", True, True, True, 170.0) == RunStatusEvent("recovered", "start", 70.0)
    assert w.observe("local", False, True, True, 300.0) is None and w.kind is None


def test_a_stop_not_followed_is_late_once_and_a_prompt_one_says_nothing():
    w = RunStatusWatch(30.0)
    w.stopped("remote", 0.0)
    assert w.observe("remote", True, False, False, 31.0) == RunStatusEvent("late", "stop", 31.0)
    assert w.observe("remote", False, False, False, 40.0) == RunStatusEvent("recovered", "stop", 40.0)
    w.stopped("remote", 50.0)
    assert w.observe("remote", False, False, False, 52.0) is None and w.kind is None


def test_an_episode_ends_without_a_word_when_its_state_is_gone():
    w = RunStatusWatch(30.0)
    for begin, args in ((w.started, ("local", False, True, False)),    # the gate closed
                        (w.started, ("remote", False, True, True)),    # another transport's plant
                        (w.started, ("local", None, True, True)),      # no run status read
                        (w.stopped, ("local", True, True, False))):    # enabled again after the stop
        begin("local", 0.0)
        assert w.observe(*args, 100.0) is None and w.kind is None
