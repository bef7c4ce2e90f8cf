"""Chart tests: each chart renders to a Vega-Lite dict whose data and encodings we check."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from cs_analysis import charts


def _datasets(spec: dict) -> list[list[dict]]:
    # reference rules (alt.datum) come with an empty placeholder dataset: skip it
    return [d for d in spec.get("datasets", {}).values() if d != [{}]]


def _rows(spec: dict) -> list[dict]:
    sets = _datasets(spec)
    assert len(sets) == 1, "one inline dataset expected"
    return sets[0]


def _layers(spec: dict) -> list[dict]:
    inner = spec.get("spec", spec)   # faceted charts wrap the layered spec
    return inner.get("layer", [inner])


# == Retention ==========================================================================
@pytest.fixture
def retention_ws(tmp_path):
    from cs_analysis.workspace import open_workspace, write_workspace

    d = dt.date
    accounts = pd.DataFrame({
        "account_id": [f"{i:02d}" for i in range(8)],
        "signup_date": [d(2024, 1, 3), d(2024, 1, 9), d(2024, 2, 1), d(2024, 2, 20),
                        d(2024, 3, 5), d(2024, 3, 6), d(2024, 4, 1), d(2024, 4, 2)],
        "segment": ["SMB", "Enterprise"] * 4,
    })
    subs = pd.DataFrame({
        "account_id": accounts["account_id"],
        "start_date": accounts["signup_date"],
        "end_date": [d(2024, 3, 1), None, d(2024, 5, 1), None, None, d(2024, 4, 15), None,
                     None],
        "mrr": [100.0, 500.0, 120.0, 800.0, 90.0, 700.0, 60.0, 900.0],
    })
    events = pd.DataFrame({"account_id": ["00", "01", "03", "05"],
                           "event_at": pd.to_datetime(["2024-01-05", "2024-02-02",
                                                       "2024-04-01", "2024-05-30"])})
    path = write_workspace(tmp_path / "r.duckdb", {"accounts": accounts,
                                                   "subscriptions": subs,
                                                   "usage_events": events})
    return open_workspace(path, as_of=d(2024, 6, 12))


def test_cohort_heatmap_blank_unobservable_cells(retention_ws):
    from cs_analysis.retention import cohort_retention

    frame = cohort_retention(retention_ws)
    spec = charts.cohort_heatmap(frame).to_dict()
    rows = _rows(spec)
    assert len(rows) == len(frame)
    unobservable = [r for r in rows if not r["observable"]]
    assert unobservable and all(r["rate"] is None for r in unobservable)
    assert all(r["rate"] is not None for r in rows if r["observable"])
    layers = _layers(spec)
    coloured = [lay for lay in layers if lay["mark"]["type"] == "rect"
                and "color" in lay.get("encoding", {})]
    assert coloured[0]["encoding"]["color"]["field"] == "rate"
    assert {"accounts", "retained"} <= {t["field"] for t in coloured[0]["encoding"]["tooltip"]}
    assert {"filter": "datum.observable"} in coloured[0]["transform"]


def test_cohort_heatmap_facets_groups_or_shows_one(retention_ws):
    from cs_analysis.retention import cohort_retention

    frame = cohort_retention(retention_ws, by="segment")
    faceted = charts.cohort_heatmap(frame).to_dict()
    assert faceted["facet"]["row"]["field"] == "segment"
    one = charts.cohort_heatmap(frame, group="SMB").to_dict()
    assert "facet" not in one
    assert {r["segment"] for r in _rows(one)} == {"SMB"}


def test_retention_curves_band_and_small_samples(retention_ws):
    from cs_analysis.retention import average_retention, cohort_retention

    avg = average_retention(cohort_retention(retention_ws, by="segment"), small_sample=3)
    spec = charts.retention_curves(avg).to_dict()
    rows = _rows(spec)
    assert len(rows) == len(avg)
    marks = [lay["mark"]["type"] for lay in _layers(spec)]
    assert marks == ["area", "line", "point"]
    area = _layers(spec)[0]["encoding"]
    assert (area["y"]["field"], area["y2"]["field"]) == ("lower", "upper")
    assert _layers(spec)[1]["encoding"]["color"]["field"] == "segment"
    assert any(r["small_sample"] for r in rows)
    no_band = charts.retention_curves(avg, band=False).to_dict()
    assert [lay["mark"]["type"] for lay in _layers(no_band)] == ["line", "point"]
    # a cohort frame gives one curve per cohort, without unobservable cells
    cells = cohort_retention(retention_ws)
    per_cohort = charts.retention_curves(cells).to_dict()
    assert len(_rows(per_cohort)) == int(cells["observable"].sum())
    assert _layers(per_cohort)[0]["encoding"]["color"]["field"] == "cohort_label"


def test_km_curves_steps_with_bands_and_thinning(retention_ws):
    from cs_analysis.retention import survival

    res = survival(retention_ws, by="segment")
    spec = charts.km_curves(res).to_dict()
    layers = _layers(spec)
    assert layers[0]["mark"]["interpolate"] == "step-after"
    assert layers[1]["encoding"]["y"]["field"] == "survival"
    assert len(_rows(spec)) == len(res.curves)
    # a long curve is thinned to max_points rows per group, keeping first and last
    long = pd.DataFrame({"group": "g", "days": range(9000), "survival": 1.0, "lower": 1.0,
                         "upper": 1.0, "at_risk": 1, "events": 0})
    rows = _rows(charts.km_curves(long, max_points=300).to_dict())
    assert len(rows) <= 300 and rows[0]["days"] == 0 and rows[-1]["days"] == 8999


def test_mrr_waterfall_floats_changes_between_totals(retention_ws):
    from cs_analysis.retention import revenue_retention

    res = revenue_retention(retention_ws)
    window = res.window_bridge()
    spec = charts.mrr_waterfall(window).to_dict()
    rows = {r["component"]: r for r in _rows(spec)}
    assert rows["start"]["y0"] == 0 and rows["end"]["y0"] == 0
    # each change starts where the previous bar ended, and the last one lands on "end"
    assert rows["new"]["y0"] == rows["start"]["y1"]
    assert rows["churned"]["y1"] == pytest.approx(rows["end"]["y1"])
    with pytest.raises(ValueError, match="one period"):
        charts.mrr_waterfall(res.bridge)
    one = res.bridge[res.bridge["period_label"] == "2024-03"]
    assert len(_rows(charts.mrr_waterfall(one).to_dict())) == 7


def test_mrr_movements_and_grr_nrr_trend(retention_ws):
    from cs_analysis.retention import revenue_retention

    res = revenue_retention(retention_ws, by="segment")
    mv = charts.mrr_movements(res.bridge).to_dict()
    assert {r["component"] for r in _rows(mv)} <= {"new", "reactivated", "expansion",
                                                    "contraction", "churned"}
    assert mv["facet"]["row"]["field"] == "segment"
    trailing = pd.DataFrame({
        "window_start": pd.to_datetime(["2023-01-31", "2023-02-28"]),
        "window_end": pd.to_datetime(["2024-01-31", "2024-02-29"]),
        "accounts": [10, 11], "start_mrr": [1000.0, 1100.0], "expansion": [50.0, 0.0],
        "contraction": [0.0, 10.0], "churned": [100.0, 0.0], "end_mrr": [950.0, 1090.0],
        "grr": [0.9, 1090 / 1100], "nrr": [0.95, 1090 / 1100]})
    spec = charts.grr_nrr_trend(trailing).to_dict()
    lines = _layers(spec)[0]
    assert lines["transform"][0]["fold"] == ["grr", "nrr"]
    assert lines["encoding"]["color"]["field"] == "metric"
    assert len(_rows(spec)) == 2


def test_hazard_ratio_forest_plot():
    drivers = pd.DataFrame({
        "covariate": ["segment"] * 3, "level": ["Enterprise", "Mid-Market", "SMB"],
        "reference": ["Enterprise"] * 3, "is_reference": [True, False, False],
        "hazard_ratio": [1.0, 1.6, 2.5], "lower": [None, 1.2, 1.9],
        "upper": [None, 2.1, 3.3], "p_value": [None, 0.01, 0.001],
        "accounts": [100, 200, 300], "events": [10, 30, 60]})
    spec = charts.hazard_ratios(drivers).to_dict()
    layers = _layers(spec)
    assert layers[1]["encoding"]["x"]["scale"]["type"] == "log"
    assert [r["term"] for r in _rows(spec)] == ["segment: Enterprise", "segment: Mid-Market",
                                                  "segment: SMB"]


def test_charts_refuse_frames_over_the_row_limit():
    big = pd.DataFrame({"cohort_label": [f"c{i}" for i in range(6000)], "period": 0,
                        "accounts": 1, "retained": 1, "rate": 1.0, "observable": True})
    with pytest.raises(ValueError, match="5000-row limit"):
        charts.cohort_heatmap(big)
