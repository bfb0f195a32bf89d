"""The pure day-ahead parser `parse_day_ahead` (contract §5.2, components §5.2, §12)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.day_ahead import MAX_PERIOD_WARNINGS
from istentore_api import IstentoreAPIError, parse_day_ahead

log = logging.getLogger("test_api_parsing")
T0 = datetime(2026, 6, 1, 0, 0, tzinfo=timezone.utc)
FIELDS = ("lib_to_vpp_kw", "vpp_to_lib_kw", "vrfb_to_vpp_kw", "vpp_to_vrfb_kw")


def period(ts, lib_up=0.0, lib_down=0.0, vrfb_up=0.0, vrfb_down=0.0, **override):
    activation = dict(zip(FIELDS, (lib_up, lib_down, vrfb_up, vrfb_down)))
    activation.update(override)
    for name in [k for k, v in activation.items() if v is _MISSING]:
        del activation[name]
    return {"delivery_period": ts, "activation": [activation]}


_MISSING = object()


def product(*periods):
    return [{"id": 4, "delivery_periods": list(periods)}]


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def at(minutes):
    return T0 + timedelta(minutes=minutes)


# -- timestamps ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "2026-06-01T00:15:00+00:00",
    "2026-06-01T00:15:00Z",
    "2026-06-01T00:15:00.000Z",
    "2026-06-01T00:15:00.000000+00:00",
    "2026-06-01T02:15:00+02:00",
    "2026-05-31T23:15:00-01:00",
    "2026-06-01T00:15:00",                 # naive means UTC
    "2026-06-01 00:15:00",
])
def test_delivery_period_formats_give_the_same_utc_instant(text, caplog):
    points = parse_day_ahead(product(period(text, lib_up=100.0, vrfb_down=40.0)), log)

    assert points == {"lib": {at(15): 100.0}, "vrfb": {at(15): -40.0}}
    key = next(iter(points["lib"]))
    assert key.utcoffset() == timedelta(0)
    assert warnings_of(caplog) == []


def test_fractional_seconds_are_kept_as_given():
    points = parse_day_ahead(product(period("2026-06-01T00:15:00.5Z", lib_up=1.0)), log)
    assert list(points["lib"]) == [at(15) + timedelta(milliseconds=500)]


def test_plant_kw_is_to_vpp_minus_from_vpp():
    points = parse_day_ahead(product(period("2026-06-01T00:00:00+00:00", 300, 120.5, 0, 2000)), log)
    assert points == {"lib": {T0: 179.5}, "vrfb": {T0: -2000.0}}


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-06-01T25:00:00Z", None, 17,
                                 ["2026-06-01T00:00:00Z"]])
def test_unparsable_period_is_skipped_and_the_rest_kept(bad, caplog):
    points = parse_day_ahead(product(period(at(0).isoformat(), lib_up=1.0), period(bad, lib_up=2.0),
                                     period(at(15).isoformat(), lib_up=3.0)), log)

    assert points["lib"] == {at(0): 1.0, at(15): 3.0}
    assert len(points["vrfb"]) == 2
    (warning,) = warnings_of(caplog)
    assert warning.startswith("Day-ahead delivery period #1") and "bad delivery_period" in warning


# -- activation values ------------------------------------------------------------------------------

@pytest.mark.parametrize("absent", [None, _MISSING])
def test_null_or_missing_component_counts_zero_and_is_logged(absent, caplog):
    points = parse_day_ahead(product(period(T0.isoformat(), 50.0, 10.0, 30.0, 5.0, vpp_to_lib_kw=absent,
                                            vrfb_to_vpp_kw=absent)), log)

    assert points == {"lib": {T0: 50.0}, "vrfb": {T0: -5.0}}
    (warning,) = warnings_of(caplog)
    assert "vpp_to_lib_kw missing or null, counted as 0" in warning
    assert "vrfb_to_vpp_kw missing or null, counted as 0" in warning


@pytest.mark.parametrize("value", ["12.5", "n/a", True, [1], {"kw": 1}, float("nan"), float("inf"), 10**400])
def test_non_numeric_component_skips_that_plant_only(value, caplog):
    points = parse_day_ahead(product(period(T0.isoformat(), 50.0, 10.0, 30.0, 5.0, vrfb_to_vpp_kw=value),
                                     period(at(15).isoformat(), 1.0, 0.0, 2.0, 0.0)), log)

    assert points == {"lib": {T0: 40.0, at(15): 1.0}, "vrfb": {at(15): 2.0}}
    (warning,) = warnings_of(caplog)
    assert "vrfb_to_vpp_kw not numeric" in warning and "vrfb skipped" in warning


def test_difference_that_overflows_skips_the_plant():
    points = parse_day_ahead(product(period(T0.isoformat(), 1e308, -1e308, 1.0, 0.0)), log)
    assert points == {"lib": {}, "vrfb": {T0: 1.0}}


@pytest.mark.parametrize("activation", [_MISSING, None, [], [None], "x", [[1, 2]]])
def test_missing_or_empty_activation_skips_the_period(activation, caplog):
    bad = {"delivery_period": T0.isoformat()}
    if activation is not _MISSING:
        bad["activation"] = activation
    points = parse_day_ahead(product(bad, period(at(15).isoformat(), lib_up=1.0)), log)

    assert points == {"lib": {at(15): 1.0}, "vrfb": {at(15): 0.0}}
    (warning,) = warnings_of(caplog)
    assert "missing or empty activation" in warning


def test_only_the_first_activation_element_counts():
    p = period(T0.isoformat(), lib_up=1.0)
    p["activation"].append(dict(zip(FIELDS, (9.0, 9.0, 9.0, 9.0))))
    assert parse_day_ahead(product(p), log)["lib"] == {T0: 1.0}


def test_duplicate_periods_last_one_wins():
    points = parse_day_ahead(product(period("2026-06-01T00:00:00Z", lib_up=1.0, vrfb_up=1.0),
                                     period("2026-06-01T02:00:00+02:00", lib_up=2.0, vrfb_up=2.0)), log)
    assert points == {"lib": {T0: 2.0}, "vrfb": {T0: 2.0}}


# -- products and shape --------------------------------------------------------------------------------

def test_only_the_first_product_is_used():
    payload = product(period(T0.isoformat(), lib_up=1.0)) + product(period(at(15).isoformat(), lib_up=2.0))
    assert parse_day_ahead(payload, log)["lib"] == {T0: 1.0}


@pytest.mark.parametrize("payload", [[], [{"id": 4, "delivery_periods": []}], [{"id": 4}],
                                     [{"id": 4, "delivery_periods": None}]])
def test_empty_answers_give_zero_points(payload, caplog):
    assert parse_day_ahead(payload, log) == {"lib": {}, "vrfb": {}}
    assert warnings_of(caplog) == []


@pytest.mark.parametrize("payload", [None, {}, {"delivery_periods": []}, "[]", 4, [1], [{"id": 4}, "x"],
                                     [{"delivery_periods": {"a": 1}}], [{"delivery_periods": "x"}]])
def test_wrong_shape_raises(payload):
    with pytest.raises(IstentoreAPIError, match="^unexpected response shape$") as caught:
        parse_day_ahead(payload, log)
    assert not caught.value.retryable


def test_more_than_five_problems_end_with_one_summary_line(caplog):
    bad = [period(at(15 * k).isoformat(), vpp_to_lib_kw=None) for k in range(8)]
    good = period(at(15 * 8).isoformat(), lib_up=5.0)

    points = parse_day_ahead(product(*bad[:4], good, *bad[4:], "not a period"), log)

    assert len(points["lib"]) == 9 and points["lib"][at(120)] == 5.0
    warnings = warnings_of(caplog)
    assert len(warnings) == MAX_PERIOD_WARNINGS + 1
    assert warnings[-1] == "... and 4 more delivery period problems"


def test_five_problems_need_no_summary(caplog):
    parse_day_ahead(product(*[period(at(15 * k).isoformat(), vpp_to_lib_kw=None) for k in range(5)]), log)
    warnings = warnings_of(caplog)
    assert len(warnings) == 5 and not any(w.startswith("...") for w in warnings)


# -- properties -------------------------------------------------------------------------------------

_NUMBER = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-10**6, 10**6)
_JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)
_TS_STYLES = (
    lambda t: t.isoformat(),
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"),
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    lambda t: t.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S"),
)


@st.composite
def good_period(draw, slot):
    values = [draw(_NUMBER) for _ in FIELDS]
    ts = at(15 * slot)
    return ts, draw(st.sampled_from(_TS_STYLES))(ts), values


@st.composite
def bad_period(draw):
    """Garbage that can never be mistaken for a good period (no parsable 2026 timestamp)."""
    kind = draw(st.sampled_from(["json", "bad_ts", "no_activation", "other_year"]))
    if kind == "json":
        item = draw(_JSON)
        if isinstance(item, dict):
            item.pop("delivery_period", None)
        return item
    activation = draw(st.lists(st.dictionaries(st.sampled_from(FIELDS), _JSON, max_size=4), max_size=2))
    if kind == "bad_ts":
        return {"delivery_period": draw(st.text(alphabet="0123456789-:TZ+. ", max_size=12)
                                        .filter(lambda s: "2026" not in s)),
                "activation": activation}
    if kind == "no_activation":
        return {"delivery_period": draw(st.sampled_from(["2026-06-01T00:00:00Z", "x"])),
                "activation": draw(st.sampled_from([None, [], "x", [None]]))}
    return {"delivery_period": "1999-01-01T00:00:00Z", "activation": activation}


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_random_period_lists_keep_every_good_period(data):
    slots = data.draw(st.lists(st.integers(0, 191), unique=True, max_size=10))
    goods = [data.draw(good_period(slot)) for slot in slots]
    bads = data.draw(st.lists(bad_period(), max_size=8))
    periods = [{"delivery_period": text, "activation": [dict(zip(FIELDS, values))]} for _, text, values in goods]
    periods = data.draw(st.permutations(periods + bads))

    points = parse_day_ahead([{"delivery_periods": periods}], logging.getLogger("hypothesis.parse"))

    for ts, _, (lib_up, lib_down, vrfb_up, vrfb_down) in goods:
        assert points["lib"][ts] == pytest.approx(lib_up - lib_down)
        assert points["vrfb"][ts] == pytest.approx(vrfb_up - vrfb_down)
    for plant_points in points.values():
        assert {ts for ts in plant_points if ts.year == 2026} == {ts for ts, _, _ in goods}


@settings(max_examples=150, deadline=None)
@given(payload=_JSON | st.lists(st.dictionaries(st.sampled_from(["delivery_periods", "id"]),
                                                st.lists(_JSON, max_size=5) | _JSON), max_size=2))
def test_any_json_gives_points_or_an_api_error(payload):
    try:
        points = parse_day_ahead(payload, logging.getLogger("hypothesis.parse"))
    except IstentoreAPIError:
        return
    assert set(points) == {"lib", "vrfb"}
    for plant_points in points.values():
        for ts, kw in plant_points.items():
            assert ts.utcoffset() == timedelta(0) and isinstance(kw, float)
