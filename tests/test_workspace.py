import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import ibis
import pandas as pd
import pytest

from cs_analysis.workspace import (
    USAGE_ROLLUP,
    WorkspaceError,
    month_index,
    open_workspace,
    write_workspace,
)


def test_as_of_is_latest_observed_date_not_a_scheduled_end(tiny_ws):
    # a subscription ends 2024-06-11, after the last event (2024-05-01 08:00): an end
    # date is scheduled, not observed, so it never moves the as-of date (metrics.md)
    assert tiny_ws.as_of == dt.date(2024, 5, 1)


def test_as_of_ignores_contracts_ending_after_the_data(tmp_path, tiny_tables):
    # a purchase log with 24-month contracts: every end date lies after the data end
    subs = tiny_tables["subscriptions"].copy()
    subs["end_date"] = [d + dt.timedelta(days=730) for d in subs["start_date"]]
    ws = open_workspace(write_workspace(tmp_path / "w.duckdb",
                                        {**tiny_tables, "subscriptions": subs}))
    assert ws.as_of == dt.date(2024, 5, 1)
    # an activity observed later does move it
    acts = pd.DataFrame({"account_id": ["001"], "activity": ["qbr"],
                         "occurred_at": pd.to_datetime(["2024-05-20 09:00"])})
    ws = open_workspace(write_workspace(tmp_path / "w2.duckdb",
                                        {**tiny_tables, "subscriptions": subs,
                                         "cs_activities": acts}))
    assert ws.as_of == dt.date(2024, 5, 20)


@pytest.mark.parametrize(("tz", "expected"), [
    ("UTC", dt.date(2024, 5, 1)),
    ("Asia/Tokyo", dt.date(2024, 5, 2)),          # 2024-05-01 23:30 UTC is 08:30 on 2 May
    ("America/Los_Angeles", dt.date(2024, 5, 1)),  # 16:30 on 1 May
])
def test_as_of_is_a_local_date(tmp_path, tiny_tables, tz, expected):
    ev = tiny_tables["usage_events"].copy()
    ev.loc[2, "event_at"] = pd.Timestamp("2024-05-01 23:30")
    path = write_workspace(tmp_path / "w.duckdb", {**tiny_tables, "usage_events": ev},
                           config={"timezone": tz})
    assert open_workspace(path).as_of == expected


def test_usage_rollup_cuts_months_in_the_workspace_zone(tmp_path, tiny_tables):
    # 2024-04-30 22:00 UTC is 07:00 on 1 May in Tokyo: a May event of a Tokyo workspace
    ev = pd.DataFrame({"account_id": ["001"], "event_at": pd.to_datetime(["2024-04-30 22:00"])})
    tables = {**tiny_tables, "usage_events": ev}
    for tz, month in (("UTC", 4), ("Asia/Tokyo", 5)):
        ws = open_workspace(write_workspace(tmp_path / f"{tz[:4]}.duckdb", tables,
                                            config={"timezone": tz}))
        assert ws.usage_rollup().to_pandas()["month"].tolist() == [month_index(2024, month)]
        # opened with another zone than it was built for, the rollup is not used
        other = open_workspace(tmp_path / f"{tz[:4]}.duckdb",
                               timezone="UTC" if tz != "UTC" else "Asia/Tokyo")
        assert other.usage_rollup() is None


def test_unknown_time_zone_is_a_clear_error(tiny_ws):
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        open_workspace(tiny_ws.con, timezone="Mars/Olympus")


def test_as_of_setting_overrides_data(tmp_path, tiny_tables):
    path = write_workspace(tmp_path / "w.duckdb", tiny_tables, config={"as_of": "2024-03-31"})
    assert open_workspace(path).as_of == dt.date(2024, 3, 31)
    assert open_workspace(path, as_of="2024-02-29").as_of == dt.date(2024, 2, 29)


def test_ids_stay_strings_with_leading_zeros(tiny_ws):
    ids = tiny_ws.accounts.to_pandas()["account_id"].tolist()
    assert ids == ["001", "002", "003"]


def test_where_scopes_every_table(tiny_ws):
    smb = tiny_ws.where(segment=["SMB"])
    assert sorted(smb.accounts.to_pandas().account_id) == ["001", "003"]
    assert set(smb.usage_events.to_pandas().account_id) == {"001"}
    assert set(smb.subscriptions.to_pandas().account_id) == {"001", "003"}
    # the as-of date stays the whole workspace's
    assert smb.as_of == tiny_ws.as_of
    # filters combine; empty lists mean "no filter"
    both = smb.where(signup_between=(dt.date(2024, 2, 1), None), plan=[])
    assert both.accounts.to_pandas().account_id.tolist() == ["003"]
    assert tiny_ws.where(accounts=["002"]).subscriptions.count().execute() == 1


def test_where_rejects_unknown_filters(tiny_ws):
    with pytest.raises(TypeError, match="unknown filter"):
        tiny_ws.where(colour="red")


def test_missing_table_and_column_errors_are_clear(tiny_ws):
    with pytest.raises(WorkspaceError, match="has no survey_responses table"):
        tiny_ws.table("survey_responses")
    with pytest.raises(WorkspaceError, match="no column.*csm_owner"):
        tiny_ws.table("accounts", columns=["csm_owner"])


def test_usage_rollup_matches_events(tiny_ws):
    roll = tiny_ws.usage_rollup().to_pandas().sort_values(["account_id", "month"])
    ev = tiny_ws.usage_events.to_pandas()
    brute = (ev.assign(month=ev.event_at.dt.year * 12 + ev.event_at.dt.month - 1)
             .groupby(["account_id", "month"]).size().rename("events").reset_index())
    assert roll[["account_id", "month", "events"]].values.tolist() == brute.values.tolist()
    assert month_index(2024, 1) == 2024 * 12
    assert USAGE_ROLLUP in tiny_ws.con.list_tables()


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_failed_write_leaves_existing_workspace_unchanged(tmp_path, tiny_tables):
    path = write_workspace(tmp_path / "w.duckdb", tiny_tables)
    before = _digest(path)
    bad = dict(tiny_tables)
    bad["subscriptions"] = bad["subscriptions"].assign(mrr=["x", "y", "z"])  # not castable
    with pytest.raises(duckdb.ConversionException):
        write_workspace(path, bad)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"]  # no leftovers


def test_open_accepts_an_ibis_backend(tmp_path, tiny_tables):
    path = write_workspace(tmp_path / "w.duckdb", tiny_tables)
    ws = open_workspace(ibis.duckdb.connect(str(path), read_only=True))
    assert ws.tables == ["accounts", "subscriptions", "usage_events"]


def test_open_missing_path_says_how_to_build(tmp_path):
    with pytest.raises(WorkspaceError, match="cs-analysis load"):
        open_workspace(tmp_path / "nope.duckdb")


def test_rows_round_trip(tiny_ws, tiny_tables):
    got = tiny_ws.subscriptions.to_pandas()
    exp = tiny_tables["subscriptions"]
    assert got.account_id.tolist() == exp.account_id.tolist()
    assert got.mrr.tolist() == exp.mrr.tolist()
    # Ibis returns DATE columns as datetime64 at midnight
    assert [None if pd.isna(x) else x.date() for x in got.end_date] == exp.end_date.tolist()


def test_the_data_layer_never_builds_the_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("CS_ANALYSIS_DATA", str(tmp_path))
    monkeypatch.delenv("CS_WORKSPACE", raising=False)
    with pytest.raises(WorkspaceError, match="make demo"):
        open_workspace()
    assert list(tmp_path.iterdir()) == []
    src = (Path(__file__).parents[1] / "cs_analysis" / "workspace.py").read_text("utf-8")
    assert "from cs_analysis.demo import" not in src and "import cs_analysis.demo" not in src


def test_demo_workspace_builds_when_missing(tmp_path):
    from cs_analysis.demo import demo_workspace

    ws = demo_workspace(tmp_path / "d.duckdb", accounts=40, seed=1)
    assert (tmp_path / "d.duckdb").exists() and len(ws.accounts.to_pandas()) == 40
