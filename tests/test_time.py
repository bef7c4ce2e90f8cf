"""The workspace calendar: engine-side expressions against pandas' own time-zone database.

The reference for every engine-side conversion is pandas (``tz_convert``), which uses its
own zone data, not the transition table :mod:`cs_analysis.time` builds for the engine.
"""

import datetime as dt

import hypothesis.strategies as st
import ibis
import pandas as pd
import pytest
from hypothesis import given, settings

from cs_analysis import time as t
from cs_analysis.errors import ArgumentError, CSAnalysisError

ZONES = ["UTC", "Asia/Tokyo", "America/New_York", "America/Los_Angeles", "Europe/Berlin",
         "Australia/Sydney", "Asia/Kolkata"]


def _instants():
    """UTC instants minutes either side of local midnights, month ends and DST changes."""
    out = []
    for tz in ZONES:
        for day in pd.date_range("2023-12-30", "2025-01-02", freq="D"):
            if day.day not in (1, 2, 28, 29, 30, 31) and day.month not in (3, 10, 11):
                continue
            local_midnight = day.tz_localize(tz) if tz != "UTC" else day.tz_localize("UTC")
            for minutes in (-61, -1, 0, 1, 59, 121, 600):
                out.append((local_midnight + pd.Timedelta(minutes=minutes)).tz_convert("UTC")
                           .tz_localize(None))
    return pd.Series(sorted(set(out)))


INSTANTS = _instants()


@pytest.fixture(scope="module")
def con():
    c = ibis.duckdb.connect()
    c.create_table("ev", pd.DataFrame({"event_at": INSTANTS}))
    return c


@pytest.mark.parametrize("tz", ZONES)
def test_engine_local_date_matches_pandas(con, tz):
    ev = con.table("ev")
    got = (ev.mutate(d=t.local_date(ev.event_at, tz)).order_by("event_at").execute())
    expected = (INSTANTS.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)
                .dt.normalize())
    assert (pd.to_datetime(got["d"]).to_numpy() == expected.to_numpy()).all()
    assert (t.local_dates(INSTANTS, tz).to_numpy() == expected.to_numpy()).all()


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("grain", t.GRAINS)
def test_engine_periods_match_python_periods(con, tz, grain):
    ev = con.table("ev")
    got = ev.mutate(p=t.period_expr(ev.event_at, grain, tz)).order_by("event_at").execute()
    local = INSTANTS.dt.tz_localize("UTC").dt.tz_convert(tz)
    expected = [t.period_of(x.date(), grain) for x in local]
    assert got["p"].tolist() == expected
    assert t.period_number(INSTANTS, grain, tz).tolist() == expected


def test_tokyo_morning_of_may_first_is_a_may_event(con):
    ts = pd.Timestamp("2024-04-30 22:00")  # 07:00 on 1 May in Tokyo
    assert t.period_number([ts], "month", "Asia/Tokyo").tolist() == [2024 * 12 + 4]
    assert t.period_number([ts], "month", "UTC").tolist() == [2024 * 12 + 3]
    assert t.utc_instant(dt.date(2024, 5, 1), "Asia/Tokyo") == dt.datetime(2024, 4, 30, 15)
    assert t.utc_instant(dt.date(2024, 7, 1), "America/New_York") == dt.datetime(2024, 7, 1, 4)


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo", "America/Los_Angeles"])
def test_on_or_before_is_the_local_day(con, tz):
    ev = con.table("ev")
    cut = dt.date(2024, 3, 31)
    got = ev.filter(t.on_or_before(ev.event_at, cut, tz)).count().execute()
    assert got == int((t.local_dates(INSTANTS, tz) <= pd.Timestamp(cut)).sum())


@given(st.dates(dt.date(1990, 1, 1), dt.date(2060, 12, 31)), st.sampled_from(t.GRAINS))
@settings(max_examples=300, deadline=None)
def test_period_start_end_and_labels_round_trip(d, grain):
    p = t.period_of(d, grain)
    start, end = t.period_bounds(p, grain)
    assert start <= d <= end
    assert t.period_of(start, grain) == p == t.period_of(end, grain)
    assert t.period_of(end + dt.timedelta(days=1), grain) == p + 1
    assert t.is_observable(p, grain, end) and not t.is_observable(p, grain, end - dt.timedelta(1))
    label = t.period_label(p, grain)
    if grain == "week":
        iso = start.isocalendar()
        assert label == f"{iso[0]:04d}-W{iso[1]:02d}" and start.weekday() == 0
    elif grain == "quarter":
        assert label == f"{d.year}-Q{(d.month - 1) // 3 + 1}"
    elif grain == "month":
        assert label == d.strftime("%Y-%m")


def test_last_observable():
    assert t.last_observable(dt.date(2024, 3, 31), "month") == t.period_of(dt.date(2024, 3, 1),
                                                                          "month")
    assert t.last_observable(dt.date(2024, 3, 30), "month") == t.period_of(dt.date(2024, 2, 1),
                                                                          "month")
    assert t.last_observable(dt.date(2024, 6, 30), "quarter") == 2024 * 4 + 1


def test_quarters_on_sqlite_are_integers():
    con = ibis.sqlite.connect()
    con.create_table("d", pd.DataFrame({"x": pd.to_datetime(["2024-02-29", "2024-04-01"])}))
    tab = con.table("d")
    assert tab.mutate(q=t.period_expr(tab.x, "quarter")).execute()["q"].tolist() == [
        2024 * 4, 2024 * 4 + 1]


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ArgumentError, match="grain='fortnight' is not supported"):
        t.period_of(dt.date(2024, 1, 1), "fortnight")
    with pytest.raises(CSAnalysisError, match="unknown time zone 'Mars/Olympus'"):
        t.zone("Mars/Olympus")
    with pytest.raises(CSAnalysisError, match="not a date"):
        t.to_date("first of May")
    assert t.to_date(None) is None and t.to_date("2024-05-01 10:00") == dt.date(2024, 5, 1)


@pytest.mark.parametrize("tz", ["America/Los_Angeles", "Europe/Berlin"])
def test_engine_wall_clock_at_every_transition(tz):
    """Wall clock seconds either side of every DST change the engine knows (1995-2045).

    Also a winter before and after those years (standard time on both sides).
    """
    first, changes = t._offsets(tz)
    assert len(changes) > 90
    at = [pd.Timestamp(i) + pd.Timedelta(seconds=s) for i, _ in changes
          for s in (-61, -1, 0, 1, 3600)]
    at += [pd.Timestamp("1990-01-15"), pd.Timestamp("2050-12-01")]
    instants = pd.Series(sorted(at))
    c = ibis.duckdb.connect()
    c.create_table("ev", pd.DataFrame({"event_at": instants}))
    ev = c.table("ev")
    got = ev.mutate(w=t.local_timestamp(ev.event_at, tz)).order_by("event_at").execute()
    expected = instants.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)
    assert (pd.to_datetime(got["w"]).to_numpy() == expected.to_numpy()).all()
