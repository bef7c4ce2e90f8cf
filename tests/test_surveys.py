"""Tests of cs_analysis.surveys: scores, intervals, dedup, comparisons, drivers, themes,
curated voices, outcomes, feature requests, the survey charts and the dashboard.

Expected values come from textbook formulas typed out here (with the source named), from
hand-counted small workspaces built in code, from independent brute-force pandas / numpy
/ scipy computations that share no code with the module, or from the effects the demo
generator plants (cs_analysis.demo.PLANTED).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy import stats

from cs_analysis import charts, demo
from cs_analysis import surveys as sv
from cs_analysis.dashboard import ALL, VoiceOfCustomerDashboard
from cs_analysis.surveys import SurveyError, ThemeDictionaryError
from cs_analysis.surveys import _base as sv_base
from cs_analysis.surveys import outcomes as sv_outcomes
from cs_analysis.surveys import voices as sv_voices
from cs_analysis.workspace import WorkspaceError, open_workspace, write_workspace

Z95 = 1.959963984540054
AS_OF = dt.date(2024, 12, 31)


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


# == a small workspace, counted by hand =========================================================
def survey_tables() -> dict[str, pd.DataFrame]:
    d = dt.date
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4"],
        "signup_date": [d(2024, 1, 1)] * 4,
        "account_name": ["Acme", "Beta", "ガンマ株式会社", "Delta"],
        "segment": ["Enterprise", "SMB", "SMB", "Mid-Market"],
    })
    subs = pd.DataFrame({
        "account_id": ["A1", "A2", "A3", "A3", "A4"],
        "start_date": [d(2024, 1, 1), d(2024, 1, 1), d(2024, 1, 1), d(2024, 6, 1),
                       d(2024, 1, 1)],
        "end_date": [None, d(2024, 9, 1), None, None, None],
        "mrr": [1000.0, 100.0, 200.0, 300.0, 500.0],
    })
    stakeholders = pd.DataFrame({
        "account_id": ["A1", "A1", "A2", "A3", "A4"],
        "person_id": ["A1-P1", "A1-P2", "A2-P1", "A3-P1", "A4-P1"],
        "role": ["executive sponsor", "owner", "owner", "admin", "owner"],
        "name": ["Ann", "Bob", "Cid", "大和 太郎", "Eve"],
        "domain": ["business", "technical", "business", "technical", "business"],
    })
    R = []  # (id, account, respondent, role, survey, score, at, touchpoint, comment)

    def add(rid, acc, person, role, survey, score, at, comment=None, tp=None):
        R.append((rid, acc, person, role, survey, float(score), ts(at),
                  tp or {"nps": "periodic", "csat": "support", "ces": "onboarding"}[survey],
                  comment))

    # NPS, 2024Q1 ---------------------------------------------------------------------
    add("R01", "A1", "A1-P1", "executive sponsor", "nps", 9, "2024-02-10 09:00",
        "Great reporting, the dashboard is easy to share.")
    add("R02", "A1", "A1-P1", "executive sponsor", "nps", 10, "2024-03-20 09:00",
        "Reports are excellent.")                     # same person, same wave: wins
    add("R03", "A1", "A1-P2", "owner", "nps", 6, "2024-02-15 09:00",
        "Too slow with large data, because of the volume.")
    add("R04", "A2", "A2-P1", "owner", "nps", 3, "2024-02-20 09:00",
        "料金が高いです。サポートの返答も遅い。")
    add("R05", "A3", "A3-P1", "admin", "nps", 8, "2024-02-25 09:00")
    add("R06", "A4", None, "heavy user", "nps", 7, "2024-03-01 09:00", "   ")
    add("R07", "A4", None, "heavy user", "nps", 0, "2024-03-02 09:00", "Nothing works.")
    # NPS, 2024Q2 ---------------------------------------------------------------------
    add("R08", "A1", "A1-P1", "executive sponsor", "nps", 9, "2024-05-10 09:00",
        "Setup was quick; onboarding went well.")
    add("R09", "A3", "A3-P1", "admin", "nps", 10, "2024-05-11 09:00", "ＳＬＡＣＫ連携が便利です")
    add("R10", "A2", "A2-P1", "owner", "nps", 5, "2024-05-12 09:00", "The price per user is high.")
    add("R11", "A4", "A4-P1", "owner", "nps", 2, "2024-05-20 10:00", "ｻﾎﾟｰﾄが遅い")
    add("R12", "A4", "A4-P1", "owner", "nps", 9, "2024-05-20 10:00", "Support is great.")  # tie
    # NPS, 2024Q3 and Q4 (A2 churned on 2024-09-01) ----------------------------------------
    add("R13", "A1", "A1-P1", "executive sponsor", "nps", 10, "2024-08-10 09:00")
    add("R14", "A3", "A3-P1", "admin", "nps", 9, "2024-08-11 09:00")
    add("R15", "A4", "A4-P1", "owner", "nps", 6, "2024-08-12 09:00")
    add("R16", "A1", "A1-P2", "owner", "nps", 4, "2024-11-10 09:00", "動作が重く、使い勝手が悪い")
    add("R17", "A4", "A4-P1", "owner", "nps", 8, "2025-01-05 09:00")  # after the as-of date
    # CSAT (1-5) and CES (1-7) ---------------------------------------------------------------
    for i, (acc, person, score, at) in enumerate([
            ("A1", "A1-P2", 5, "2024-03-01"), ("A2", "A2-P1", 2, "2024-03-05"),
            ("A3", "A3-P1", 4, "2024-03-07"), ("A4", "A4-P1", 3, "2024-03-09"),
            ("A1", "A1-P2", 1, "2024-03-30"), ("A3", "A3-P1", 5, "2024-06-01")]):
        add(f"C{i:02d}", acc, person, "owner", "csat", score, at,
            "Support answered the same day." if score >= 4 else None)
    for i, (acc, person, score, at) in enumerate([
            ("A1", "A1-P2", 6, "2024-02-01"), ("A2", "A2-P1", 2, "2024-02-02"),
            ("A3", "A3-P1", 5, "2024-02-03"), ("A4", "A4-P1", 7, "2024-02-04")]):
        add(f"E{i:02d}", acc, person, "owner", "ces", score, at)
    sr = pd.DataFrame(R, columns=["response_id", "account_id", "respondent_id",
                                  "respondent_role", "survey", "score", "responded_at",
                                  "touchpoint", "comment"])
    nps_rows = sr["survey"] == "nps"
    rng = np.random.default_rng(3)
    for name in ("attr_value", "attr_support"):
        sr[name] = np.where(nps_rows, rng.integers(1, 6, len(sr)).astype(float), np.nan)
    fr = pd.DataFrame({
        "request_id": [f"F{i}" for i in range(1, 9)],
        "account_id": ["A1", "A1", "A2", "A3", "A4", "A1", "A3", "A4"],
        "title": ["SSO (SAML)", "sso  (saml)", "SSO (SAML)", "Slack alerts", "Slack alerts",
                  "Dark mode", "Dark mode", "Dark mode"],
        "created_at": [ts("2024-03-01"), ts("2024-04-01"), ts("2024-03-10"), ts("2024-05-01"),
                       ts("2024-05-02"), ts("2024-06-01"), ts("2024-06-02"),
                       ts("2025-02-01")],  # F8: after the as-of date
        "person_id": ["A1-P1", "A1-P2", "A2-P1", "A3-P1", "A4-P1", "A1-P1", "A3-P1", "A4-P1"],
        "source": ["meeting", "survey", "ticket", "survey", "meeting", "roundtable", "survey",
                   "meeting"],
        "theme": ["security", "security", "security", "integrations", "integrations",
                  "ease_of_use", "ease_of_use", "ease_of_use"],
        "status": ["open", "planned", "open", "open", "open", "declined", "declined", "open"],
        "status_at": [ts("2024-03-01"), ts("2024-07-01"), ts("2024-03-10"), ts("2024-05-01"),
                      ts("2024-05-02"), ts("2024-07-01"), ts("2024-07-02"),
                      ts("2025-02-01")],
    })
    health = pd.DataFrame({
        "account_id": ["A1", "A1", "A3", "A4"],
        "as_of": [d(2024, 6, 30), d(2024, 12, 1), d(2024, 12, 1), d(2024, 12, 1)],
        "csm_rating": [1, 4, 2, 5],
    })
    return {"accounts": accounts, "subscriptions": subs, "stakeholders": stakeholders,
            "survey_responses": sr, "feature_requests": fr, "health_inputs": health}


@pytest.fixture(scope="module")
def tables():
    return survey_tables()


@pytest.fixture(scope="module")
def sws(tmp_path_factory, tables):
    path = write_workspace(tmp_path_factory.mktemp("surveys") / "s.duckdb", tables,
                           config={"as_of": AS_OF.isoformat()})
    return open_workspace(path)


@pytest.fixture(scope="module")
def book_ws(tmp_path_factory):
    """The default demo book (3000 accounts, seed 42), without usage events."""
    t = demo.generate(demo.DEFAULT_ACCOUNTS, seed=42, usage=False)
    path = write_workspace(tmp_path_factory.mktemp("book") / "book.duckdb", t,
                           config={"as_of": demo.DEMO_AS_OF.isoformat()})
    return open_workspace(path)


# -- independent brute force -----------------------------------------------------------------
def brute_dedup(sr: pd.DataFrame, as_of=AS_OF) -> pd.DataFrame:
    """metrics.md's rule, literally: per respondent, survey and calendar quarter (pandas
    Period), keep the latest response (the larger response_id on a tie); keep every
    response without a respondent id."""
    sr = sr[sr["responded_at"] < pd.Timestamp(as_of) + pd.Timedelta(days=1)].copy()
    sr["q"] = sr["responded_at"].dt.to_period("Q")
    known = sr[sr["respondent_id"].notna()]
    latest = (known.sort_values(["responded_at", "response_id"])
              .groupby(["account_id", "respondent_id", "survey", "q"]).tail(1))
    return pd.concat([latest, sr[sr["respondent_id"].isna()]]).sort_index()


def brute_nps(scores) -> tuple[float, float, float, float]:
    s = list(scores)
    n = len(s)
    p = sum(1 for x in s if x >= 9) / n
    d = sum(1 for x in s if x <= 6) / n
    nps = 100 * (p - d)
    se = 100 * math.sqrt((p + d - (p - d) ** 2) / n)  # delta method (metrics.md)
    return nps, se, max(nps - Z95 * se, -100), min(nps + Z95 * se, 100)


# == NPS, CSAT, CES ============================================================================
def test_nps_textbook_example_delta_method():
    # 5 promoters, 2 passives, 3 detractors: NPS = 20; Var = (.5 + .3 - .2**2) / 10 = .076
    frame = pd.DataFrame({"score": [10, 9, 9, 10, 9, 8, 7, 6, 0, 3]})
    r = sv.nps(frame).iloc[0]
    assert (r["promoters"], r["passives"], r["detractors"], r["responses"]) == (5, 2, 3, 10)
    assert r["nps"] == pytest.approx(20.0)
    assert r["se"] == pytest.approx(100 * math.sqrt(0.076))
    assert r["lower"] == pytest.approx(20 - Z95 * 27.5680975, abs=1e-6)
    assert r["upper"] == pytest.approx(20 + Z95 * 27.5680975, abs=1e-6)
    assert r["pct_promoters"] == 0.5 and r["pct_detractors"] == 0.3
    assert bool(r["small_sample"]) is True


def test_nps_interval_is_clipped_to_the_scale():
    r = sv.nps(pd.DataFrame({"score": [10] * 9 + [0]})).iloc[0]  # NPS 80, se 18.97
    assert r["nps"] == pytest.approx(80) and r["upper"] == 100
    assert r["lower"] == pytest.approx(80 - Z95 * 100 * math.sqrt((0.9 + 0.1 - 0.64) / 10))


def test_csat_wilson_matches_the_textbook_formula():
    # 8 of 10 in the top-2 box (4-5 on 1-5): Wilson (1927) score interval, by hand
    frame = pd.DataFrame({"score": [5, 5, 4, 4, 4, 5, 4, 4, 2, 3]})
    r = sv.csat(frame).iloc[0]
    n, p, z = 10, 0.8, Z95
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert r["top2_box"] == 8 and r["csat"] == pytest.approx(0.8)
    assert (r["lower"], r["upper"]) == pytest.approx((centre - half, centre + half))
    assert (round(r["lower"], 3), round(r["upper"], 3)) == (0.490, 0.943)
    assert r["mean_score"] == pytest.approx(4.0)


def test_csat_and_ces_use_the_configured_scale(tmp_path, tables):
    # a 1-7 CSAT scale makes the top-2 box 6-7
    frame = pd.DataFrame({"survey": "csat", "score": [7, 6, 5, 5, 1]})
    assert sv.csat(frame, scale=(1, 7)).iloc[0]["top2_box"] == 2
    path = write_workspace(tmp_path / "scale.duckdb", tables,
                           config={"as_of": AS_OF.isoformat(),
                                   "survey_scales": {"csat": [1, 10]}})
    ws = open_workspace(path)
    r = sv.csat(ws).iloc[0]  # scores 5,2,4,3,(1 or 5),5 on 1-10: none reaches 9
    assert r["top2_box"] == 0


def test_ces_t_interval_matches_scipy():
    scores = [6, 2, 5, 7, 4, 4, 6]
    r = sv.ces(pd.DataFrame({"score": scores})).iloc[0]
    lo, hi = stats.t.interval(0.95, len(scores) - 1, loc=np.mean(scores),
                              scale=stats.sem(scores))
    assert r["ces"] == pytest.approx(np.mean(scores))
    assert (r["lower"], r["upper"]) == pytest.approx((lo, hi))
    assert r["top2_box"] == 3  # 6-7 on the default 1-7 scale
    one = sv.ces(pd.DataFrame({"score": [5]})).iloc[0]
    assert one["ces"] == 5 and np.isnan(one["lower"])


def test_dedup_latest_wins_per_respondent_and_wave(sws, tables):
    r = sv.responses(sws, "nps")
    ids = set(r["response_id"])
    assert "R02" in ids and "R01" not in ids      # same person, same quarter: latest wins
    assert {"R06", "R07"} <= ids                  # no respondent id: both count
    assert "R12" in ids and "R11" not in ids      # same time: the larger response_id wins
    assert "R08" in ids                           # another quarter counts again
    assert "R17" not in ids                       # after the as-of date
    expected = brute_dedup(tables["survey_responses"])
    assert ids == set(expected.loc[expected["survey"] == "nps", "response_id"])
    every = sv.responses(sws, "nps", dedup=False)
    assert {"R01", "R11"} <= set(every["response_id"])
    # a yearly wave merges R08 into R02's respondent-year: only R13 (Aug) is kept for A1-P1
    yearly = sv.responses(sws, "nps", wave="year")
    assert set(yearly.loc[yearly["respondent_id"] == "A1-P1", "response_id"]) == {"R13"}


def test_responses_carry_account_and_stakeholder_columns(sws):
    r = sv.responses(sws, "nps").set_index("response_id")
    assert r.loc["R04", "segment"] == "SMB" and r.loc["R04", "account_name"] == "Beta"
    assert r.loc["R03", "domain"] == "technical" and r.loc["R03", "respondent_name"] == "Bob"
    assert pd.isna(r.loc["R06", "domain"])
    assert r.loc["R02", "wave_label"] == "2024-Q1"
    assert list(r.loc[["R02", "R05", "R03"], "category"]) == ["promoter", "passive", "detractor"]
    c = sv.responses(sws, "csat").set_index("response_id")
    assert list(c.loc[["C02", "C03", "C01"], "category"]) == ["positive", "neutral", "negative"]


def test_a_respondent_id_reused_by_another_account_is_another_respondent(tmp_path, tables):
    # person ids are unique within an account (as stakeholders are): "p1" at two customers
    # is two people, each with their own latest response, whatever the scope.
    t = {k: v.copy() for k, v in tables.items()}
    sr = t["survey_responses"]
    a1, a2 = sorted(sr["account_id"].unique())[:2]
    both = sr.index[(sr["survey"] == "nps") & sr["account_id"].isin([a1, a2])
                    & sr["respondent_id"].notna()]
    sr.loc[both, "respondent_id"] = "p1"
    t["stakeholders"] = t["stakeholders"].iloc[0:0]
    ws = open_workspace(write_workspace(tmp_path / "reuse.duckdb", t,
                                        config={"as_of": AS_OF.isoformat()}))
    kept = brute_dedup(sr)
    kept = kept[kept["survey"] == "nps"]
    got = sv.responses(ws, "nps")
    assert sorted(got["response_id"]) == sorted(kept["response_id"])
    assert set(got.loc[got["respondent_id"] == "p1", "account_id"]) == {a1, a2}
    one = sv.responses(ws.where(accounts=[a1]), "nps")
    assert sorted(one["response_id"]) == sorted(got.loc[got["account_id"] == a1,
                                                        "response_id"])
    upto = sr[(sr["survey"] == "nps")
              & (sr["responded_at"] < pd.Timestamp(AS_OF) + pd.Timedelta(days=1))]
    assert sorted(sv_base.dedup_frame(upto, "quarter")["response_id"]) == \
        sorted(kept["response_id"])


def test_dedup_of_a_frame_matches_the_engine(sws, tables):
    raw = tables["survey_responses"]
    from_frame = sv.nps(raw, grain="quarter", as_of=AS_OF)
    from_ws = sv.nps(sws, grain="quarter")
    cols = ["period", "responses", "promoters", "passives", "detractors", "nps", "lower"]
    pd.testing.assert_frame_equal(from_frame[cols], from_ws[cols])


def test_nps_by_quarter_matches_brute_force(sws, tables):
    kept = brute_dedup(tables["survey_responses"])
    kept = kept[kept["survey"] == "nps"]
    got = sv.nps(sws, grain="quarter").set_index("period_label")
    assert list(got.index) == ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
    for q, g in kept.groupby(kept["q"].astype(str).str.replace("Q", "-Q")):
        exp = brute_nps(g["score"])
        row = got.loc[q]
        assert (row["nps"], row["se"], row["lower"], row["upper"]) == pytest.approx(exp)
        assert row["accounts"] == g["account_id"].nunique()
    # 2024Q1 by hand: 10, 6, 3, 8, 7, 0 -> 1 promoter, 3 detractors of 6 -> -33.3
    assert got.loc["2024-Q1", "nps"] == pytest.approx(-100 / 3)
    assert got.loc["2024-Q1", "period_start"] == pd.Timestamp("2024-01-01")


def test_scores_by_group_match_brute_force_on_the_demo(small_demo):
    sr = small_demo.survey_responses.to_pandas()
    acc = small_demo.accounts.to_pandas()[["account_id", "segment"]]
    kept = brute_dedup(sr, small_demo.as_of).merge(acc, on="account_id")
    got = sv.nps(small_demo, by=["segment", "respondent_role"]).set_index(
        ["segment", "respondent_role"])
    nps_rows = kept[kept["survey"] == "nps"]
    for key, g in nps_rows.groupby(["segment", "respondent_role"]):
        assert got.loc[key, "responses"] == len(g)
        assert got.loc[key, "nps"] == pytest.approx(brute_nps(g["score"])[0])
    cs = sv.csat(small_demo, by="segment").set_index("segment")
    for seg, g in kept[kept["survey"] == "csat"].groupby("segment"):
        assert cs.loc[seg, "csat"] == pytest.approx((g["score"] >= 4).mean())
    ce = sv.ces(small_demo, grain="year").set_index("period")
    for year, g in kept[kept["survey"] == "ces"].groupby(kept["responded_at"].dt.year):
        assert ce.loc[year, "ces"] == pytest.approx(g["score"].mean())
        assert ce.loc[year, "sd"] == pytest.approx(g["score"].std(ddof=1))


def test_scoped_workspace_scores_only_its_accounts(small_demo):
    ent = sv.nps(small_demo.where(segment="Enterprise")).iloc[0]
    by = sv.nps(small_demo, by="segment").set_index("segment")
    assert ent["responses"] == by.loc["Enterprise", "responses"]
    assert ent["nps"] == pytest.approx(by.loc["Enterprise", "nps"])


def test_bootstrap_intervals(small_demo):
    delta = sv.nps(small_demo).iloc[0]
    boot = sv.nps(small_demo, ci="bootstrap", n_boot=4000, seed=1).iloc[0]
    # resampling responses reproduces the delta-method standard error
    assert boot["se"] == pytest.approx(delta["se"], rel=0.1)
    assert boot["lower"] < delta["nps"] < boot["upper"]
    again = sv.nps(small_demo, ci="bootstrap", n_boot=4000, seed=1).iloc[0]
    assert (again["lower"], again["upper"]) == (boot["lower"], boot["upper"])
    # respondents of one account answer alike: resampling accounts widens the interval
    acc = sv.nps(small_demo, ci="account_bootstrap", n_boot=2000, seed=1).iloc[0]
    assert acc["se"] > 1.5 * delta["se"]
    cs = sv.csat(small_demo, ci="bootstrap", n_boot=4000, seed=2).iloc[0]
    wil = sv.csat(small_demo).iloc[0]
    assert cs["lower"] == pytest.approx(wil["lower"], abs=0.01)
    ce = sv.ces(small_demo, ci="bootstrap", n_boot=4000, seed=2).iloc[0]
    t = sv.ces(small_demo).iloc[0]
    assert ce["upper"] == pytest.approx(t["upper"], abs=0.05)


def test_empty_selection_gives_one_row_without_a_score():
    frame = pd.DataFrame({"survey": ["csat"], "score": [4.0]})
    with pytest.raises(SurveyError, match="no responses to survey 'nps'"):
        sv.nps(frame)
    r = sv.nps(pd.DataFrame({"score": pd.Series([], dtype=float)})).iloc[0]
    assert r["responses"] == 0 and np.isnan(r["nps"]) and bool(r["small_sample"])


# == comparisons ===============================================================================
def test_compare_nps_is_a_z_test_on_delta_variances():
    a = [10] * 6 + [8] * 2 + [3] * 2          # NPS 40
    b = [9] * 3 + [7] * 3 + [2] * 4           # NPS -10
    frame = pd.DataFrame({"score": a + b, "g": ["a"] * 10 + ["b"] * 10})
    c = sv.compare(frame, "g").iloc[0]
    na, sa, _, _ = brute_nps(a)
    nb, sb, _, _ = brute_nps(b)
    se = math.sqrt(sa ** 2 + sb ** 2)
    assert c["difference"] == pytest.approx(na - nb) == pytest.approx(50)
    assert c["se"] == pytest.approx(se)
    assert c["p_value"] == pytest.approx(2 * stats.norm.sf(50 / se))
    assert (c["lower"], c["upper"]) == pytest.approx((50 - Z95 * se, 50 + Z95 * se))
    assert bool(c["small_sample"]) and "fewer than 30 responses" in c["note"]


def test_compare_csat_newcombe_interval_and_pooled_z_test():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II example (f): 56/70 vs 48/80;
    # method 10 (hybrid score) interval 0.0524 to 0.3339
    a = [5] * 56 + [2] * 14
    b = [4] * 48 + [1] * 32
    frame = pd.DataFrame({"score": a + b, "g": ["a"] * 70 + ["b"] * 80})
    c = sv.compare(frame, "g", "csat").iloc[0]
    assert c["difference"] == pytest.approx(56 / 70 - 48 / 80)
    assert (round(c["lower"], 4), round(c["upper"], 4)) == (0.0524, 0.3339)
    pooled = 104 / 150
    z = (0.8 - 0.6) / math.sqrt(pooled * (1 - pooled) * (1 / 70 + 1 / 80))
    assert c["statistic"] == pytest.approx(z)
    assert c["p_value"] == pytest.approx(2 * stats.norm.sf(z))


def test_compare_ces_is_welch(small_demo):
    c = sv.compare(small_demo, "domain", "ces").iloc[0]
    r = sv.responses(small_demo, "ces")
    a = r.loc[r["domain"] == c["group_a"], "score"]
    b = r.loc[r["domain"] == c["group_b"], "score"]
    t = stats.ttest_ind(a, b, equal_var=False)
    assert c["statistic"] == pytest.approx(t.statistic)
    assert c["p_value"] == pytest.approx(t.pvalue)
    ci = t.confidence_interval(0.95)
    assert (c["lower"], c["upper"]) == pytest.approx((ci.low, ci.high))


def test_compare_corrects_for_multiple_comparisons_with_holm(small_demo):
    c = sv.compare(small_demo, "respondent_role")
    assert len(c) == 10  # five roles, every pair
    p = c["p_value"].to_numpy()
    order = np.argsort(p)
    m = len(p)
    holm = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):  # Holm (1979): step-down, monotone
        running = max(running, min(1.0, (m - rank) * p[i]))
        holm[i] = running
    assert c["p_adjusted"].to_numpy() == pytest.approx(holm)
    assert (c["significant"] == (c["p_adjusted"] < 0.05)).all()
    none = sv.compare(small_demo, "respondent_role", correction="none")
    assert (none["p_adjusted"] == none["p_value"]).all()
    assert (c["p_adjusted"] >= c["p_value"] - 1e-15).all()


@settings(max_examples=200, deadline=None)
@given(hst.lists(hst.sampled_from([0.0, 1e-4, 0.01, 0.02, 0.04, 0.3, 0.5, 1.0])
                | hst.floats(0, 1), min_size=1, max_size=30))
def test_holm_matches_statsmodels_with_ties_and_extremes(p):
    from statsmodels.stats.multitest import multipletests

    assert sv.holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-12)


def test_compare_flags_small_groups_instead_of_hiding_them(small_demo):
    ent = small_demo.where(segment="Enterprise")
    c = sv.compare(ent, "respondent_role", small_sample=80)
    counts = sv.nps(ent, by="respondent_role")
    small = set(counts.loc[counts["responses"] < 80, "respondent_role"])
    assert small and small != set(counts["respondent_role"]), "the test needs both kinds"
    for _, row in c.iterrows():
        has_small = row["group_a"] in small or row["group_b"] in small
        assert bool(row["small_sample"]) == has_small
        assert ("fewer than 80 responses" in row["note"]) == has_small
        assert np.isfinite(row["p_value"])  # still tested, not hidden
    groups = set(c["group_a"]) | set(c["group_b"])
    assert groups == set(counts["respondent_role"])


def test_compare_periods_consecutive_and_reference(sws):
    c = sv.compare(sws, "period", grain="quarter")
    assert list(zip(c["group_a"], c["group_b"], strict=True)) == [
        ("2024-Q2", "2024-Q1"), ("2024-Q3", "2024-Q2"), ("2024-Q4", "2024-Q3")]
    q = sv.nps(sws, grain="quarter").set_index("period_label")
    assert c.iloc[0]["difference"] == pytest.approx(q.loc["2024-Q2", "nps"] - q.loc["2024-Q1",
                                                                                 "nps"])
    r = sv.compare(sws, "segment", pairs="reference", reference="SMB")
    assert set(r["group_b"]) == {"SMB"} and set(r["group_a"]) == {"Enterprise", "Mid-Market"}
    w = sv.compare(sws, "segment", grain="year")
    assert set(w["period_label"]) == {"2024"} and len(w) == 3


def test_compare_periods_within_each_segment(small_demo):
    c = sv.compare(small_demo, "period", grain="year", within="segment")
    per = sv.nps(small_demo, by="segment", grain="year")
    for _, row in c.iterrows():
        g = per[per["segment"] == row["segment"]].set_index("period_label")
        assert row["difference"] == pytest.approx(g.loc[row["group_a"], "nps"]
                                                  - g.loc[row["group_b"], "nps"])
        assert int(row["group_a"]) == int(row["group_b"]) + 1
    assert len(c) == sum(len(g) - 1 for _, g in per.groupby("segment"))


def test_account_bootstrap_comparison_is_more_cautious(small_demo):
    a = sv.compare(small_demo, "segment")
    b = sv.compare(small_demo, "segment", ci="account_bootstrap", n_boot=1000)
    assert (b["se"] > a["se"]).all()
    assert (b["difference"] == a["difference"]).all()


# == drivers ===================================================================================
def test_drivers_ols_matches_least_squares(sws, tables):
    d = sv.drivers(sws, robust="none").set_index("attribute")
    r = sv.responses(sws, "nps")
    x = np.column_stack([np.ones(len(r)), r["attr_value"], r["attr_support"]])
    beta, *_ = np.linalg.lstsq(x, r["score"].to_numpy(), rcond=None)
    assert d.loc["attr_value", "effect"] == pytest.approx(beta[1])
    assert d.loc["attr_support", "effect"] == pytest.approx(beta[2])
    resid = r["score"].to_numpy() - x @ beta
    sigma2 = resid @ resid / (len(r) - 3)
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))
    assert d.loc["attr_value", "se"] == pytest.approx(se[1])
    assert (d["responses"] == len(r)).all() and (d["dropped"] == 0).all()


def test_drivers_recover_the_planted_order(book_ws):
    weights = demo.PLANTED["nps_driver_weights"]
    d = sv.drivers(book_ws)
    assert list(d["attribute"]) == sorted(weights, key=weights.get, reverse=True)
    ratio = d.set_index("attribute")["effect"] / pd.Series(weights)
    # the demo documents ~0.8x: answers pile up at 10, which damps a linear fit
    assert ratio.between(0.65, 1.0).all(), ratio
    assert (d["lower"] > 0).all() and (d["r_squared"] > 0.5).all()


def test_ordered_drivers_agree_on_the_order(small_demo):
    ols = sv.drivers(small_demo)
    ordered = sv.drivers(small_demo, model="ordered", robust="HC3")
    assert list(ordered["attribute"])[:2] == list(ols["attribute"])[:2]
    assert (ordered["effect"] > 1).all()  # odds ratios above 1
    assert (ordered["lower"] < ordered["effect"]).all()


# == themes ====================================================================================
def test_tagging_english_words_from_their_start():
    d = sv.load_themes({"themes": {"ease": {"keywords": ["use"]},
                                   "reports": {"keywords": ["report"]}}})
    t = sv.tag_comments(["Easy to use", "because of that", "Reporting is great",
                         "the reporter", "misuse"], d)
    assert list(t["ease"]) == [True, False, False, False, False]
    assert list(t["reports"]) == [False, False, True, True, False]


def test_tagging_japanese_substrings_and_width_normalization():
    t = sv.tag_comments(pd.Series(["料金体系をもっと柔軟にしてほしい", "ＳＬＡＣＫ連携が便利",
                                   "ｻﾎﾟｰﾄが遅い", "評価が高い", None, "Salesforceとの連携"],
                                  index=[10, 11, 12, 13, 14, 15]))
    assert list(t.index) == [10, 11, 12, 13, 14, 15]
    assert t.loc[10, "themes"] == ("pricing",)
    assert t.loc[11, "themes"] == ("integrations",)          # full-width Latin, no spaces
    assert set(t.loc[12, "themes"]) == {"support", "performance"}  # half-width katakana
    assert t.loc[13, "themes"] == ()                          # 高い alone is not pricing
    assert t.loc[14, "themes"] == ()
    assert t.loc[15, "themes"] == ("integrations",)


def test_tagging_patterns_are_regular_expressions():
    d = sv.load_themes({"themes": {"pricing": {"keywords": ["price"],
                                               "patterns": [r"(料金|価格).{0,6}高",
                                                            r"\bper[- ]user\b"]}}})
    t = sv.tag_comments(["料金が少し高い", "価格は妥当", "cost per-user", "PER USER fee",
                         "superuser"], d)
    assert list(t["pricing"]) == [True, False, True, True, False]


def test_themes_counts_and_shares_match_brute_force(sws):
    res = sv.themes(sws, survey="nps")
    r = sv.responses(sws, "nps")
    commented = r[r["comment"].notna() & (r["comment"].str.strip() != "")]
    assert len(res.comments) == len(commented)
    assert res.by == ("category",) and res.summary().equals(res.shares)
    # by hand: promoters R02 (reports), R08 (setup/onboarding), R09 (Slack), R12 (support);
    # detractors R03 (slow), R04 (料金, サポート, 遅), R07 (none), R10 (per user),
    # R16 (動作, 使い勝手)
    s = res.summary.set_index(["category", "theme"])
    assert s.loc[("promoter", "reporting"), "mentions"] == 1
    assert s.loc[("promoter", "onboarding"), "mentions"] == 1
    assert s.loc[("promoter", "support"), "mentions"] == 1
    assert s.loc[("promoter", "integrations"), "mentions"] == 1
    assert s.loc[("detractor", "performance"), "mentions"] == 3
    assert s.loc[("detractor", "pricing"), "mentions"] == 2
    assert s.loc[("detractor", "(no theme)"), "mentions"] == 1
    det = s.loc["detractor"]
    assert (det["comments"] == 5).all()
    assert det.loc["pricing", "share"] == pytest.approx(2 / 5)
    lo, hi = stats.binomtest(2, 5).proportion_ci(method="wilson")
    assert (det.loc["pricing", "lower"], det.loc["pricing", "upper"]) == pytest.approx((lo, hi))
    assert set(res.quotes["theme"]) <= set(res.dictionary.names)
    assert res.comments["responded_at"].is_monotonic_decreasing


def test_themes_recover_the_demo_detractor_and_promoter_themes(small_demo):
    s = sv.themes(small_demo, survey="nps").summary.set_index(["category", "theme"])["share"]
    for theme in demo.PLANTED["detractor_themes"]:
        assert s[("detractor", theme)] > 2 * s[("promoter", theme)], theme
    for theme in demo.PLANTED["promoter_themes"]:
        assert s[("promoter", theme)] > 1.5 * s[("detractor", theme)], theme
    # the default dictionary covers the demo's comments
    assert s[("detractor", "(no theme)")] < 0.02 and s[("promoter", "(no theme)")] < 0.02


def test_themes_by_segment_match_brute_force(small_demo):
    res = sv.themes(small_demo, by="segment", survey="csat", quotes=2)
    r = sv.responses(small_demo, "csat", comments_only=True)
    flags = sv.tag_comments(r["comment"])
    s = res.summary.set_index(["segment", "theme"])
    for seg in r["segment"].unique():
        m = (r["segment"] == seg).to_numpy()
        assert s.loc[(seg, "support"), "mentions"] == int(flags["support"].to_numpy()[m].sum())
        assert s.loc[(seg, "support"), "comments"] == int(m.sum())
    assert (res.quotes.groupby("theme").size() <= 2).all()


# == bad theme dictionaries: every kind has its message ========================================
GOOD = "themes:\n  pricing:\n    keywords: [price]\n"


@pytest.mark.parametrize("text, message", [
    ("themes:\n  pricing:\n    keywords: [price\n", r"line \d+, column \d+: not valid YAML"),
    ("", "the file is empty"),
    ("- a\n- b\n", "line 1: the file must be a mapping"),
    ("description: x\n", "no 'themes:' key"),
    ("theme:\n  a:\n    keywords: [x]\n", r"line 1 \(theme\): unknown key 'theme'; the allowed "
                                          "keys are description, themes"),
    ("themes: {}\n", "'themes' is empty"),
    ("themes:\n  - pricing\n", r"line 2 \(themes\): must be a mapping"),
    ("themes:\n  pricing:\n    keywords: [a]\n  pricing:\n    keywords: [b]\n",
     r"line 4: duplicate key 'pricing' \(first on line 2, again on line 4\)"),
    ("themes:\n  pricing:\n    keyword: [a]\n",
     r"line 3 \(themes.pricing.keyword\): unknown key 'keyword'; the allowed keys are "
     "keywords, label, patterns"),
    ("themes:\n  pricing:\n    label: Pricing\n",
     r"line 2 \(themes.pricing\): theme 'pricing' has no keywords"),
    ("themes:\n  pricing:\n    keywords: [price, 404]\n",
     r"line 3 \(themes.pricing.keywords\[1\]\): must be text \(put it in quotes\), got 404"),
    ("themes:\n  pricing:\n    keywords: [price, '  ']\n",
     "an empty entry in keywords would match every comment"),
    ("themes:\n  pricing:\n    keywords: {a: b}\n",
     r"\(themes.pricing.keywords\): must be a list of text"),
    ("themes:\n  pricing:\n    patterns: ['(price']\n",
     r"line 3 \(themes.pricing.patterns\[0\]\): theme 'pricing': pattern '\(price' is not "
     "a valid regular expression"),
    ("themes:\n  pricing:\n    patterns: ['x*']\n", "matches empty text"),
    ("themes:\n  yes:\n    keywords: [a]\n",
     "a theme name must be text, got True .*put the name in quotes"),
    ("themes:\n  '(no theme)':\n    keywords: [a]\n", "is reserved"),
    ("themes:\n  pricing:\n    label: [a, b]\n    keywords: [x]\n",
     r"\(themes.pricing.label\): must be text"),
    ("themes:\n  pricing: [price]\n", "theme 'pricing' must be a mapping"),
])
def test_bad_theme_files_name_file_line_and_problem(tmp_path, text, message):
    path = tmp_path / "my_themes.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ThemeDictionaryError, match=message) as exc:
        sv.load_themes(path)
    assert str(path) in str(exc.value)


def test_theme_file_problems_outside_yaml(tmp_path):
    with pytest.raises(ThemeDictionaryError, match="theme dictionary not found: .*nope.yml"):
        sv.load_themes(tmp_path / "nope.yml")
    with pytest.raises(ThemeDictionaryError, match="is a folder"):
        sv.load_themes(tmp_path)
    sjis = tmp_path / "sjis.yml"
    sjis.write_bytes("themes:\n  料金:\n    keywords: [料金]\n".encode("cp932"))
    with pytest.raises(ThemeDictionaryError, match="not UTF-8 text.*save it as UTF-8"):
        sv.load_themes(sjis)
    with pytest.raises(ThemeDictionaryError, match="expected a path to a YAML file"):
        sv.load_themes(42)
    with pytest.raises(ThemeDictionaryError,
                       match=r"<mapping> \(themes.a\): theme 'a' has"):
        sv.load_themes({"themes": {"a": {"label": "A"}}})
    good = tmp_path / "good.yml"
    good.write_text("\ufeff" + GOOD, encoding="utf-8")  # a BOM is fine
    assert sv.load_themes(good).names == ["pricing"]


def test_default_dictionary_is_found_whatever_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = sv.load_themes("themes.yml")
    assert d.source == str(sv.DEFAULT_THEMES)
    assert set(demo.THEMES) <= set(d.names)
    assert sv.load_themes().names == d.names


# == curated voices and exports ================================================================
def test_curated_voices_combine_filters_newest_first(sws, tables):
    v = sv.curated_voices(sws, segment=["SMB", "Enterprise"],
                          roles=["owner", "executive sponsor"], min_mrr=400)
    # brute force: every comment (no dedup), filters ANDed, MRR on 2024-12-31
    sr = tables["survey_responses"]
    sr = sr[(sr["responded_at"] < pd.Timestamp(AS_OF) + pd.Timedelta(days=1))
            & sr["comment"].notna() & (sr["comment"].str.strip() != "")]
    mrr = {"A1": 1000.0, "A2": 0.0, "A3": 500.0, "A4": 500.0}
    seg = dict(zip(tables["accounts"]["account_id"], tables["accounts"]["segment"],
                   strict=True))
    exp = sr[sr["account_id"].map(seg).isin(["SMB", "Enterprise"])
             & sr["respondent_role"].isin(["owner", "executive sponsor"])
             & (sr["account_id"].map(mrr) >= 400)]
    assert len(v) == len(exp) and len(v) > 0
    assert set(v["comment"]) == set(exp["comment"])
    assert v["responded_at"].is_monotonic_decreasing
    assert set(v["account_id"]) == {"A1", "A3"}  # A2 churned (MRR 0 on the as-of date)
    assert (v["mrr"] == v["account_id"].map(mrr)).all()
    assert "R01" not in set(sv.responses(sws, "nps")["response_id"])
    assert "Great reporting, the dashboard is easy to share." in set(v["comment"])


def test_curated_voices_accounts_domain_and_limit(sws):
    v = sv.curated_voices(sws, accounts=["A1"], domain="technical")
    assert set(v["respondent_name"]) == {"Bob"} and set(v["domain"]) == {"technical"}
    assert len(sv.curated_voices(sws, limit=2)) == 2
    assert "themes" in v.columns
    assert "themes" not in sv.curated_voices(sws, dictionary=None).columns


def test_export_csv_and_markdown(sws, tmp_path):
    v = sv.curated_voices(sws, accounts=["A3", "A4"], survey="nps")
    csv = sv.export(v, tmp_path / "voices.csv")
    raw = csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(io.StringIO(raw.decode("utf-8-sig")))
    assert len(back) == len(v) and "ＳＬＡＣＫ連携が便利です" in set(back["comment"])
    md = sv.export(v, tmp_path / "voices.md", title="Voices for the roadmap").read_text(
        encoding="utf-8")
    assert md.startswith("## Voices for the roadmap")
    assert "> ＳＬＡＣＫ連携が便利です" in md and "**ガンマ株式会社**" in md
    assert md.count("\n> — ") == len(v)
    req = sv.request_priorities(sws)
    table = sv.to_markdown(req.assign(request=req["request"] + " | pipe"), max_rows=1)
    assert "\\| pipe" in table and "more rows in the CSV export" in table
    header = table.splitlines()[4]
    assert header.startswith("| rank | request |") and "sources" not in header
    assert "| 2024-03-01 |" in sv.to_markdown(pd.DataFrame({"d": [ts("2024-03-01 09:30")]}))


def test_export_leaves_out_names_and_neutralises_formulas(sws, tmp_path):
    v = sv.curated_voices(sws, accounts=["A3", "A4"], survey="nps")
    assert "respondent_name" in v
    hostile = v.assign(comment=["=HYPERLINK(\"http://x\",\"click\")", "+cmd|' /C calc'!A0"]
                       + list(v["comment"][2:]))
    back = pd.read_csv(sv.export(hostile, tmp_path / "x.csv"), encoding="utf-8-sig",
                       dtype=str, keep_default_na=False)
    assert "respondent_name" not in back
    assert back["comment"].iloc[0].startswith("'=") and back["comment"].iloc[1].startswith("'+")
    md = sv.export(v, tmp_path / "x.md").read_text(encoding="utf-8")
    for name in v["respondent_name"].dropna():
        assert name not in md
    named = pd.read_csv(sv.export(v, tmp_path / "n.csv", include_names=True),
                        encoding="utf-8-sig")
    assert "respondent_name" in named


# == what the scores predict ===================================================================
def test_survey_outcomes_by_hand(sws):
    o = sv.survey_outcomes(sws, horizon_days=90, adjust=None)
    obs = o.observations.set_index(["account_id", "wave"])
    q = lambda s: int(s[:4]) * 4 + int(s[-1]) - 1  # noqa: E731
    # A2 answered 3 in 2024Q1 (detractor) and churned on 2024-09-01: outside (t, t+90]
    a2q1 = obs.loc[("A2", q("2024-Q1"))]
    assert a2q1["category"] == "detractor" and not a2q1["churned"]
    # ... but within 90 days of its 2024Q2 answer (2024-05-12 -> 2024-08-10)? No: 09-01 > 08-10
    assert not obs.loc[("A2", q("2024-Q2")), "churned"]
    # A4 in 2024Q1: no respondent ids, 7 and 0 -> mean 3.5 -> rounds to 4: detractor
    assert obs.loc[("A4", q("2024-Q1")), "category"] == "detractor"
    # A3 expanded on 2024-06-01: its 2024Q1 answer (02-25) sees 200 -> 500 within 180 days
    o180 = sv.survey_outcomes(sws, horizon_days=180, adjust=None)
    a3 = o180.observations.set_index(["account_id", "wave"]).loc[("A3", q("2024-Q1"))]
    assert (a3["mrr_start"], a3["mrr_end"], a3["expanded"]) == (200.0, 500.0, True)
    a2 = o180.observations.set_index(["account_id", "wave"]).loc[("A2", q("2024-Q2"))]
    assert a2["churned"] and a2["mrr_end"] == 0.0
    # a window ending after the as-of date is not counted
    late = o180.observations.set_index(["account_id", "wave"]).loc[("A1", q("2024-Q4"))]
    assert not late["complete"]
    rates = o180.rates.set_index("category")
    done = o180.observations[o180.observations["complete"]]
    for cat, g in done.groupby("category"):
        assert rates.loc[cat, "observations"] == len(g)
        assert rates.loc[cat, "churned"] == g["churned"].sum()
        assert rates.loc[cat, "churn_rate"] == pytest.approx(g["churned"].mean())


def test_clustered_wilson_equals_wilson_for_one_observation_per_account():
    y = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype=float)
    p, lo, hi, deff = sv_outcomes._clustered_wilson(y, np.arange(10), 0.05)
    wlo, whi = stats.binomtest(3, 10).proportion_ci(method="wilson")
    assert (p, deff) == (0.3, 1.0) and (lo, hi) == pytest.approx((wlo, whi))
    # the same outcomes in identical pairs per account: the design effect is about 2
    p2, lo2, hi2, deff2 = sv_outcomes._clustered_wilson(
        np.repeat(y, 2), np.repeat(np.arange(10), 2), 0.05)
    assert p2 == 0.3 and deff2 == pytest.approx(2 * 10 / 9)
    assert (lo2, hi2) == pytest.approx(sv_base.wilson_interval(0.3 * 20 / deff2, 20 / deff2, 0.05))


def test_survey_outcomes_recover_the_planted_detractor_churn(book_ws):
    o = sv.survey_outcomes(book_ws)
    hr = o.hazard_ratios.set_index(["covariate", "level"])
    det = hr.loc[("category", "detractor")]
    pas = hr.loc[("category", "passive")]
    planted = demo.PLANTED["detractor_churn_hr"]
    assert 0.75 * planted < det["hazard_ratio"] < 1.25 * planted
    assert det["lower"] > 1
    assert 1.0 < pas["hazard_ratio"] < det["hazard_ratio"]
    rates = o.rates.set_index("category")
    assert rates.loc["detractor", "churn_lower"] > rates.loc["promoter", "churn_upper"]
    assert rates.loc["promoter", "expansion_rate"] > rates.loc["detractor", "expansion_rate"]
    assert (rates["design_effect"] > 1).all()  # accounts answer in several waves


def test_survey_outcomes_see_a_churn_before_a_reactivation(tmp_path):
    d = dt.date
    tables = {
        "accounts": pd.DataFrame({"account_id": ["R", "S"], "signup_date": [d(2023, 1, 1)] * 2,
                                  "segment": ["SMB", "SMB"]}),
        # R: churns on 2024-03-01, comes back on 2024-06-01 and is a customer at as-of
        "subscriptions": pd.DataFrame({
            "account_id": ["R", "R", "R", "S"],
            "start_date": [d(2023, 1, 1), d(2023, 6, 1), d(2024, 6, 1), d(2023, 1, 1)],
            "end_date": [d(2023, 9, 1), d(2024, 3, 1), None, None],
            "mrr": [100.0, 100.0, 150.0, 100.0]}),
        "survey_responses": pd.DataFrame({
            "response_id": ["r1", "r2", "r3", "s1"], "account_id": ["R", "R", "R", "S"],
            "survey": ["nps"] * 4, "score": [2.0, 5.0, 9.0, 10.0],
            "responded_at": [ts("2024-01-15 10:00"), ts("2024-04-15 10:00"),
                             ts("2024-07-15 10:00"), ts("2024-01-15 10:00")]}),
    }
    ws = open_workspace(write_workspace(tmp_path / "re.duckdb", tables,
                                        config={"as_of": "2024-12-31"}))
    ep = sv.churn_episodes(ws)
    assert ep[["account_id", "churn_date", "episode"]].values.tolist() == [
        ["R", pd.Timestamp("2024-03-01"), 1]]
    assert ep["reactivated_on"].iloc[0] == pd.Timestamp("2024-06-01")
    obs = sv.survey_outcomes(ws, horizon_days=90, adjust=None).observations.set_index(
        "account_id")
    # the January detractor churned within 90 days (1 March), although R is a customer
    # again at the as-of date (its last-episode churn date is empty)
    r = obs.loc["R"].set_index("wave_label")
    assert r.loc["2024-Q1", "churned"] and r.loc["2024-Q1", "churn_date"] == ts("2024-03-01")
    # 15 April: between the churn and the return, not a customer: no observation
    assert "2024-Q2" not in r.index
    assert not r.loc["2024-Q3", "churned"]
    assert not obs.loc["S", "churned"]


# == feature requests ==========================================================================
def test_request_priorities_weigh_accounts_not_people(sws):
    r = sv.request_priorities(sws).set_index("request")
    # SSO: A1 asked twice (two people, titles differing in case and spaces), A2 once
    sso = r.loc["SSO (SAML)"]
    assert (sso["accounts"], sso["requests"], sso["people"]) == (2, 3, 3)
    assert sso["mrr"] == 1000.0 + 0.0          # A1 once; A2 is a former customer
    assert sso["former_customers"] == 1
    assert (sso["open"], sso["planned"], sso["latest_status"]) == (2, 1, "planned")
    # Dark mode: F8 (A4) is after the as-of date
    assert r.loc["Dark mode", "accounts"] == 2 and r.loc["Dark mode", "mrr"] == 1500.0
    # two accounts each: Dark mode carries 1500, Slack alerts (A3 + A4) and SSO (A1 + A2)
    # 1000 each: a tie, sharing rank 2, listed by detractor accounts (SSO 2, Slack 1)
    assert list(r.index) == ["Dark mode", "SSO (SAML)", "Slack alerts"]
    assert list(r["rank"]) == [1, 2, 2]
    # detractors: latest NPS wave per account: A1 2024Q4 mean 4 -> detractor; A2 Q2 5;
    # A3 Q3 9 -> promoter; A4 Q3 6 -> detractor.  At risk: latest CSM rating <= 2: A3 only
    assert r.loc["SSO (SAML)", "detractor_accounts"] == 2
    assert r.loc["Slack alerts", "detractor_accounts"] == 1
    assert r.loc["Slack alerts", "at_risk_accounts"] == 1
    assert r.loc["Dark mode", "at_risk_accounts"] == 1  # A1's 1 in June was superseded


def test_request_priorities_ties_share_a_rank(sws):
    r = sv.request_priorities(sws, rank_by="accounts", key="theme")
    ranks = dict(zip(r["request"], r["rank"], strict=True))
    # security: A1+A2 (1000), integrations: A3+A4 (1000), ease_of_use: A1+A3 (1500)
    assert ranks == {"ease_of_use": 1, "integrations": 2, "security": 2}
    # ties listed by more detractor accounts first: security has A1, A2; integrations A4
    assert list(r["request"]) == ["ease_of_use", "security", "integrations"]


def test_request_priorities_union_of_segments_and_strategic_accounts(sws):
    r = sv.request_priorities(sws, segments="Enterprise", accounts=["A4"])
    assert set(r["request"]) == {"SSO (SAML)", "Slack alerts", "Dark mode"}
    assert r.set_index("request").loc["Slack alerts", "accounts"] == 1  # A4 only
    only = sv.request_priorities(sws, segments=["SMB"], status="open")
    assert set(only["request"]) == {"SSO (SAML)", "Slack alerts"}


def test_request_priorities_say_unknown_rather_than_zero(tmp_path, tables):
    slim = {k: tables[k] for k in ("accounts", "subscriptions", "feature_requests")}
    ws = open_workspace(write_workspace(tmp_path / "req.duckdb", slim,
                                        config={"as_of": AS_OF.isoformat()}))
    r = sv.request_priorities(ws)
    assert r["detractor_accounts"].isna().all() and r["at_risk_accounts"].isna().all()
    assert r["detractor_mrr"].isna().all()
    assert (r["accounts"] > 0).all()


def test_request_priorities_match_brute_force_on_the_demo(small_demo):
    r = sv.request_priorities(small_demo, key="title")
    fr = small_demo.feature_requests.to_pandas()
    key = fr["title"].str.normalize("NFKC").str.casefold().str.split().str.join(" ")
    per = fr.assign(k=key).groupby("k")["account_id"].nunique()
    got = dict(zip([sv_voices._request_key(t) for t in r["request"]], r["accounts"], strict=True))
    assert got == per.to_dict()
    assert r["rank"].is_monotonic_increasing and r["accounts"].is_monotonic_decreasing


# == the workspace calendar: waves and the as-of date in the workspace's time zone ==============
def _tz_tables(tz: str) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Responses minutes either side of local midnight at the Q1/Q2 boundary, stored in UTC.

    Returns the tables and the responses with their local times (for the brute force).
    """
    d = dt.date
    accounts = pd.DataFrame({"account_id": ["A1", "A2", "A3"],
                             "signup_date": [d(2024, 1, 1)] * 3,
                             "segment": ["SMB", "SMB", "Enterprise"]})
    subs = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "start_date": [d(2024, 1, 1)] * 3,
                         "end_date": [None] * 3, "mrr": [100.0, 200.0, 300.0]})
    local = [  # (id, account, respondent, score, local wall-clock time)
        ("T1", "A1", "p1", 9, "2024-03-31 23:55"),   # Q1 locally
        ("T2", "A1", "p1", 3, "2024-04-01 00:05"),   # Q2 locally: not a repeat of T1
        ("T3", "A2", "p2", 10, "2024-03-31 23:50"),
        ("T4", "A2", "p2", 0, "2024-03-31 23:58"),   # same local day and wave: wins
        ("T5", "A3", "p3", 6, "2024-04-01 00:01"),
        ("T6", "A3", "p4", 8, "2024-01-01 00:03"),   # first minutes of Q1 locally
        ("T7", "A1", "p1", 7, "2023-12-31 23:57"),   # last minutes of 2023-Q4 locally
        ("T8", "A2", "p2", 9, "2024-06-30 23:59"),
        ("T9", "A3", "p3", 2, "2024-07-01 00:02"),
    ]
    sr = pd.DataFrame(local, columns=["response_id", "account_id", "respondent_id", "score",
                                      "local"])
    sr["score"] = sr["score"].astype(float)
    sr["survey"] = "nps"
    # pandas' own time-zone database turns local wall time into the stored UTC instant
    sr["responded_at"] = (pd.to_datetime(sr["local"]).dt.tz_localize(tz)
                          .dt.tz_convert("UTC").dt.tz_localize(None))
    fr = pd.DataFrame({"request_id": ["F1", "F2"], "account_id": ["A1", "A2"],
                       "title": ["SSO", "SSO"],
                       "created_at": sr.set_index("response_id").loc[["T1", "T2"],
                                                                     "responded_at"].to_numpy()})
    tables = {"accounts": accounts, "subscriptions": subs, "feature_requests": fr,
              "survey_responses": sr.drop(columns=["local"])}
    return tables, sr


def _brute_local(sr: pd.DataFrame, tz: str, as_of: dt.date) -> pd.DataFrame:
    """metrics.md on the local calendar: convert UTC with pandas tz_convert, then cut."""
    local = sr["responded_at"].dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)
    out = sr.assign(_local=local)
    out = out[out["_local"].dt.normalize() <= pd.Timestamp(as_of)]
    q = out["_local"].dt.to_period("Q")
    out = out.assign(wave_label=[f"{p.year}-Q{p.quarter}" for p in q])
    out = out.sort_values(["_local", "response_id"])
    return out.drop_duplicates(["account_id", "respondent_id", "wave_label"], keep="last")


@pytest.mark.parametrize("tz", ["Asia/Tokyo", "America/Los_Angeles"])
def test_waves_and_as_of_follow_the_local_calendar(tmp_path, tz):
    tables, sr = _tz_tables(tz)
    for as_of in (dt.date(2024, 3, 31), dt.date(2024, 6, 30), dt.date(2024, 12, 31)):
        ws = open_workspace(write_workspace(tmp_path / f"{as_of}.duckdb", tables,
                                            config={"timezone": tz,
                                                    "as_of": as_of.isoformat()}))
        want = _brute_local(sr, tz, as_of)
        got = sv.responses(ws, "nps")
        assert sorted(got["response_id"]) == sorted(want["response_id"]), as_of
        labels = dict(zip(got["response_id"], got["wave_label"], strict=True))
        assert labels == dict(zip(want["response_id"], want["wave_label"], strict=True))
        per = sv.nps(ws, grain="quarter").set_index("period_label")
        for label, g in want.groupby("wave_label"):
            assert per.loc[label, "responses"] == len(g)
            assert per.loc[label, "nps"] == pytest.approx(brute_nps(g["score"])[0])
        # a frame of responses() carries its waves; a raw frame is cut in `timezone`
        from_frame = sv.nps(got, grain="quarter")
        assert list(from_frame["nps"]) == pytest.approx(list(per["nps"]))
        raw = tables["survey_responses"]
        from_raw = sv.nps(raw, grain="quarter", timezone=tz, as_of=as_of)
        assert list(from_raw["period_label"]) == list(per.index)
        assert list(from_raw["responses"]) == list(per["responses"])
    # the request made at 23:55 local on the as-of day counts, the one at 00:05 does not
    ws = open_workspace(write_workspace(tmp_path / "req.duckdb", tables,
                                        config={"timezone": tz, "as_of": "2024-03-31"}))
    assert sv.request_priorities(ws)["requests"].tolist() == [1]
    assert sv.request_priorities(ws, as_of="2024-04-01")["requests"].tolist() == [2]
    assert sv.request_priorities(ws, since="2024-04-01", as_of="2024-04-01")[
        "requests"].tolist() == [1]


def test_the_dashboard_quarters_follow_the_local_calendar(tmp_path):
    tables, _ = _tz_tables("Asia/Tokyo")
    tables["survey_responses"] = tables["survey_responses"][
        tables["survey_responses"]["response_id"].isin(["T6", "T7"])]
    ws = open_workspace(write_workspace(tmp_path / "q.duckdb", tables,
                                        config={"timezone": "Asia/Tokyo",
                                                "as_of": "2024-03-31"}))
    voc = VoiceOfCustomerDashboard(ws)
    labels = [sv.period_label(q, "quarter") for q in voc._quarters()]
    assert labels == ["2023-Q4", "2024-Q1"]  # T7 is 14:57 UTC on 31 Dec: still 2023 locally


# == compare(by="period"): the same accounts answer every wave ==================================
def _waves_frame(rng, accounts: int, per_account: int, persistent: float, within: float,
                 noise: float, shift: float) -> pd.DataFrame:
    """CES-like scores (scale 0-20, mean 10) for two quarters answered by the same accounts.

    score = 10 + u_account (persistent across waves) + v_account,wave (shared by an
    account's respondents in one wave) + e + shift x [second quarter]: the true difference
    between the quarters' mean scores is ``shift``.
    """
    u = rng.normal(0, persistent, accounts)
    rows = []
    for w, when in enumerate(("2024-02-15", "2024-05-15")):
        v = rng.normal(0, within, accounts)
        for a in range(accounts):
            for i in range(per_account):
                rows.append((f"a{a}", f"a{a}-w{w}-p{i}", when,
                             10 + u[a] + v[a] + rng.normal(0, noise) + shift * w))
    df = pd.DataFrame(rows, columns=["account_id", "respondent_id", "responded_at", "score"])
    df["responded_at"] = pd.to_datetime(df["responded_at"])
    df["response_id"] = np.arange(len(df))
    df["survey"] = "ces"
    return df


def test_compare_periods_bootstraps_accounts_and_widens_on_clustered_waves():
    rng = np.random.default_rng(11)
    # 8 accounts, 25 respondents each, who answer alike within a wave (v large)
    df = _waves_frame(rng, 8, 25, persistent=0.0, within=1.0, noise=0.5, shift=0.0)
    boot = sv.compare(df, "period", "ces", scale=(0, 20), n_boot=1000).iloc[0]
    naive = sv.compare(df, "period", "ces", scale=(0, 20), ci="analytic").iloc[0]
    assert boot["difference"] == pytest.approx(naive["difference"])
    assert "account-bootstrap" in boot["test"] and naive["test"] == "Welch t test"
    # Welch treats 400 responses as independent; there are 8 accounts' opinions per wave
    assert (boot["upper"] - boot["lower"]) > 2.5 * (naive["upper"] - naive["lower"])
    # the textbook cluster-level reference: one mean per account and wave, Welch on 8 vs 8
    means = df.assign(w=df["responded_at"].dt.month > 3).groupby(["w", "account_id"])[
        "score"].mean()
    se_ref = math.sqrt(means[True].var(ddof=1) / 8 + means[False].var(ddof=1) / 8)
    assert boot["se"] == pytest.approx(se_ref, rel=0.3)


def test_compare_periods_interval_covers_the_true_change():
    rng = np.random.default_rng(5)
    shift, hits, naive_hits, reps = 0.3, 0, 0, 150
    for _ in range(reps):
        df = _waves_frame(rng, 30, 4, persistent=0.8, within=0.5, noise=0.7, shift=shift)
        c = sv.compare(df, "period", "ces", scale=(0, 20), n_boot=400,
                       seed=int(rng.integers(1 << 30))).iloc[0]
        hits += c["lower"] <= shift <= c["upper"]
        n = sv.compare(df, "period", "ces", scale=(0, 20), ci="analytic").iloc[0]
        naive_hits += n["lower"] <= shift <= n["upper"]
    # 95% intervals: 150 simulated surveys with known truth (binomial sd ~ 1.8 points)
    assert 0.88 <= hits / reps <= 0.99, hits / reps


def test_period_alias_still_works_with_a_warning(sws):
    with pytest.warns(FutureWarning, match="use grain="):
        old = sv.nps(sws, period="quarter")
    pd.testing.assert_frame_equal(old, sv.nps(sws, grain="quarter"))
    with pytest.warns(FutureWarning):
        c = sv.compare(sws, "period", period="quarter", ci="analytic")
    assert len(c) == 3
    with pytest.raises(SurveyError, match="disagree"):
        sv.nps(sws, grain="month", period="quarter")


def test_compare_by_touchpoint_says_why_there_is_nothing_to_compare(sws):
    # each survey of this workspace is sent at one touchpoint (nps: periodic, ...)
    with pytest.raises(SurveyError, match=r"every 'nps' response .* touchpoint 'periodic'.*"
                                          "each survey is sent at one touchpoint"):
        sv.compare(sws, "touchpoint", "nps")
    with pytest.raises(SurveyError, match="at least two values of 'segment'"):
        sv.compare(sws.where(segment=["SMB"]), "segment")


# == drivers: cluster-robust inference with few accounts =========================================
def test_cluster_robust_drivers_use_t_with_clusters_minus_one_df():
    rng = np.random.default_rng(2)
    g_n, per = 5, 8
    acc = np.repeat([f"a{i}" for i in range(g_n)], per)
    x1 = rng.integers(1, 6, g_n * per).astype(float)
    x2 = rng.integers(1, 6, g_n * per).astype(float)
    effect = np.repeat(rng.normal(0, 1, g_n), per)
    y = np.clip(np.round(2 + 0.9 * x1 + 0.3 * x2 + effect + rng.normal(0, 1, g_n * per)), 0,
                10)
    df = pd.DataFrame({"account_id": acc, "score": y, "attr_a": x1, "attr_b": x2})
    got = sv.drivers(df, robust="cluster").set_index("attribute")
    # by hand: OLS, the sandwich summed over accounts, the small-sample factor, t(G - 1)
    x = np.column_stack([np.ones(len(y)), x1, x2])
    bread = np.linalg.inv(x.T @ x)
    beta = bread @ x.T @ y
    e = y - x @ beta
    meat = np.zeros((3, 3))
    for a in np.unique(acc):
        s = x[acc == a].T @ e[acc == a]
        meat += np.outer(s, s)
    n, k = x.shape
    c = g_n / (g_n - 1) * (n - 1) / (n - k)
    se = np.sqrt(np.diag(c * bread @ meat @ bread))
    tq = stats.t.ppf(0.975, g_n - 1)
    for i, name in ((1, "attr_a"), (2, "attr_b")):
        row = got.loc[name]
        assert row["coef"] == pytest.approx(beta[i])
        assert row["se"] == pytest.approx(se[i])
        assert (row["lower"], row["upper"]) == pytest.approx(
            (beta[i] - tq * se[i], beta[i] + tq * se[i]))
        assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(beta[i] / se[i]), g_n - 1))
        assert row["df"] == g_n - 1
    # the normal quantile (1.96) would be too narrow with 5 accounts: t(4) = 2.78
    assert tq > 2.7
    hc3 = sv.drivers(df, robust="HC3")
    assert hc3["df"].isna().all()


# == themes: a pattern can never hang the tagging ================================================
@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(x|xy)*z", r"(\w+\s?)+$", r"((ab)*)+c",
                                     r"(?:料金|価格)+(?:.)*高*(?:a|b)+"])
def test_catastrophic_patterns_are_refused_when_the_dictionary_is_read(tmp_path, pattern):
    import time

    path = tmp_path / "t.yml"
    path.write_text("themes:\n  bad:\n    patterns:\n      - '" + pattern + "'\n",
                    encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(ThemeDictionaryError,
                       match=r"line 4 \(themes.bad.patterns\[0\]\): theme 'bad': .*exponential"):
        sv.load_themes(path)
    # a Theme built in code cannot slip through: tagging refuses it instead of hanging
    theme = sv.Theme(name="bad", label="bad", patterns=(pattern,))
    hostile = ["a" * 40 + "!", "x" * 40, "word " * 30 + "!"]
    with pytest.raises(ThemeDictionaryError, match="exponential"):
        sv.tag_comments(hostile, sv.ThemeDictionary(themes=(theme,)))
    assert time.perf_counter() - start < 2


def test_safe_patterns_stay_fast_on_long_hostile_comments():
    import time

    d = sv.load_themes()  # the default dictionary's patterns pass the check
    texts = ["a" * 5000 + "!", "料金" * 2000, "per " * 2000, "x" * 10000]
    start = time.perf_counter()
    sv.tag_comments(texts, d)
    assert time.perf_counter() - start < 2


def test_read_dictionary_is_generic_for_other_dictionaries(tmp_path):
    class SignalError(ValueError):
        pass

    path = tmp_path / "signals.yml"
    path.write_text("themes:\n  seats:\n    keywords: [more seats, 増席]\n", encoding="utf-8")
    d = sv.read_dictionary(path, label="expansion signals", error=SignalError)
    tags = sv.tag_comments(["We need more seats", "増席したい", "fine"], d)
    assert list(tags["seats"]) == [True, True, False]
    path.write_text("themes:\n  seats:\n    keyword: [x]\n", encoding="utf-8")
    with pytest.raises(SignalError, match=r"expansion signals .*signals.yml, line 3"):
        sv.read_dictionary(path, label="expansion signals", error=SignalError)


# == result objects ==============================================================================
def test_results_share_the_result_shape(sws):
    from cs_analysis.results import Result

    th = sv.themes(sws, survey="nps")
    assert isinstance(th, Result) and th.summary().equals(th.shares)
    assert th.summary.equals(th.shares)  # the old attribute access keeps working
    assert "Comment themes" in th._repr_html_()
    out = sv.survey_outcomes(sws, horizon_days=90)
    assert isinstance(out, Result) and out.horizon_days == 90 and out.survey == "nps"
    assert list(out.summary()["category"]) == ["promoter", "passive", "detractor"]
    for frame in (sv.nps(sws, by="segment"), sv.compare(sws, "segment"), sv.drivers(sws),
                  sv.curated_voices(sws), sv.request_priorities(sws), sv.responses(sws),
                  out.rates, out.hazard_ratios, th.shares):
        assert frame.attrs == {}
    by = sv.nps(sws, by="segment")
    assert "segment" in by.columns and "group" not in by.columns


# == bad parameters: every kind has its message ================================================
@pytest.mark.parametrize("call, error, message", [
    (lambda ws: sv.nps(ws, survey="nsp"), SurveyError,
     "no responses to survey 'nsp' in this workspace; surveys present: ces, csat, nps"),
    (lambda ws: sv.nps(ws, grain="week"), SurveyError,
     "grain='week' is not supported; expected one of 'month', 'quarter', 'year', 'wave'"),
    (lambda ws: sv.nps(ws, wave="week"), SurveyError, "wave='week' is not supported"),
    (lambda ws: sv.nps(ws, ci="wilson"), SurveyError,
     "ci='wilson' is not supported; expected one of 'delta', 'bootstrap'"),
    (lambda ws: sv.csat(ws, alpha=5), SurveyError, "alpha=5 must be a number between 0 and 1"),
    (lambda ws: sv.nps(ws, ci="bootstrap", n_boot=10), SurveyError,
     "n_boot=10 must be a whole number >= 100"),
    (lambda ws: sv.nps(ws, by="segmnt"), SurveyError,
     "by='segmnt': the responses have no such column; available: .*segment"),
    (lambda ws: sv.nps(ws, by="period"), SurveyError, "use grain='quarter'"),
    (lambda ws: sv.nps(ws, survey=["nps"]), SurveyError, "must be the name of one survey"),
    (lambda ws: sv.nps([1, 2]), SurveyError, "expected a Workspace or a DataFrame"),
    (lambda ws: sv.csat(ws, scale=(1, 2)), SurveyError, r"scale=\(1, 2\) must be \(low, high\)"),
    (lambda ws: sv.nps(pd.DataFrame({"score": [11.0]})), SurveyError,
     "response row 0: score=11.0 is outside the NPS scale 0-10"),
    (lambda ws: sv.nps(pd.DataFrame({"response_id": ["X9"], "score": [7.5]})), SurveyError,
     "response X9: score=7.5 is outside the NPS scale"),
    (lambda ws: sv.nps(pd.DataFrame({"x": [1]})), SurveyError,
     "the responses frame has no column 'score'"),
    (lambda ws: sv.compare(ws, "segment", correction="fdr"), SurveyError,
     "correction='fdr' is not supported"),
    (lambda ws: sv.compare(ws, "segment", pairs="each"), SurveyError, "pairs='each'"),
    (lambda ws: sv.compare(ws, "segment", reference="SMB"), SurveyError,
     "reference= is only used with pairs='reference'"),
    (lambda ws: sv.compare(ws, "segment", pairs="reference", reference="Big"), SurveyError,
     "reference='Big' is not a group of segment; groups: Enterprise, Mid-Market, SMB"),
    (lambda ws: sv.compare(ws, ["segment"]), SurveyError, "must be one column name"),
    (lambda ws: sv.compare(ws, "segment", ci="bootstrap"), SurveyError, "ci='bootstrap'"),
    (lambda ws: sv.drivers(ws, attributes="rating_*"), SurveyError,
     "attributes='rating_\\*' matches no column of the 'nps' responses; rating columns: "
     "attr_support, attr_value"),
    (lambda ws: sv.drivers(ws, attributes=["attr_price"]), SurveyError,
     "no column 'attr_price'"),
    (lambda ws: sv.drivers(ws, target="ces"), SurveyError,
     "only 0 'ces' responses have every rating"),
    (lambda ws: sv.drivers(ws, model="probit"), SurveyError, "model='probit'"),
    (lambda ws: sv.drivers(ws, robust="HC1"), SurveyError, "robust='HC1'"),
    (lambda ws: sv.drivers(ws.where(accounts=["A1"])), SurveyError,
     r"only \d+ 'nps' responses have every rating .* at least 12 are needed"),
    (lambda ws: sv.themes(ws, quotes=-1), SurveyError, "quotes=-1 must be a whole number >= 0"),
    (lambda ws: sv.themes(ws, by="sector"), SurveyError, "by='sector'"),
    (lambda ws: sv.themes(pd.DataFrame({"score": [1]})), SurveyError, "no 'comment' column"),
    (lambda ws: sv.curated_voices(ws, accounts=["A1", "Z9"]), SurveyError,
     "accounts: 'Z9' not found among the account ids of this workspace"),
    (lambda ws: sv.curated_voices(ws, segment="Enterprse"), SurveyError,
     "segment: 'Enterprse' not found among the segments; known values: Enterprise, "
     "Mid-Market, SMB"),
    (lambda ws: sv.curated_voices(ws, roles=["CEO"]), SurveyError,
     "roles: 'CEO' not found among the respondent roles"),
    (lambda ws: sv.curated_voices(ws, min_mrr=-5), SurveyError, "min_mrr=-5 must be a number"),
    (lambda ws: sv.curated_voices(ws, min_mrr="lots"), SurveyError, "min_mrr='lots'"),
    (lambda ws: sv.curated_voices(ws, domain="legal"), SurveyError, "domain='legal'"),
    (lambda ws: sv.curated_voices(ws, limit=0), SurveyError, "limit=0 must be a whole number"),
    (lambda ws: sv.survey_outcomes(ws, horizon_days=0), SurveyError, "horizon_days=0"),
    (lambda ws: sv.survey_outcomes(ws, survey="pulse"), SurveyError, "no responses to survey"),
    (lambda ws: sv.request_priorities(ws, status="done"), SurveyError,
     "status='done' is not a request status; expected open, planned, shipped, declined"),
    (lambda ws: sv.request_priorities(ws, key="person"), SurveyError, "key='person'"),
    (lambda ws: sv.request_priorities(ws, rank_by="votes"), SurveyError, "rank_by='votes'"),
    (lambda ws: sv.request_priorities(ws, at_risk_rating=7), SurveyError,
     "at_risk_rating=7 must be a whole number from 1 to 5"),
    (lambda ws: sv.request_priorities(ws, segments=["Whale"]), SurveyError,
     "segments: 'Whale' not found among the segments"),
    (lambda ws: sv.export(pd.DataFrame(), "out.xlsx"), SurveyError,
     "cannot export to 'out.xlsx': use a .csv or .md file name"),
    (lambda ws: sv.to_markdown(pd.DataFrame(), max_rows=0), SurveyError, "max_rows=0"),
])
def test_bad_parameters_have_clear_messages(sws, call, error, message):
    with pytest.raises(error, match=message):
        call(sws)


def test_missing_tables_and_columns_are_named(tiny_ws, tmp_path, tables):
    with pytest.raises(WorkspaceError, match="has no survey_responses table"):
        sv.nps(tiny_ws)
    with pytest.raises(WorkspaceError, match="has no feature_requests table"):
        sv.request_priorities(tiny_ws)
    slim = {k: v for k, v in tables.items() if k in ("accounts", "subscriptions")}
    slim["survey_responses"] = tables["survey_responses"][
        ["response_id", "account_id", "survey", "score", "responded_at"]]
    ws = open_workspace(write_workspace(tmp_path / "slim.duckdb", slim,
                                        config={"as_of": AS_OF.isoformat()}))
    with pytest.raises(WorkspaceError, match="no column.*respondent_role"):
        sv.curated_voices(ws, roles=["owner"])
    with pytest.raises(WorkspaceError, match="no column.*comment"):
        sv.themes(ws)
    assert sv.nps(ws).iloc[0]["responses"] == 16  # no respondent ids: no dedup, 16 by as-of


def test_out_of_scale_scores_in_the_workspace_are_reported(tmp_path, tables):
    t = dict(tables)
    sr = t["survey_responses"].copy()
    sr.loc[sr["response_id"] == "C02", "score"] = 9.0  # CSAT is 1-5
    t["survey_responses"] = sr
    ws = open_workspace(write_workspace(tmp_path / "bad.duckdb", t))
    with pytest.raises(SurveyError, match="response C02: score=9.0 for survey 'csat' is not a "
                                          "score from 1 to 5"):
        sv.responses(ws)


# == charts ====================================================================================
def _rows(spec: dict) -> list[dict]:
    sets = [d for d in spec.get("datasets", {}).values() if d != [{}]]
    assert len(sets) == 1
    return sets[0]


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def test_score_trend_chart_carries_scores_bands_and_counts(sws):
    frame = sv.nps(sws, grain="quarter")
    spec = charts.score_trend(frame).to_dict()
    rows = _rows(spec)
    assert [r["nps"] for r in rows] == pytest.approx(list(frame["nps"]))
    assert [r["responses"] for r in rows] == list(frame["responses"])
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
             for layer in _layers(spec)]
    assert marks[:3] == ["area", "line", "point"] and marks[-1] == "rule"
    band = _layers(spec)[0]["encoding"]
    assert band["y"]["field"] == "lower" and band["y2"]["field"] == "upper"
    with pytest.raises(ValueError, match="split by period"):
        charts.score_trend(sv.nps(sws))
    ces = charts.score_trend(sv.ces(sws, grain="quarter"), scale=(1, 7)).to_dict()
    assert _layers(ces)[1]["encoding"]["y"]["scale"]["domain"] == [1.0, 7.0]


def test_group_mix_and_comparison_charts(sws):
    by = sv.csat(sws, by="segment")
    spec = charts.score_by_group(by).to_dict()
    rows = _rows(spec)
    assert [r["segment"] for r in rows] == list(by.sort_values("csat", ascending=False)
                                                ["segment"])
    mix = charts.nps_mix(sv.nps(sws, by="segment")).to_dict()
    shares = pd.DataFrame(_rows(mix)).groupby("group")["share"].sum()
    assert shares.to_numpy() == pytest.approx(np.ones(len(shares)))
    comp = sv.compare(sws, "segment")
    rows = _rows(charts.compare_differences(comp).to_dict())
    assert [r["difference"] for r in rows] == pytest.approx(list(comp["difference"]))
    with pytest.raises(ValueError, match="one by column"):
        charts.score_by_group(sv.nps(sws))


def test_theme_driver_outcome_and_request_charts(sws, small_demo):
    summary = sv.themes(sws, survey="nps").summary
    spec = charts.theme_bars(summary).to_dict()
    assert len(_rows(spec)) == len(summary)
    assert spec["layer"][0]["encoding"]["yOffset"]["field"] == "category"
    no_unmatched = charts.theme_bars(summary, unmatched=False).to_dict()
    assert all(r["theme"] != "(no theme)" for r in _rows(no_unmatched))
    d = sv.drivers(small_demo)
    assert [r["attribute"] for r in _rows(charts.driver_effects(d).to_dict())] == list(
        d["attribute"])
    o = sv.survey_outcomes(small_demo)
    rows = _rows(charts.outcome_rates(o.rates).to_dict())
    assert len(rows) == 2 * len(o.rates)
    assert "within 365 days" in str(charts.outcome_rates(o).to_dict()["title"])
    charts.hazard_ratios(o.hazard_ratios).to_dict()  # the retention forest plot fits
    req = sv.request_priorities(small_demo)
    rows = pd.DataFrame(_rows(charts.request_bars(req, top=5).to_dict()))
    assert rows.groupby("request")["count"].sum().to_dict() == dict(
        zip(req["request"].head(5), req["accounts"].head(5), strict=True))


# == the dashboard =============================================================================
def decode_csv(uri: str) -> pd.DataFrame:
    raw = base64.b64decode(uri.split(",", 1)[1]).decode("utf-8")
    assert raw.startswith("\ufeff")
    return pd.read_csv(io.StringIO(raw[1:]))


@pytest.fixture(scope="module")
def voc(small_demo):
    return VoiceOfCustomerDashboard(small_demo)


def test_dashboard_kpis_match_the_analyses(voc, small_demo):
    assert voc.error is None
    direct = sv.nps(small_demo).iloc[0]
    k = voc.kpi("NPS")
    assert k.value == pytest.approx(direct["nps"]) and k.n == direct["responses"]
    assert f"{direct['lower']:+.0f} to {direct['upper']:+.0f}" in k.detail
    assert voc.kpi("Promoters").value == pytest.approx(direct["pct_promoters"])
    change = voc.kpi("Change vs previous quarter")
    q = sv.nps(small_demo, grain="quarter")
    assert change.value == pytest.approx(q["nps"].iloc[-1] - q["nps"].iloc[-2])
    assert set(voc.charts) == {"trend", "groups", "roles", "themes"}
    assert all(c is not None for c in voc.charts.values())


def test_dashboard_filters_drive_every_number(voc, small_demo):
    try:
        voc.filters["survey"].value = "csat"
        voc.filters["segment"].value = "SMB"
        voc.filters["role"].value = "owner"
        direct = sv.csat(small_demo.where(segment="SMB"), by="respondent_role")
        row = direct.set_index("respondent_role").loc["owner"]
        k = voc.kpi("CSAT")
        assert k.value == pytest.approx(row["csat"]) and k.n == row["responses"]
        assert "groups" not in voc.charts  # one segment chosen: no segment breakdown
        opts = voc.filters["period"].options
        voc.filters["period"].value = (opts[-4][1], opts[-1][1])
        since = sv.period_bounds(opts[-4][1], "quarter")[0]
        r = sv.responses(small_demo.where(segment="SMB"), "csat", since=since,
                         roles=["owner"])
        assert voc.kpi("CSAT").n == len(r)
        assert voc.error is None
    finally:
        voc.filters["survey"].value = "nps"
        voc.filters["segment"].value = ALL
        voc.filters["role"].value = ALL
        voc.filters["period"].index = (0, len(voc.filters["period"].options) - 1)


def test_dashboard_search_filters_the_comment_table_and_csv(voc, monkeypatch):
    calls = []
    heavy = voc._compute_all
    monkeypatch.setattr(voc, "_compute_all", lambda p: calls.append(p) or heavy(p))
    try:
        everything = len(voc.table)
        charts_before = voc.charts
        voc.filters["search"].value = "料金"
        table = voc.table
        # the charts are not rebuilt (nor sent to the browser again) for a search
        assert all(voc.charts[k] is c for k, c in charts_before.items())
        assert 0 < len(table) < everything
        assert table["comment"].str.contains("料金").all()
        csv = decode_csv(voc.csv_href)
        assert len(csv) == len(table) and csv["comment"].str.contains("料金").all()
        voc.filters["search"].value = "ＰＲＩＣＥ"  # normalized: full width, any case
        assert voc.table["comment"].str.lower().str.contains("price").all()
        voc.filters["search"].value = "<script>no match</script>"
        assert voc.table.empty and voc.error is None
        assert calls == []  # searching re-filters the table only
    finally:
        voc.filters["search"].value = ""


def test_dashboard_narrows_whole_workspace_responses_exactly_like_the_engine(voc, small_demo):
    # The dashboard asks the engine once per role and touchpoint and narrows survey,
    # segment and quarters in memory: each combination must match responses() on the
    # scoped workspace with the same filters.
    opts = [v for _, v in voc.filters["period"].options]
    touch = sorted(v for v in voc.filters["touchpoint"].options if v != ALL)
    assert {"support", "periodic", "onboarding"} <= set(touch)
    cases = [("nps", "Enterprise", ALL, (opts[2], opts[-2])),
             ("csat", "SMB", "support", (opts[0], opts[-1])),
             ("nps", ALL, "periodic", (opts[-3], opts[-1])),
             ("csat", "Mid-Market", "onboarding", (opts[0], opts[-1]))]  # none: empty
    try:
        for survey, segment, tp, period in cases:
            voc.filters["survey"].value = survey
            voc.filters["segment"].value = segment
            voc.filters["touchpoint"].value = tp
            voc.filters["period"].value = period
            ws = small_demo.where(segment=None if segment == ALL else segment)
            narrowed = period != (opts[0], opts[-1])
            r = sv.responses(ws, survey,
                             since=sv.period_bounds(period[0], "quarter")[0] if narrowed
                             else None,
                             until=sv.period_bounds(period[1], "quarter")[1] if narrowed
                             else None,
                             touchpoints=None if tp == ALL else [tp])
            direct = sv.SCORES[survey](r, survey=survey).iloc[0]
            k = voc.kpi(survey.upper())
            assert k.n == len(r) == direct["responses"], (survey, segment, tp, period)
            if pd.isna(direct[survey]):
                assert k.value is None and k.text == "–"
            else:
                assert k.value == pytest.approx(direct[survey])
    finally:
        voc.filters["survey"].value = "nps"
        voc.filters["segment"].value = ALL
        voc.filters["touchpoint"].value = ALL
        voc.filters["period"].value = (opts[0], opts[-1])


def test_dashboard_empty_selection_shows_a_note_not_an_error(voc):
    try:
        voc.filters["survey"].value = "ces"
        voc.filters["touchpoint"].value = "support"  # CES is asked at onboarding only
        assert voc.error is None
        assert voc.kpi("CES").text == "–"
        assert any("No CES responses" in n for n in voc.view.notes)
    finally:
        voc.filters["touchpoint"].value = ALL
        voc.filters["survey"].value = "nps"


def test_dashboard_launch_reports_a_workspace_without_surveys(tiny_ws):
    panel = VoiceOfCustomerDashboard.launch(tiny_ws)
    assert "has no survey_responses table" in panel.error


def test_launch_warms_every_survey_so_switching_asks_no_query(small_demo, monkeypatch):
    from cs_analysis.dashboard import surveys as dash_surveys

    app = VoiceOfCustomerDashboard.launch(small_demo)
    assert app.error is None
    direct = sv.csat(small_demo).iloc[0]

    def no_query(*a, **k):
        raise AssertionError("the engine was asked again")

    monkeypatch.setattr(dash_surveys, "responses", no_query)
    app.filters["survey"].value = "csat"
    app.filters["segment"].value = "SMB"
    assert app.error is None and app.kpi("CSAT").n < direct["responses"]
    app.filters["segment"].value = ALL
    assert app.kpi("CSAT").value == pytest.approx(direct["csat"])
