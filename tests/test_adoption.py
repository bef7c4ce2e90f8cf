"""Product adoption (cs_analysis.adoption) against brute force in pandas on the LOCAL calendar.

Every reference converts stored UTC timestamps with pandas ``tz_convert`` before taking
dates and weeks, counts distinct users with Python sets, and takes the Theil-Sen slope as
the median of pairwise slopes in numpy; the analyses run in the engine, from the load-time
rollups and (with the rollups hidden) from raw events.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cs_analysis import adoption as A
from cs_analysis.errors import ArgumentError
from cs_analysis.workspace import ROLLUPS, open_workspace, write_workspace

ZONES = ["UTC", "Asia/Tokyo", "America/Los_Angeles"]
AS_OF = dt.date(2024, 6, 30)
FEATURES = ["alpha", "beta", "gamma"]
EPOCH_MONDAY = pd.Timestamp("1970-01-05")


# -- random workspaces ------------------------------------------------------------------
def random_tables(seed: int, n: int = 9) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"C{i:02d}" for i in range(n)]
    signup = [pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(d))
              for d in rng.integers(0, 170, n)]
    signup[0] = pd.Timestamp("2024-07-15")  # signs up after the as-of date
    accounts = pd.DataFrame({
        "account_id": ids, "signup_date": signup,
        "segment": rng.choice(["SMB", "Ent", None], n),
        "plan": rng.choice(["Pro", "Starter"], n),
        "employees": rng.integers(1, 500, n),
    })
    rows = []
    quiet = set(rng.choice(ids, 2, replace=False))  # accounts with no events at all
    for a, s in zip(ids, signup, strict=True):
        if a in quiet:
            continue
        k = int(rng.integers(0, 60))
        users = [f"{a}-u{j}" for j in range(int(rng.integers(1, 5)))]
        for _ in range(k):
            t = s + pd.Timedelta(minutes=int(rng.integers(-600, 60 * 24 * 200)))
            if rng.random() < 0.3:  # minutes either side of a local midnight / month end
                base = pd.Timestamp(f"2024-{int(rng.integers(2, 8)):02d}-01")
                t = base + pd.Timedelta(hours=int(rng.choice([-9, 0, 7, 8, 15])),
                                        minutes=int(rng.integers(-3, 4)))
            rows.append({"account_id": a, "event_at": t,
                         "user_id": None if rng.random() < 0.15 else str(rng.choice(users)),
                         "feature": None if rng.random() < 0.05 else str(rng.choice(FEATURES)),
                         "event_name": "e"})
    events = pd.DataFrame(rows, columns=["account_id", "event_at", "user_id", "feature",
                                         "event_name"])
    subs = []
    for a, s in zip(ids, signup, strict=True):
        r = rng.random()
        if r < 0.1:
            continue  # never a customer
        end = s + pd.Timedelta(days=int(rng.integers(20, 300))) if r < 0.5 else None
        subs.append({"account_id": a, "start_date": s, "end_date": end, "mrr": 100.0,
                     "seats": None if rng.random() < 0.2 else int(rng.integers(0, 6)),
                     "renewal_date": s + pd.Timedelta(days=365)})
        if rng.random() < 0.3:
            subs.append({"account_id": a, "start_date": s + pd.Timedelta(days=10),
                         "end_date": None, "mrr": 50.0,
                         "seats": int(rng.integers(1, 4)),
                         "renewal_date": s + pd.Timedelta(days=200)})
    subs = pd.DataFrame(subs, columns=["account_id", "start_date", "end_date", "mrr", "seats",
                                       "renewal_date"])
    subs["seats"] = subs["seats"].astype("Int64")
    return {"accounts": accounts, "subscriptions": subs, "usage_events": events}


def make_ws(tmp_path, tables, tz, name="w"):
    path = write_workspace(tmp_path / f"{name}.duckdb", tables, config={"timezone": tz})
    ws = open_workspace(path, as_of=AS_OF)
    raw = open_workspace(path, as_of=AS_OF)
    raw._available = raw._available - set(ROLLUPS)  # a warehouse: no rollups
    assert ws.usage_user_months() is not None and raw.usage_user_months() is None
    return ws, raw


def local_events(tables, tz) -> pd.DataFrame:
    ev = tables["usage_events"].copy()
    ts = pd.to_datetime(ev["event_at"]).dt.tz_localize("UTC").dt.tz_convert(tz)
    ev["day"] = ts.dt.tz_localize(None).dt.normalize()
    ev["week"] = (ev["day"] - EPOCH_MONDAY).dt.days // 7
    return ev[ev["day"] <= pd.Timestamp(AS_OF)]


def known_accounts(tables) -> pd.DataFrame:
    acc = tables["accounts"]
    return acc[pd.to_datetime(acc["signup_date"]) <= pd.Timestamp(AS_OF)]


def live(tables) -> set:
    s = tables["subscriptions"]
    d = pd.Timestamp(AS_OF)
    ok = (s["start_date"] <= d) & (s["end_date"].isna() | (s["end_date"] > d))
    return set(s.loc[ok, "account_id"])


def pairwise_median_slope(y):
    x = np.arange(len(y), dtype=float)
    sl = [(y[j] - y[i]) / (x[j] - x[i]) for i in range(len(y)) for j in range(i + 1, len(y))]
    return float(np.median(sl)) if sl else math.nan


# -- brute-force references -----------------------------------------------------------------
def bf_adoption(tables, tz, days, by):
    ev = local_events(tables, tz)
    lo = pd.Timestamp(AS_OF) - pd.Timedelta(days=days - 1)
    ev = ev[ev["day"] >= lo]
    acc = known_accounts(tables).set_index("account_id")
    ev = ev[ev["account_id"].isin(acc.index)]
    rows, arows = [], []
    act = sorted(set(ev["account_id"]))
    feats = sorted(set(ev["feature"].dropna()))
    group = {a: ("All" if by is None else (acc.loc[a, by] if acc.loc[a, by] is not None
                                           and not pd.isna(acc.loc[a, by]) else "(missing)"))
             for a in act}
    for a in act:
        e = ev[ev["account_id"] == a]
        users = set(e["user_id"].dropna())
        used = set(e["feature"].dropna())
        arows.append({"account_id": a, "active_users": len(users), "events": len(e),
                      "features_used": len(used & set(feats)),
                      "breadth": len(used & set(feats)) / len(feats) if feats else math.nan})
    for g in sorted(set(group.values())):
        members = [a for a in act if group[a] == g]
        for f in feats:
            e = ev[ev["account_id"].isin(members) & (ev["feature"] == f)]
            adopters = sorted(set(e["account_id"]))
            users = sum(len(set(ev.loc[ev["account_id"] == a, "user_id"].dropna()))
                        for a in adopters)
            rows.append({"feature": f, "g": g, "active_accounts": len(members),
                         "adopting_accounts": len(adopters), "events": len(e),
                         "active_users": users})
    return pd.DataFrame(rows), pd.DataFrame(arows)


def bf_trend(tables, tz, weeks=12, dropped_days=30, min_weeks=4, growth=0.2, decline=0.2):
    ev = local_events(tables, tz)
    asof = pd.Timestamp(AS_OF)
    last_week = (asof - EPOCH_MONDAY).days // 7
    if EPOCH_MONDAY + pd.Timedelta(days=7 * last_week + 6) > asof:
        last_week -= 1
    out = {}
    acc = known_accounts(tables)
    for a, s in zip(acc["account_id"], pd.to_datetime(acc["signup_date"]), strict=True):
        if a not in live(tables):
            continue
        sw = (s - EPOCH_MONDAY).days // 7
        e = ev[ev["account_id"] == a]
        cur = [w for w in range(last_week - weeks + 1, last_week + 1) if w >= sw]
        y = np.array([len(set(e.loc[e["week"] == w, "user_id"].dropna())) for w in cur], float)
        mean = y.mean() if len(y) else math.nan
        slope = pairwise_median_slope(y) if len(y) >= 2 else math.nan
        trend = slope * len(y) / mean if mean and mean > 0 else math.nan
        if e.empty:
            cls = "no_usage"
        elif (asof - e["day"].max()).days >= dropped_days:
            cls = "dropped"
        elif len(y) < min_weeks:
            cls = "new"
        elif not math.isnan(trend) and trend <= -decline:
            cls = "declining"
        elif not math.isnan(trend) and trend >= growth:
            cls = "growing"
        else:
            cls = "stable"
        out[a] = (len(y), mean, slope, trend, cls)
    return out


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), tz=st.sampled_from(ZONES),
       by=st.sampled_from([None, "segment"]), days=st.sampled_from([1, 30, 90]))
def test_feature_adoption_matches_brute_force_on_both_paths(tmp_path_factory, seed, tz, by,
                                                            days):
    tables = random_tables(seed)
    ws, raw = make_ws(tmp_path_factory.mktemp("fa"), tables, tz)
    exp, exp_acc = bf_adoption(tables, tz, days, by)
    for w in (ws, raw):
        got = A.feature_adoption(w, by=by, window=f"{days}D")
        f = got.features
        assert len(f) == len(exp)
        if len(exp):
            gcol = by if by else None
            f = f.sort_values(([gcol] if gcol else []) + ["feature"]).reset_index(drop=True)
            e = exp.sort_values(["g", "feature"]).reset_index(drop=True)
            if gcol:
                assert list(f[gcol]) == list(e["g"])
            for c in ("feature", "active_accounts", "adopting_accounts", "events",
                      "active_users"):
                assert list(f[c]) == list(e[c]), c
            assert np.allclose(f["adoption_rate"], e["adopting_accounts"] / e["active_accounts"])
            assert (f["lower"] <= f["adoption_rate"] + 1e-12).all()
            assert (f["upper"] >= f["adoption_rate"] - 1e-12).all()
        acc = got.accounts.sort_values("account_id").reset_index(drop=True)
        assert list(acc["account_id"]) == list(exp_acc.get("account_id", []))
        for c in ("active_users", "events", "features_used"):
            assert list(acc[c]) == list(exp_acc.get(c, [])), c
    # only the raw path says it scanned events (either may say nobody was active)
    raw_note = "Computed from raw usage events"
    assert not any(raw_note in n for n in A.feature_adoption(ws, by=by,
                                                             window=f"{days}D").notes)
    assert any(raw_note in n for n in A.feature_adoption(raw, by=by, window=f"{days}D").notes)


def test_usage_trend_of_accounts_without_any_event(tmp_path):
    """An account page scoped to one account that has no event yet (e.g. a health
    history point before its first use) is 'no_usage', not an error."""
    tables = random_tables(5)
    ev = tables["usage_events"]
    paying = sorted(live(tables) & set(known_accounts(tables)["account_id"]))
    quiet = paying[0]  # a paying account, made silent
    tables["usage_events"] = ev[ev["account_id"] != quiet]
    ws, raw = make_ws(tmp_path, tables, "UTC")
    for w in (ws, raw):
        got = A.usage_trend(w.where(accounts=[quiet]), weeks=4, min_weeks=2)
        assert list(got["account_id"]) == [quiet]
        assert list(got["usage_class"]) == ["no_usage"]
        assert got["last_use"].isna().all()


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), tz=st.sampled_from(ZONES))
def test_usage_trend_matches_brute_force_on_both_paths(tmp_path_factory, seed, tz):
    tables = random_tables(seed)
    ws, raw = make_ws(tmp_path_factory.mktemp("tr"), tables, tz)
    exp = bf_trend(tables, tz, weeks=4, min_weeks=2)
    for w in (ws, raw):
        got = A.usage_trend(w, weeks=4, min_weeks=2).set_index("account_id")
        assert set(got.index) == set(exp)
        for a, (nw, mean, slope, trend, cls) in exp.items():
            r = got.loc[a]
            assert r["weeks"] == nw
            assert r["usage_class"] == cls, (a, cls, r.to_dict())
            for x, y in ((r["wau_mean"], mean), (r["slope"], slope), (r["trend"], trend)):
                assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, abs_tol=1e-9)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), tz=st.sampled_from(ZONES),
       grain=st.sampled_from(["week", "month"]))
def test_stickiness_and_seats_match_brute_force(tmp_path_factory, seed, tz, grain):
    tables = random_tables(seed)
    ws, raw = make_ws(tmp_path_factory.mktemp("st"), tables, tz)
    ev = local_events(tables, tz)
    ev = ev[ev["account_id"].isin(known_accounts(tables)["account_id"])]
    if grain == "week":
        ev["p"] = ev["week"]
    else:
        ev["p"] = ev["day"].dt.year * 12 + ev["day"].dt.month - 1
    got_r = A.stickiness(ws, grain, periods=3)
    got_w = A.stickiness(raw, grain, periods=3)
    pd.testing.assert_frame_equal(got_r.accounts, got_w.accounts)
    periods = sorted(got_r.trend["period"])
    assert len(periods) == 3
    exp = []
    for (a, p), e in ev[ev["p"].isin(periods)].groupby(["account_id", "p"]):
        users = set(e["user_id"].dropna())
        if not users:
            continue
        ndays = 7 if grain == "week" else e["day"].iloc[0].days_in_month
        dau = sum(len(set(x["user_id"].dropna())) for _, x in e.groupby("day")) / ndays
        exp.append((a, p, len(users), dau))
    got = got_r.accounts
    assert len(got) == len(exp)
    for (a, p, au, dau), (_, r) in zip(sorted(exp), got.iterrows(), strict=True):
        assert (r["account_id"], r["period"], r["active_users"]) == (a, p, au)
        assert math.isclose(r["dau_mean"], dau) and math.isclose(r["stickiness"], dau / au)

    # seats: active users in 30 local days / seats of the lines covering the as-of date
    lo = pd.Timestamp(AS_OF) - pd.Timedelta(days=29)
    win = ev[ev["day"] >= lo]
    s = tables["subscriptions"]
    d = pd.Timestamp(AS_OF)
    cov = s[(s["start_date"] <= d) & (s["end_date"].isna() | (s["end_date"] > d))]
    cov = cov[cov["account_id"].isin(known_accounts(tables)["account_id"])]
    for w in (ws, raw):
        su = A.seat_utilisation(w).accounts.set_index("account_id")
        assert set(su.index) == set(cov["account_id"])
        for a, lines in cov.groupby("account_id"):
            seats = lines["seats"].dropna()
            users = len(set(win.loc[win["account_id"] == a, "user_id"].dropna()))
            r = su.loc[a]
            assert r["active_users"] == users
            if len(seats) and seats.sum() > 0:
                assert r["status"] == "ok" and math.isclose(r["utilisation"],
                                                            users / seats.sum())
            else:
                assert r["status"] == "no_seats" and math.isnan(r["utilisation"])


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), tz=st.sampled_from(ZONES))
def test_time_to_first_use_matches_brute_force(tmp_path_factory, seed, tz):
    tables = random_tables(seed)
    ws, raw = make_ws(tmp_path_factory.mktemp("ttf"), tables, tz)
    ev = local_events(tables, tz)
    asof = pd.Timestamp(AS_OF)
    s = tables["subscriptions"]
    r1 = A.time_to_first_use(ws, "alpha", by=None, within_days=20)
    r2 = A.time_to_first_use(raw, "alpha", by=None, within_days=20)
    pd.testing.assert_frame_equal(r1.accounts, r2.accounts)
    got = r1.accounts.set_index("account_id")
    times, events = [], []
    for a, sd in zip(known_accounts(tables)["account_id"],
                     pd.to_datetime(known_accounts(tables)["signup_date"]), strict=True):
        lines = s[(s["account_id"] == a) & (s["start_date"] <= asof)]
        churn = None
        if len(lines) and not (lines["end_date"].isna() | (lines["end_date"] > asof)).any():
            churn = lines["end_date"].max()
        e = ev[(ev["account_id"] == a) & (ev["feature"] == "alpha")]
        fu = e["day"].min() if len(e) else None
        if fu is not None and (churn is None or fu < churn):
            st_, end = "used", fu
        elif churn is not None:
            st_, end = "churned_before", churn
        else:
            st_, end = "in_progress", asof
        days = max((end - sd).days, 0)
        assert got.loc[a, "status"] == st_ and got.loc[a, "days"] == days, a
        times.append(days)
        events.append(st_ == "used")
    # share within 20 days: 1 - product-limit S(20), computed by hand
    t, e = np.array(times), np.array(events)
    surv = 1.0
    for u in sorted(set(t[e])):
        if u <= 20:
            surv *= 1 - ((t == u) & e).sum() / (t >= u).sum()
    share = r1.groups["share_within"].iloc[0]
    if t.max() >= 20:
        assert math.isclose(share, 1 - surv)


# -- local calendar edges ---------------------------------------------------------------------
@pytest.mark.parametrize("tz", ["Asia/Tokyo", "America/Los_Angeles"])
def test_window_and_weeks_cut_at_local_midnight(tmp_path, tz):
    # 1 min before / after local midnight starting Monday 1 July 2024 (a month end too)
    midnight = pd.Timestamp("2024-07-01 00:00").tz_localize(tz).tz_convert("UTC").tz_localize(None)
    accounts = pd.DataFrame({"account_id": ["a", "b"],
                             "signup_date": [pd.Timestamp("2024-01-01")] * 2,
                             "segment": ["SMB", "SMB"]})
    events = pd.DataFrame({
        "account_id": ["a", "b", "a"],
        "event_at": [midnight - pd.Timedelta(minutes=1), midnight + pd.Timedelta(minutes=1),
                     midnight - pd.Timedelta(days=10)],
        "user_id": ["u1", "u2", "u3"], "feature": ["x", "y", "x"]})
    subs = pd.DataFrame({"account_id": ["a", "b"], "start_date": [pd.Timestamp("2024-01-01")] * 2,
                         "mrr": [1.0, 1.0], "seats": [2, 2]})
    path = write_workspace(tmp_path / "edge.duckdb",
                           {"accounts": accounts, "usage_events": events, "subscriptions": subs},
                           config={"timezone": tz})
    ws = open_workspace(path, as_of="2024-06-30")
    fa = A.feature_adoption(ws, window="1D")
    assert list(fa.features["feature"]) == ["x"]  # b's event is on 1 July, local
    assert list(fa.accounts["account_id"]) == ["a"]
    st_ = A.stickiness(ws, "month", periods=1)
    assert st_.trend["period_label"].tolist() == ["2024-06"]
    assert st_.trend["active_users"].tolist() == [2]  # u1 and u3 in June; u2 in July
    su = A.seat_utilisation(ws, window="30D").accounts.set_index("account_id")
    assert su.loc["a", "active_users"] == 2 and su.loc["b", "active_users"] == 0
    ws7 = open_workspace(path, as_of="2024-07-07")  # the week of 1 July has ended
    tr = A.usage_trend(ws7, weeks=2, min_weeks=2).set_index("account_id")
    assert tr.loc["b", "wau_mean"] == 0.5  # u2 in the week of 1 July only
    assert tr.loc["a", "days_since_use"] == 7


def test_arguments_are_checked(tiny_ws):
    with pytest.raises(ArgumentError):
        A.feature_adoption(tiny_ws, window="ninety")
    with pytest.raises(ArgumentError):
        A.stickiness(tiny_ws, grain="quarter")
    with pytest.raises(ArgumentError):
        A.usage_trend(tiny_ws, weeks=1)
    with pytest.raises(ArgumentError):
        A.time_to_first_use(tiny_ws, "x", clock="launch")
    with pytest.raises(ArgumentError):
        A.features_and_retention(tiny_ws, alpha=1.5)
    with pytest.raises(A.AdoptionError, match="feature nor an event_name"):
        A.feature_adoption(tiny_ws)


def test_accounts_without_seats_are_reported_not_guessed(tiny_ws):
    su = A.seat_utilisation(tiny_ws, as_of="2024-03-01")
    assert set(su.accounts["status"]) == {"no_seats"}
    assert su.accounts["utilisation"].isna().all()
    assert any("no seats column" in n for n in su.notes)


# -- the demo: the planted effects are recovered ----------------------------------------------
@pytest.fixture(scope="module")
def demo_ws(tmp_path_factory):
    from cs_analysis.demo import build_demo

    path = build_demo(tmp_path_factory.mktemp("ad") / "demo.duckdb", accounts=1500, seed=11)
    return open_workspace(path)


def test_demo_non_adopters_of_the_key_feature_churn_faster(demo_ws):
    from cs_analysis.demo import PLANTED

    key = PLANTED["key_feature"]
    res = A.features_and_retention(demo_ws, PLANTED["key_feature_landmark_days"])
    row = res.features.set_index("feature").loc[key]
    assert row["hazard_ratio"] < 0.8 and row["upper"] < 1 and bool(row["significant"])
    assert abs(math.log(row["hazard_ratio"] / PLANTED["key_feature_expected_hr"])) < 0.3
    assert res.features["p_adjusted"].idxmin() == res.features.index[
        res.features["feature"] == key][0]
    assert any("not causation" in n for n in res.notes)


def test_demo_usage_declines_before_churn(demo_ws):
    from cs_analysis.retention import account_lifetimes

    as_of = dt.date(2026, 6, 30)
    tr = A.usage_trend(demo_ws, as_of=as_of)
    churn = account_lifetimes(demo_ws).set_index("account_id")["churn_date"]
    tr["churn"] = tr["account_id"].map(churn)
    soon = (tr["churn"] > pd.Timestamp(as_of)) & (
        tr["churn"] <= pd.Timestamp(as_of) + pd.Timedelta(days=45))
    fading = tr["usage_class"].isin(["declining", "dropped"])
    share_soon = fading[soon].mean()
    share_stay = fading[tr["churn"].isna()].mean()
    assert soon.sum() >= 20
    assert share_soon > 0.45 and share_soon > 2.5 * share_stay
    drops = A.usage_drops(demo_ws, as_of=as_of)
    assert {"mrr", "renewal_date"} <= set(drops.columns)
    assert set(drops["usage_class"]) <= {"declining", "dropped"}


def test_demo_shelfware_accounts_use_few_of_their_seats(demo_ws):
    from cs_analysis.demo import PLANTED

    su = A.seat_utilisation(demo_ws).accounts
    ids = [f"A{i:05d}" for i in range(1, 1501)]
    rng = np.random.default_rng([11, 111])  # the planted draw (demo._seat_base)
    shelf = dict(zip(ids, rng.random(1500) < PLANTED["seat_shelfware_share"], strict=True))
    su["shelf"] = su["account_id"].map(shelf)
    med = su.groupby("shelf")["utilisation"].median()
    assert med[True] < 0.4 * med[False]
    assert (su["status"] == "ok").all()


def test_features_and_retention_matches_lifelines(demo_ws):
    lifelines = pytest.importorskip("lifelines")
    from cs_analysis.retention import account_lifetimes

    res = A.features_and_retention(demo_ws, 60, features=["integrations"])
    lt = account_lifetimes(demo_ws, by=["segment", "employees"])
    lt = lt[lt["lifetime_days"] > 60]
    ev = demo_ws.table("usage_events")
    ev = ev.filter(ev.feature == "integrations")  # the demo workspace is in UTC
    first = ev.group_by("account_id").agg(f=ev.event_at.min().date()).to_pandas()
    first = dict(zip(first["account_id"], pd.to_datetime(first["f"]), strict=True))
    used = [(first.get(a, pd.NaT) - s).days <= 60 if a in first else False
            for a, s in zip(lt["account_id"], lt["signup_date"], strict=True)]
    df = pd.DataFrame({"T": lt["lifetime_days"] - 60, "E": lt["churned"].astype(int),
                       "used": np.array(used, float),
                       "seg_MM": (lt["segment"] == "Mid-Market").astype(float),
                       "seg_Ent": (lt["segment"] == "Enterprise").astype(float),
                       "size": np.log1p(lt["employees"].astype(float))})
    cph = lifelines.CoxPHFitter().fit(df, "T", "E")
    hr = math.exp(cph.params_["used"])
    assert math.isclose(res.features["hazard_ratio"].iloc[0], hr, rel_tol=1e-4)


# -- the dashboard (no browser) ----------------------------------------------------------------
def test_dashboard_filters_change_heatmap_and_drop_list(demo_ws):
    from cs_analysis.dashboard import AdoptionDashboard

    d = AdoptionDashboard(demo_ws)
    assert d.error is None
    heat = d.charts["heatmap"].to_dict()
    drops = d.table.copy()
    assert {"mrr", "renewal_date", "usage_class"} <= set(drops.columns)
    d.filters["segment"].value = "Enterprise"
    assert d.error is None
    assert d.charts["heatmap"].to_dict() != heat
    assert set(d.table["segment"]) <= {"Enterprise"} and len(d.table) < len(drops)
    # the dashboard's numbers are those of the analyses on the scoped workspace
    ws = demo_ws.where(segment="Enterprise")
    exp = A.usage_drops(ws)
    pd.testing.assert_frame_equal(d.table.reset_index(drop=True), exp, check_dtype=False)
    fading = d.kpi("Fading accounts")
    assert fading.value == len(exp)
    su = A.seat_utilisation(ws).accounts
    assert math.isclose(d.kpi("Median seat utilisation").value,
                        su.loc[su["status"] == "ok", "utilisation"].median())
    assert d.csv_href.startswith("data:text/csv")
    d.filters["plan"].value = d.filters["plan"].options[-1]
    assert d.error is None  # an empty selection says so, it does not fail


def test_time_to_first_use_onboarding_clock_follows_the_criteria(demo_ws):
    # the demo's criteria: the kickoff meeting starts the clock, signup when there was none
    res = A.time_to_first_use(demo_ws, "integrations", clock="onboarding", by=None)
    acc = demo_ws.table("accounts").select("account_id", "signup_date",
                                           "kickoff_date").to_pandas()
    exp = pd.to_datetime(acc["kickoff_date"]).fillna(pd.to_datetime(acc["signup_date"]))
    got = res.accounts.set_index("account_id")["clock_start"]
    exp = pd.Series(exp.to_numpy(), index=acc["account_id"]).reindex(got.index)
    assert (pd.to_datetime(got) == exp).all()
    assert res.clock == "onboarding" and 0 < res.groups["share_within"].iloc[0] < 1


# -- the rollups answer any window exactly, and the vectorised Theil-Sen is scipy's ---------
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), tz=st.sampled_from(ZONES),
       as_of=st.sampled_from([dt.date(2024, 5, 1), dt.date(2024, 5, 17), dt.date(2024, 6, 1),
                              dt.date(2024, 3, 31), dt.date(2024, 7, 2)]),
       days=st.sampled_from([1, 3, 10, 31, 45, 90]))
def test_month_rollups_give_raw_event_answers_for_any_window(tmp_path_factory, seed, tz,
                                                             as_of, days):
    # windows inside one month (both edges mid-month), across 2-4 months, starting on a
    # 1st, ending on a month end; as-of weeks that straddle a month (2024-05-01)
    tables = random_tables(seed)
    ws, raw = make_ws(tmp_path_factory.mktemp("win"), tables, tz)
    a = A.feature_adoption(ws, by="segment", window=days, as_of=as_of)
    b = A.feature_adoption(raw, by="segment", window=days, as_of=as_of)
    pd.testing.assert_frame_equal(a.features, b.features)
    pd.testing.assert_frame_equal(a.accounts, b.accounts)
    # independent: distinct users and events per account on the local days of the window
    ev = tables["usage_events"].copy()  # local days, not cut at the module's AS_OF
    ev["day"] = (pd.to_datetime(ev["event_at"]).dt.tz_localize("UTC").dt.tz_convert(tz)
                 .dt.tz_localize(None).dt.normalize())
    ev = ev[(ev["day"] <= pd.Timestamp(as_of))
            & (ev["day"] > pd.Timestamp(as_of) - pd.Timedelta(days=days))]
    ev = ev[ev["account_id"].isin(known_accounts(tables).query(
        "signup_date <= @as_of")["account_id"])]
    exp = {k: (len(set(g["user_id"].dropna())), len(g)) for k, g in ev.groupby("account_id")}
    got = {r.account_id: (r.active_users, r.events) for r in a.accounts.itertuples()}
    assert got == exp
    for fn in (lambda w: A.seat_utilisation(w, as_of=as_of, window=days).accounts,
               lambda w: A.usage_trend(w, weeks=3, min_weeks=2, as_of=as_of),
               lambda w: A.time_to_first_use(w, "beta", by=None, as_of=as_of).accounts):
        pd.testing.assert_frame_equal(fn(ws), fn(raw))
    f1 = A.features_and_retention(ws, 20, as_of=as_of, adjust=["segment"])
    f2 = A.features_and_retention(raw, 20, as_of=as_of, adjust=["segment"])
    pd.testing.assert_frame_equal(f1.features, f2.features)


@settings(max_examples=60, deadline=None)
@given(y=st.lists(st.lists(st.sampled_from([0.0, 0.0, 1.0, 2.0, 3.0, 7.5, -1.0, math.nan]),
                           min_size=12, max_size=12), min_size=1, max_size=20),
       n=st.integers(2, 12))
def test_theil_sen_rows_is_scipy_theilslopes(y, n):
    from scipy.stats import theilslopes

    y = np.array(y)[:, :n]
    got = A.theil_sen_rows(y)
    for row, g in zip(y, got, strict=True):
        x = np.nonzero(~np.isnan(row))[0].astype(float)
        if len(x) < 2:
            assert math.isnan(g)
        else:
            assert g == theilslopes(row[~np.isnan(row)], x)[0]  # exactly the same number
