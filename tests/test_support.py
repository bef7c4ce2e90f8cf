"""Tests of cs_analysis.support against brute force, lifelines and the demo's planted effect.

References: ticket dates with pandas ``tz_convert`` (local calendar), censored durations
built ticket by ticket, Kaplan-Meier percentiles from lifelines (test-only dependency),
phases decided ticket by ticket from the sentences of the module docstring, and the
demo's planted "P1 in the 90 days before a renewal -> 1.7 x churn" recovered from
:func:`open_critical_before_renewal` joined to renewal outcomes.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_renewals import (
    AS_OF,
    ZONES,
    brute_calendar,
    brute_next_renewal,
    covers,
    local_date,
    make_ws,
    random_tables,
)

from cs_analysis import support as sp
from cs_analysis.errors import ArgumentError
from cs_analysis.surveys import ThemeDictionaryError

CRITERIA = {"clock_start": "signup_date",
            "stages": [{"name": "value", "label": "Value", "all": [{"milestone": "value"}]}]}
SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


def lifelines_percentiles(time, event) -> tuple[float, float]:
    from lifelines import KaplanMeierFitter

    time = np.asarray(time, float)
    if not len(time) or not np.asarray(event).any():
        return np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = KaplanMeierFitter().fit(time, np.asarray(event, bool))
    # the textbook rule on lifelines' curve: the first time with S(t) <= 1 - p (with a
    # tolerance: lifelines' own percentile() misses S = 0.5 computed as 0.5000000001)
    curve = k.survival_function_.iloc[:, 0]
    out = []
    for p in (0.5, 0.9):
        hit = curve[curve <= 1 - p + 1e-9]
        out.append(float(hit.index[0]) if len(hit) else np.nan)
    return out[0], out[1]


def brute_durations(t, as_of: dt.date, tz: str):
    """(responded, first-response h, resolved, resolution h), censored at the as-of day end."""
    end = (pd.Timestamp(as_of + dt.timedelta(days=1)).tz_localize(tz).tz_convert("UTC")
           .tz_localize(None))
    o = pd.Timestamp(t["opened_at"])
    res = t["resolved_at"]
    resolved = not pd.isna(res) and pd.Timestamp(res) < end
    res_stop = pd.Timestamp(res) if resolved else end
    fr = t["first_response_at"]
    responded = not pd.isna(fr) and pd.Timestamp(fr) < end
    fr_stop = pd.Timestamp(fr) if responded else res_stop
    h = pd.Timedelta(hours=1)
    return responded, max((fr_stop - o) / h, 0.0), resolved, max((res_stop - o) / h, 0.0)


# -- ticket metrics --------------------------------------------------------------------
@settings(max_examples=8, deadline=None, suppress_health_check=SLOW)
@given(seed=st.integers(0, 2**31), tz=st.sampled_from(ZONES),
       grain=st.sampled_from(["month", "quarter"]),
       by=st.sampled_from([None, "priority", "segment"]))
def test_ticket_metrics_match_brute_force(tmp_path, seed, tz, grain, by):
    tables = random_tables(seed, tz, n_accounts=12)
    ws = make_ws(tmp_path, tables, tz, name=f"t{seed}")
    res = sp.ticket_metrics(ws, by=by, grain=grain)
    tk = tables["support_tickets"].copy()
    acc = tables["accounts"].set_index("account_id")
    freq = "M" if grain == "month" else "Q"
    tk["d"] = [local_date(x, tz) for x in tk["opened_at"]]
    tk = tk[tk["d"] <= AS_OF]
    if tk.empty:
        assert res.table.empty
        return
    tk["p"] = [pd.Period(x, freq) for x in tk["d"]]
    if by == "segment":
        tk["segment"] = tk["account_id"].map(acc["segment"])
    tk["g"] = tk[by].fillna("(missing)") if by else None
    dur = [brute_durations(t, AS_OF, tz) for _, t in tk.iterrows()]
    tk["rp"], tk["fr"], tk["rs"], tk["rh"] = zip(*dur, strict=True)
    table = res.table
    periods = pd.period_range(tk["p"].min(), pd.Period(AS_OF, freq), freq=freq)
    groups = sorted(tk["g"].unique()) if by else [None]
    assert len(table) == len(periods) * len(groups)
    for g in groups:
        for p in periods:
            sel = table["period_label"] == (str(p) if grain == "month"
                                            else f"{p.year}-Q{p.quarter}")
            if by:
                sel &= table[by] == g
            row = table[sel]
            assert len(row) == 1
            row = row.iloc[0]
            x = tk[(tk["p"] == p) & ((tk["g"] == g) if by else True)]
            assert row["tickets"] == len(x)
            assert row["responded"] == int(x["rp"].sum())
            assert row["resolved"] == int(x["rs"].sum())
            for col, (t_, e_) in {"first_response": ("fr", "rp"),
                                  "resolution": ("rh", "rs")}.items():
                med, p90 = lifelines_percentiles(x[t_], x[e_])
                np.testing.assert_allclose(row[f"{col}_median_h"], med, rtol=1e-9, atol=1e-6)
                np.testing.assert_allclose(row[f"{col}_p90_h"], p90, rtol=1e-9, atol=1e-6)
            # backlog: opened by the period's last day (or the as-of day), not resolved then
            last = min(p.end_time.date(), AS_OF)
            y = tk[(tk["g"] == g) if by else np.ones(len(tk), bool)]
            open_ = [d <= last and (pd.isna(r) or local_date(r, tz) > last)
                     for d, r in zip(y["d"], y["resolved_at"], strict=True)]
            assert row["backlog"] == sum(open_)
            cs = x["csat"].dropna()
            assert row["csat_responses"] == len(cs)
            if len(cs):
                assert row["csat_mean"] == pytest.approx(cs.mean())
                assert row["csat_top2"] == pytest.approx((cs >= 4).mean())
            # customers on the period's last day (of the segment when by="segment")
            subs = tables["subscriptions"]
            ids = {a for _, line in subs.iterrows() if covers(line, last)
                   for a in [line["account_id"]]}
            ids = {a for a in ids if acc.loc[a, "signup_date"] <= AS_OF}
            if by == "segment":
                ids = {a for a in ids if (acc.loc[a, "segment"] if not pd.isna(
                    acc.loc[a, "segment"]) else "(missing)") == g}
            assert row["accounts"] == len(ids)


def test_percentiles_agree_with_lifelines_on_demo(small_demo):
    ph = sp.ticket_phases(small_demo)
    res = sp.ticket_metrics(small_demo, by="priority", grain="quarter")
    ph["q"] = [f"{d.year}-Q{(d.month - 1) // 3 + 1}" for d in ph["opened_date"]]
    checked = 0
    for _, row in res.table[res.table["tickets"] >= 5].iterrows():
        x = ph[(ph["q"] == row["period_label"]) & (ph["priority"] == row["priority"])]
        med, p90 = lifelines_percentiles(x["resolution_h"], x["resolved"])
        np.testing.assert_allclose([row["resolution_median_h"], row["resolution_p90_h"]],
                                   [med, p90], rtol=1e-9, atol=1e-6)
        med, p90 = lifelines_percentiles(x["first_response_h"], x["responded"])
        np.testing.assert_allclose([row["first_response_median_h"], row["first_response_p90_h"]],
                                   [med, p90], rtol=1e-9, atol=1e-6)
        checked += 1
    assert checked > 10
    # open tickets are censored, never dropped
    last = res.table[res.table["period_label"] == res.table["period_label"].max()]
    assert (last["resolved"] <= last["tickets"]).all()
    assert last["resolved"].sum() < last["tickets"].sum()


def test_ticket_metrics_arguments(small_demo):
    with pytest.raises(ArgumentError, match="by"):
        sp.ticket_metrics(small_demo, by="colour")
    with pytest.raises(ArgumentError, match="grain"):
        sp.ticket_metrics(small_demo, grain="day")
    with pytest.raises(ArgumentError, match="window_days"):
        sp.ticket_phases(small_demo, window_days=-5)


# -- phases ------------------------------------------------------------------------------
def first_lapse(lines: pd.DataFrame):
    """First day without any subscription after the first stretch of coverage (or None)."""
    spans = sorted(((r["start_date"].date(),
                     None if pd.isna(r["end_date"]) else r["end_date"].date())
                    for _, r in lines.iterrows()),
                   key=lambda s: (s[0], s[1] or dt.date.max))  # open-ended lines last
    end = None
    for start, stop in spans:
        if end is not None and start > end:
            return end  # a gap: coverage lapsed on `end`
        if stop is None:
            return None
        end = stop if end is None else max(end, stop)
    return end


@settings(max_examples=10, deadline=None, suppress_health_check=SLOW)
@given(seed=st.integers(0, 2**31), tz=st.sampled_from(ZONES), window=st.sampled_from([30, 90]))
def test_phases_match_brute_force(tmp_path, seed, tz, window):
    tables = random_tables(seed, tz)
    ws = make_ws(tmp_path, tables, tz, name=f"p{seed}")
    got = sp.ticket_phases(ws, window_days=window, criteria=CRITERIA, min_term_months=3)
    subs = tables["subscriptions"]
    acc = tables["accounts"].set_index("account_id")
    miles = tables["onboarding_milestones"]
    exp = {}
    for _, t in tables["support_tickets"].iterrows():
        d = local_date(t["opened_at"], tz)
        if d > AS_OF:
            continue
        aid = t["account_id"]
        lines = subs[(subs["account_id"] == aid) & (subs["start_date"] <= pd.Timestamp(AS_OF))]
        lines = lines[(lines["end_date"].isna()) | (lines["end_date"] > lines["start_date"])]
        covered = any(covers(line, AS_OF) for _, line in lines.iterrows())
        churn = None if covered or lines.empty else lines["end_date"].max().date()
        m = miles[miles["account_id"] == aid]["completed_at"]
        vdays = [local_date(x, tz) for x in m]
        vdays = [v for v in vdays if acc.loc[aid, "signup_date"] <= v <= AS_OF]
        value = min(vdays) if vdays else None
        # onboarding's rule (metrics.md, churn episodes): value reached on or after the
        # account's first loss of all coverage does not count (churned before value)
        lapse = first_lapse(lines)
        if value is not None and lapse is not None and value >= lapse:
            value = None  # churned before value
        in_window = False
        for _, line in subs[subs["account_id"] == aid].iterrows():
            term = line["term_months"]
            if not covers(line, d) or (1 if pd.isna(term) else term) < 3:
                continue
            r, _ = brute_next_renewal(line, d)
            end = line["end_date"]
            if (pd.isna(end) or r <= end.date()) and (r - d).days <= window:
                in_window = True
        if churn is not None and d >= churn:
            exp[t["ticket_id"]] = "after churn"
        elif value is None or d < value:
            exp[t["ticket_id"]] = "onboarding"
        elif in_window:
            exp[t["ticket_id"]] = "renewal window"
        else:
            exp[t["ticket_id"]] = "adoption"
    assert dict(zip(got["ticket_id"], got["phase"], strict=True)) == exp


# -- critical tickets before renewal ----------------------------------------------------
@settings(max_examples=12, deadline=None, suppress_health_check=SLOW)
@given(seed=st.integers(0, 2**31), tz=st.sampled_from(ZONES),
       horizon=st.sampled_from([0, 30, 120]), within=st.sampled_from([None, 90]))
def test_open_critical_before_renewal_matches_brute_force(tmp_path, seed, tz, horizon, within):
    tables = random_tables(seed, tz, n_accounts=12)
    ws = make_ws(tmp_path, tables, tz, name=f"o{seed}")
    got = sp.open_critical_before_renewal(ws, horizon, ("P1", "P2"),
                                          opened_within_days=within)
    cal = brute_calendar(tables, AS_OF, horizon, tz)
    exp = set()
    if not cal.empty:
        ren = dict(zip(cal["account_id"], cal["renewal_date"], strict=True))
        for _, t in tables["support_tickets"].iterrows():
            d = local_date(t["opened_at"], tz)
            if t["account_id"] not in ren or t["priority"] not in ("P1", "P2") or d > AS_OF:
                continue
            r = local_date(t["resolved_at"], tz)
            if within is None:
                ok = r is None or r > AS_OF
            else:
                ok = (ren[t["account_id"]].date() - d).days <= within
            if ok:
                exp.add(t["ticket_id"])
    assert set(got["ticket_id"]) == exp
    if len(got):
        assert (got["age_days"] >= 0).all()
        if within is None:
            assert set(got["status"]) == {"open"}


def test_planted_p1_before_renewal_effect(tmp_path):
    """The demo's P1-before-renewal churn ratio, recovered from monthly snapshots.

    Each month's first day is an as-of date; the renewals of that month are the
    calendar, a P1 opened in the 90 days before the renewal (and visible on the first
    day) marks the renewal, and the outcome is whether the account is still covered on
    its renewal date. The risk ratio is stratified by term and segment (Mantel-Haenszel);
    planted hazard ratio 1.7 (about 1.5-1.7 as a churn-probability ratio).
    """
    from cs_analysis.demo import PLANTED, generate
    from cs_analysis.renewals import renewal_calendar
    from cs_analysis.retention import mrr_at

    tables = generate(accounts=3000, seed=11, usage=False)
    ws = make_ws(tmp_path, tables, as_of=dt.date(2026, 10, 31), name="planted")
    rows = []
    for m in pd.period_range("2023-06", "2026-09", freq="M"):
        first = m.start_time.date()
        h = (m.end_time.date() - first).days
        cal = renewal_calendar(ws, h, as_of=first)
        crit = sp.open_critical_before_renewal(ws, h, ("P1",), as_of=first,
                                               opened_within_days=PLANTED["p1_window_days"])
        cal["p1"] = cal["account_id"].isin(crit["account_id"])
        rows.append(cal[["account_id", "renewal_date", "term_months", "segment", "p1"]])
    r = pd.concat(rows, ignore_index=True)
    after = mrr_at(ws, r.rename(columns={"renewal_date": "date"})[["account_id", "date"]])
    r["churned"] = after["mrr"].to_numpy() == 0
    num = den = 0.0
    var_num = var_den = 0.0
    for _, g in r.groupby(["term_months", "segment"]):
        n = len(g)
        a, n1 = g.loc[g["p1"], "churned"].sum(), g["p1"].sum()
        c, n0 = g.loc[~g["p1"], "churned"].sum(), (~g["p1"]).sum()
        num += a * n0 / n
        den += c * n1 / n
        var_num += a
        var_den += c
    rr = num / den
    se = np.sqrt(1 / var_num + 1 / var_den)  # rough: events per arm
    lo, hi = rr * np.exp(-1.96 * se), rr * np.exp(1.96 * se)
    print(f"P1-before-renewal churn ratio {rr:.2f} [{lo:.2f}, {hi:.2f}] over {len(r)} "
          f"renewals ({int(r['p1'].sum())} with a P1)")
    assert lo < PLANTED["p1_before_renewal_churn_hr"] < hi
    assert lo > 1.2


# -- expansion signals -------------------------------------------------------------------
def test_expansion_signals_find_english_and_japanese_leads(tmp_path):
    base = random_tables(5)
    acc = base["accounts"]
    aid = acc["account_id"].tolist()
    texts = ["We need a Salesforce integration for the sales team.",
             "The Salesforce integration breaks often.",  # a complaint, not a lead
             "来期は他拠点にも展開したいので、ライセンス追加を相談したい",
             "Ｗｅ ｗａｎｔ ｍｏｒｅ ｓｅａｔｓ",  # full width
             "Great product."]
    base["survey_responses"] = pd.DataFrame({
        "response_id": [f"R{i}" for i in range(len(texts))],
        "account_id": aid[:len(texts)], "survey": "nps", "score": 9.0,
        "responded_at": pd.to_datetime(["2024-06-01 10:00"] * len(texts)),
        "comment": texts})
    base["feature_requests"] = pd.DataFrame({
        "request_id": ["F1", "F2"], "account_id": aid[:2],
        "title": ["kintone連携", "Dark mode"],
        "created_at": pd.to_datetime(["2024-07-05 10:00", "2024-05-01 10:00"])})
    ws = make_ws(tmp_path, base)
    got = sp.expansion_signals(ws)
    pairs = set(zip(got["record_id"], got["signal"], strict=True))
    assert pairs == {("R0", "api_integration"), ("R2", "new_sites"), ("R2", "more_seats"),
                     ("R3", "more_seats")}  # F1 is after the as-of date
    row = got[got["record_id"] == "R3"].iloc[0]
    assert row["phrase"] == "more seats" and row["source"] == "survey comment"
    assert set(got.columns) >= {"account_id", "mrr", "phrase", "signal_label", "text"}
    later = sp.expansion_signals(ws, as_of="2024-07-31")
    assert ("F1", "api_integration") in set(zip(later["record_id"], later["signal"],
                                                strict=True))
    assert sp.expansion_signals(ws, days=1).empty


def test_expansion_dictionary_is_validated(tmp_path):
    bad = tmp_path / "signals.yml"
    bad.write_text("themes:\n  more_seats:\n    keyword: [seats]\n", encoding="utf-8")
    ws = make_ws(tmp_path, random_tables(2))
    with pytest.raises(ThemeDictionaryError, match="line 3"):
        sp.expansion_signals(ws, dictionary=bad)


def test_default_dictionary_has_the_four_kinds():
    d = sp._signal_dictionary(sp.DEFAULT_SIGNALS)
    assert d.names == ["more_seats", "new_sites", "another_product", "api_integration"]
