"""Coverage tiers, workload and the capacity plan (cs_analysis.capacity).

Expectations are worked out by hand in the comments (a six-account book, a three-month
plan with a ramping hire), or counted independently in pandas on the local calendar
(tickets per account-month in Tokyo and Los Angeles workspaces).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from cs_analysis import capacity as cap
from cs_analysis.workspace import open_workspace, write_workspace


def d(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


AS_OF = "2024-06-30"
CRITERIA = {"clock_start": "signup_date", "stages": [
    {"name": "value", "all": [{"milestone": "first_report_shared"}], "target_days": 30}]}

RULES = {"rules": [
    {"name": "enterprise", "tier": "high", "when": {"segment": "Enterprise"}},
    {"name": "large_contract", "tier": "high", "when": {"mrr": {"at_least": 8000}}},
    {"name": "mid_market", "tier": "low", "when": {"segment": "Mid-Market"}},
    {"name": "everyone_else", "tier": "tech"},
]}

# hours: high 10/4/6, low 5/2/3, tech 1/0.5/0.5 (onboarding/adoption/renewal);
# a CSM has 20 h x 0.4 = 8 h of account work a month
MODEL = {
    "hours_per_account_month": {
        "high": {"onboarding": 10, "adoption": 4, "renewal": 6},
        "low": {"onboarding": 5, "adoption": 2, "renewal": 3},
        "tech": {"onboarding": 1, "adoption": 0.5, "renewal": 0.5},
    },
    "renewal_window_days": 90,
    "csm": {"hours_per_month": 20, "utilisation_target": 0.4, "ramp_months": 1},
    "onboarding": {"months": 2, "concurrent_limit": 1, "specialists": 1},
    "new_account_tiers": {"Enterprise": "high", "Mid-Market": "low",
                          "SMB": {"low": 0.5, "tech": 0.5}},
}


def book_tables():
    """Six accounts; A6 churned before the as-of date (2024-06-30)."""
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4", "A5", "A6"],
        "signup_date": [d("2024-01-10"), d("2024-05-01"), d("2023-08-01"), d("2024-02-01"),
                        d("2024-02-01"), d("2024-01-01")],
        "account_name": ["One", "Two", "Three", "Four", "Five", "Six"],
        "segment": ["Enterprise", "Mid-Market", "Mid-Market", "SMB", "SMB", "SMB"],
        "plan": ["Enterprise", "Pro", "Pro", "Starter", "Starter", "Starter"],
        "industry": ["Retail", "Logistics", "Retail", "Retail", "Logistics", "Retail"],
        "employees": [2000, 300, 200, 20, 10, 5],
        "csm_owner": ["Kim", "Kim", "Lee", None, None, None],
        "touch_model": ["high", "low", "low", "tech", "tech", "tech"],
    })
    subs = pd.DataFrame({
        "account_id": ["A1", "A1", "A2", "A3", "A4", "A5", "A6"],
        "start_date": [d("2024-01-10"), d("2024-03-01"), d("2024-05-01"), d("2023-08-01"),
                       d("2024-02-01"), d("2024-02-01"), d("2024-01-01")],
        "end_date": [None, None, None, None, None, None, d("2024-03-01")],
        "mrr": [9000.0, 2000.0, 1500.0, 1200.0, 300.0, 9000.0, 200.0],
        "product": ["Analytics", "Automation", "Analytics", "Analytics", "Analytics",
                    "Analytics", "Analytics"],
        # A3's annual renewal is 32 days away (renewal window); A4 renews monthly
        "renewal_date": [d("2025-01-10"), d("2025-01-10"), d("2025-05-01"), d("2024-08-01"),
                         d("2024-07-01"), d("2025-02-01"), None],
        "term_months": [12, 12, 12, 12, 1, 12, 1],
    })
    ms = pd.DataFrame({
        "account_id": ["A1", "A3", "A4", "A5"],
        "milestone": ["first_report_shared"] * 4,
        "completed_at": pd.to_datetime(["2024-02-01 10:00", "2023-09-01 10:00",
                                        "2024-03-01 10:00", "2024-03-01 10:00"]),
    })
    return {"accounts": accounts, "subscriptions": subs, "onboarding_milestones": ms}


@pytest.fixture
def book(tmp_path):
    path = write_workspace(tmp_path / "book.duckdb", book_tables(), config={"as_of": AS_OF})
    return open_workspace(path)


# ======================================================================================
# Coverage rules
# ======================================================================================
def test_assign_coverage_by_hand(book):
    cov = cap.assign_coverage(book, RULES)
    got = cov.accounts.set_index("account_id")
    # A6 has no subscription on 2024-06-30: not in today's book.
    # A1 Enterprise -> enterprise; A5 SMB with MRR 9000 -> large_contract; A2, A3
    # Mid-Market -> mid_market; A4 -> everyone_else.
    assert list(got.index) == ["A1", "A2", "A3", "A4", "A5"]
    assert got["rule"].tolist() == ["enterprise", "mid_market", "mid_market",
                                    "everyone_else", "large_contract"]
    assert got["tier"].tolist() == ["high", "low", "low", "tech", "high"]
    # MRR from retention.mrr_at: A1 = 9000 + 2000; products: A1 has two
    assert got.loc["A1", "mrr"] == 11000 and got.loc["A1", "products"] == 2
    assert got.loc["A2", "products"] == 1
    # 4 of 5 agree with touch_model (A5 is tech touch today, high by the rule)
    assert cov.agreement_rate == pytest.approx(4 / 5)
    assert bool(got.loc["A5", "agrees"]) is False
    agree = cov.agreement.set_index(["touch_model", "tier"])["accounts"]
    assert agree[("tech", "high")] == 1 and agree[("tech", "tech")] == 1
    assert agree[("low", "low")] == 2
    per = cov.rules.set_index("rule")
    assert per.loc["mid_market", "accounts"] == 2
    assert per.loc["mid_market", "mrr"] == 1500 + 1200
    assert cov.notes == ()


def test_assign_coverage_at_start_keeps_churned_accounts(book):
    cov = cap.assign_coverage(book, RULES, measured_at="start")
    got = cov.accounts.set_index("account_id")
    # A6 measured on its first day (MRR 200): tech; A1 on 2024-01-10: MRR 9000, 1 product
    assert got.loc["A6", "tier"] == "tech"
    assert got.loc["A1", "mrr"] == 9000 and got.loc["A1", "products"] == 1


def test_rules_that_can_never_fire_are_reported_with_lines(book, tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(
        "rules:\n"                                   # 1
        "  - name: enterprise\n"                     # 2
        "    tier: high\n"                           # 3
        "    when:\n"                                # 4
        "      segment: Enterprise\n"                # 5
        "  - name: enterprise_again\n"               # 6
        "    tier: low\n"                            # 7
        "    when:\n"                                # 8
        "      segment: Enterprise\n"                # 9
        "  - name: big_enterprise\n"                 # 10
        "    tier: low\n"                            # 11
        "    when:\n"                                # 12
        "      segment: [Enterprise]\n"              # 13
        "      employees: {at_least: 1000}\n"        # 14
        "  - name: typo\n"                           # 15
        "    tier: low\n"                            # 16
        "    when:\n"                                # 17
        "      plan: Entreprise\n"                   # 18
        "  - name: unknown\n"                        # 19
        "    tier: low\n"                            # 20
        "    when:\n"                                # 21
        "      cloud_maturity: high\n"               # 22
        "  - name: rest\n"                           # 23
        "    tier: tech\n"                           # 24
        "  - name: after_rest\n"                     # 25
        "    tier: high\n"                           # 26
        "    when:\n"                                # 27
        "      segment: SMB\n", encoding="utf-8")    # 28
    rules = cap.load_rules(path)
    assert len(rules.warnings) == 3
    text = "\n".join(rules.warnings)
    assert f"{path}, line 6 (rule 'enterprise_again'): can never fire: it has the same" in text
    assert "line 10 (rule 'big_enterprise'): can never fire: it is narrower than" in text
    assert "line 25 (rule 'after_rest'): can never fire: it comes after the catch-all" in text
    cov = cap.assign_coverage(book, rules)
    notes = "\n".join(cov.notes)
    assert "line 18 (rule 'typo'): no account has plan 'Entreprise'" in notes
    assert "values in the data: Enterprise, Pro, Starter" in notes
    assert "line 22 (rule 'unknown'): unknown attribute 'cloud_maturity'" in notes
    assert "mrr" in notes and "products" in notes  # the derived attributes are listed
    assert set(cov.accounts["rule"]) == {"enterprise", "rest"}


@pytest.mark.parametrize("body, line, words", [
    ("rules:\n  - name: a\n    tier: medium\n", 3, "tier"),
    ("rules:\n  - name: a\n    tier: high\n    when:\n      mrr: {at_least: 10, below: 5}\n",
     5, "no value satisfies"),
    ("rules:\n  - name: a\n    tier: high\n    when:\n      mrr: {above: 10}\n", 5,
     "at_least"),
    ("rules:\n  - name: a\n    tier: high\n    when:\n      mrr: {at_least: ten}\n", 5,
     "must be a number"),
    ("rules:\n  - name: a\n    tier: high\n    tiers: low\n", 4, "unknown key 'tiers'"),
    ("rules:\n  - name: a\n    tier: high\n  - name: a\n    tier: low\n", 4, "used twice"),
    ("rules:\n  - name: a\n    tier: high\n    when:\n      plan: []\n", 5, "non-empty"),
    ("rules: []\n", 1, "rules"),
])
def test_bad_rule_files_name_file_and_line(tmp_path, body, line, words):
    path = tmp_path / "bad.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(cap.CoverageError) as exc:
        cap.load_rules(path)
    msg = str(exc.value)
    assert msg.startswith(f"coverage rules {path}, line {line}"), msg
    assert words in msg


def test_default_rules_file_loads_without_warnings():
    rules = cap.load_rules()
    assert rules.warnings == ()
    assert [r.tier for r in rules.rules] == ["high", "high", "low", "tech"]


# ======================================================================================
# Workload
# ======================================================================================
def test_workload_by_hand(book):
    wl = cap.workload(book, MODEL, as_of=AS_OF, criteria=CRITERIA)
    acc = wl.accounts.set_index("account_id")
    # phases on 2024-06-30: A2 has no value milestone, 60 days after signup: onboarding;
    # A3 renews (annual) on 2024-08-01, within 90 days: renewal; A4 renews monthly on
    # 2024-07-01 (term 1 < 12): no renewal window, adoption; A1, A5 adoption.
    assert acc["phase"].to_dict() == {"A1": "adoption", "A2": "onboarding", "A3": "renewal",
                                      "A4": "adoption", "A5": "adoption"}
    # hours: A1 high adoption 4, A2 low onboarding 5, A3 low renewal 3, A4/A5 tech 0.5
    assert acc["hours"].to_dict() == {"A1": 4, "A2": 5, "A3": 3, "A4": 0.5, "A5": 0.5}
    per = wl.per_csm.set_index("csm_owner")
    # Kim: 4 + 5 = 9 h > 20 x 0.4 = 8 h: overloaded; Lee: 3 h; pooled: 1 h, never flagged
    assert per.loc["Kim", "hours"] == 9 and bool(per.loc["Kim", "overloaded"])
    assert per.loc["Kim", "load"] == pytest.approx(9 / 8)
    assert per.loc["Kim", "utilisation"] == pytest.approx(9 / 20)
    assert per.loc["Lee", "hours"] == 3 and not bool(per.loc["Lee", "overloaded"])
    assert per.loc[cap.NO_CSM, "hours"] == 1 and pd.isna(per.loc[cap.NO_CSM, "overloaded"])
    assert wl.overloaded == ["Kim"]
    tier = wl.per_tier.set_index(["tier", "phase"])["hours"]
    assert tier[("low", "onboarding")] == 5 and tier[("tech", "adoption")] == 1
    # one onboarding (A2, low touch) for 1 specialist x 1 place: at the limit, not over
    ob = wl.onboardings.iloc[0]
    assert ob["in_flight"] == 1 and ob["capacity"] == 1 and not ob["over_limit"]


def test_workload_with_rules_uses_the_rule_tiers(book):
    wl = cap.workload(book, MODEL, as_of=AS_OF, rules=RULES, criteria=CRITERIA)
    acc = wl.accounts.set_index("account_id")
    # A5 is high touch by the rule (MRR 9000): 4 h of adoption instead of 0.5
    assert acc.loc["A5", "tier"] == "high" and acc.loc["A5", "hours"] == 4
    assert any("coverage rules" in n for n in wl.notes)


def test_renewal_window_bounds(book):
    # on 2024-05-03 A3's renewal (2024-08-01) is 90 days away: inside; on 2024-05-02, 91
    wl = cap.workload(book, MODEL, as_of="2024-05-03", criteria=CRITERIA)
    assert wl.accounts.set_index("account_id").loc["A3", "phase"] == "renewal"
    wl = cap.workload(book, MODEL, as_of="2024-05-02", criteria=CRITERIA)
    assert wl.accounts.set_index("account_id").loc["A3", "phase"] == "adoption"


# ======================================================================================
# Plan
# ======================================================================================
PLAN_MODEL = {
    **MODEL,
    "renewal_window_days": 0,
    # 20 h x 0.5 = 10 h per CSM; a hire carries 1/2 in their first month, then 1
    "csm": {"hours_per_month": 20, "utilisation_target": 0.5, "ramp_months": 1},
    "onboarding": {"months": 2, "concurrent_limit": 2, "specialists": 1},
    "new_account_tiers": {"Enterprise": "high", "SMB": {"low": 0.5, "tech": 0.5}},
}


def plan_inputs_by_hand():
    book = pd.DataFrame({"tier": ["high", "low"], "phase": ["adoption", "adoption"],
                         "accounts": [2, 3]})
    pipe = cap.load_pipeline(pd.DataFrame({
        "month": ["2027-01", "2027-01", "2027-02", "2027-02", "2027-03", "2027-03"],
        "segment": ["Enterprise", "SMB"] * 3,
        "new_accounts": [1, 2, 2, 0, 0, 4]}))
    return cap.PlanInputs(book, 2, pipe, d("2026-12-31"))


def test_three_month_plan_by_hand():
    months, hires = cap.plan_capacity(plan_inputs_by_hand(), PLAN_MODEL)
    m = months.set_index("month")
    # Book: 2 high x 4 h + 3 low x 2 h = 14 h every month.
    assert (m["hours_book"] == 14).all()
    # New accounts by tier: Jan high 1, low 1, tech 1 (SMB 2 split half/half);
    # Feb high 2; Mar low 2, tech 2.
    # Jan: Jan cohort onboarding: 1x10 + 1x5 + 1x1 = 16 -> 30 h -> 3.0 CSMs
    # Feb: Jan cohort still onboarding (2 months) 16 + Feb 2x10 = 20 -> 36 + 14 = 50 h
    #      -> 5.0 CSMs
    # Mar: Jan cohort in adoption 1x4 + 1x2 + 1x0.5 = 6.5; Feb onboarding 20;
    #      Mar onboarding 2x5 + 2x1 = 12 -> 38.5 + 14 = 52.5 h -> 5.25 -> 6 CSMs
    assert m["hours_new"].tolist() == [16, 36, 38.5]
    assert m["hours"].tolist() == [30, 50, 52.5]
    assert m["csms_needed_fte"].tolist() == pytest.approx([3.0, 5.0, 5.25])
    assert m["csms_needed"].tolist() == [3, 5, 6]
    # onboardings run by specialists (high, low): Jan 1 + 1 = 2; Feb 2 + 2 = 4;
    # Mar 2 (Feb) + 2 (Mar low) = 4; 2 per specialist -> 1, 2, 2 specialists
    assert m["onboardings_in_flight"].tolist() == [2, 4, 4]
    assert m["specialists_needed"].tolist() == [1, 2, 2]
    # Hires (2 CSMs on staff):
    # Jan needs 3.0: a hire should have joined in Dec (one month of ramp) -> joins Jan,
    #   late, carrying 0.5 -> 2.5 < 3 -> a second late Jan hire -> 3.0.
    # Feb needs 5.0: staff 2 + 1 + 1 = 4 -> a hire joining Jan (fully ramped in Feb) -> 5.
    # Mar needs 5.25: 2 + 3 = 5 -> a hire joining Feb -> 6.
    assert hires["join_month"].tolist() == ["2027-01", "2027-01", "2027-01", "2027-02"]
    assert hires["needed_from"].tolist() == ["2027-01", "2027-01", "2027-02", "2027-03"]
    assert hires["late"].tolist() == [True, True, False, False]
    # capacity with ramp: Jan 2 + 3 x 0.5 = 3.5; Feb 2 + 3 + 0.5 = 5.5; Mar 2 + 4 = 6
    assert m["csm_capacity_fte"].tolist() == [3.5, 5.5, 6.0]
    assert m["csms_on_staff"].tolist() == [5, 6, 6]
    assert m["hires_joining"].tolist() == [3, 1, 0]
    assert not m["short"].any()


def test_plan_scenarios_side_by_side(book, tmp_path):
    pipe = tmp_path / "pipe.csv"
    pipe.write_text("month,segment,new_accounts\n2024-07,Enterprise,1\n2024-07,SMB,2\n"
                    "2024-08,Enterprise,2\n2024-09,SMB,4\n", encoding="utf-8")
    plan = cap.capacity_plan(book, PLAN_MODEL, pipe, as_of=AS_OF, criteria=CRITERIA, scenarios={
        "all_tech": {"new_account_tiers": {"Enterprise": "tech", "SMB": "tech"},
                     "description": "everyone on tech touch"},
        "double": {"pipeline_factor": 2.0}})
    comp = plan.comparison.set_index("scenario")
    assert list(comp.index) == ["base", "all_tech", "double"]
    assert comp.loc["double", "new_accounts"] == 2 * comp.loc["base", "new_accounts"] == 18
    base = plan.months[plan.months["scenario"] == "base"].set_index("month")
    tech = plan.months[plan.months["scenario"] == "all_tech"].set_index("month")
    # today's book at 2024-06-30 (touch_model tiers, PLAN_MODEL hours; no renewal window
    # in PLAN_MODEL): A1 high adoption 4, A2 low onboarding 5, A3 low adoption 2,
    # A4 + A5 tech adoption 0.5 each = 12 h
    assert (base["hours_book"] == 12).all()
    # all tech: Jul 3 accounts onboarding x 1 h = 3 h; no specialist onboardings
    assert tech.loc["2024-07", "hours_new"] == 3
    assert (tech["onboardings_in_flight"] == 0).all()
    assert comp.loc["all_tech", "peak_csms_needed"] <= comp.loc["base", "peak_csms_needed"]
    # headcount = the CSM owners of the live book (Kim, Lee)
    assert plan.inputs.headcount == 2


def test_default_model_and_pipeline_load():
    model = cap.load_model()
    assert set(model.hours) == set(cap.TIERS) and model.ramp(1) < 1 == model.ramp(99)
    pipe = cap.load_pipeline()
    assert list(pipe.columns) == ["month", "period", "segment", "new_accounts"]
    assert set(pipe["segment"]) <= set(model.new_account_tiers)
    assert {"mid_market_tech", "bigger_q2"} <= set(model.scenarios)


# -- bad files --------------------------------------------------------------------------
@pytest.mark.parametrize("csv, message", [
    ("month,segment,new_accounts\n2027-01,SMB,3\n2027-13,SMB,4\n",
     "row 2 (line 3), column month: expected a month like 2027-03, got '2027-13'"),
    ("month,segment,new_accounts\n2027-01,SMB,3.5\n",
     "row 1 (line 2), column new_accounts: expected a whole number >= 0, got '3.5'"),
    ("month,segment,new_accounts\n2027-01,SMB,-1\n",
     "row 1 (line 2), column new_accounts: expected a whole number >= 0, got '-1'"),
    ("month,segment,new_accounts\n2027-01,,3\n",
     "row 1 (line 2), column segment: expected a segment name, got ''"),
    ("month,segment\n2027-01,SMB\n", "line 1: column(s) new_accounts missing"),
    ("month,segment,new_accounts\n2027-01,SMB,3\n2027-01,SMB,4\n",
     "row 2 (line 3): 2027-01 / SMB appears twice"),
    ("month,segment,new_accounts\n2027-01,SMB,3,9\n", "row 1 (line 2): more values"),
])
def test_bad_pipeline_csv_names_file_row_and_column(tmp_path, csv, message):
    path = tmp_path / "pipe.csv"
    path.write_text(csv, encoding="utf-8")
    with pytest.raises(cap.CapacityError) as exc:
        cap.load_pipeline(path)
    assert str(exc.value) == f"pipeline {path}, {message}" or (
        str(exc.value).startswith(f"pipeline {path}, ") and message in str(exc.value)), str(
        exc.value)


def test_pipeline_yaml_and_its_errors(tmp_path):
    path = tmp_path / "pipe.yml"
    path.write_text("pipeline:\n  - {month: 2027-01, segment: SMB, new_accounts: 3}\n",
                    encoding="utf-8")
    assert cap.load_pipeline(path)["new_accounts"].tolist() == [3]
    path.write_text("pipeline:\n  - {month: 2027-01, segment: SMB, new_accounts: 3}\n"
                    "  - {month: 2027-02, segment: SMB, new_acounts: 3}\n", encoding="utf-8")
    with pytest.raises(cap.CapacityError, match=r"row 2 \(line 3\), column new_acounts"):
        cap.load_pipeline(path)


@pytest.mark.parametrize("patch, line, words", [
    ("  ramp_months: 3\n", "  ramp_months: 3.0\n", "ramp_months"),
    ("  utilisation_target: 0.75\n", "  utilisation_target: '0.75'\n", "utilisation_target"),
    ("  SMB: {low: 0.1, tech: 0.9}\n", "  SMB: {low: 0.1, tech: 0.8}\n", "add up to 1"),
    ("renewal_window_days: 90\n", "renewal_window_days: 90\nrenewal_days: 3\n", "unknown key"),
])
def test_bad_model_files_name_file_and_line(tmp_path, patch, line, words):
    text = cap.default_model_path().read_text(encoding="utf-8")
    assert patch in text
    bad = text.replace(patch, line)
    path = tmp_path / "model.yml"
    path.write_text(bad, encoding="utf-8")
    want = bad.splitlines().index(line.splitlines()[-1]) + 1
    with pytest.raises(cap.CapacityError) as exc:
        cap.load_model(path)
    assert str(exc.value).startswith(f"capacity model {path}, line {want}"), str(exc.value)
    assert words in str(exc.value)


# ======================================================================================
# Evaluation: ticket load on the local calendar
# ======================================================================================
@pytest.mark.parametrize("tz", ["Asia/Tokyo", "America/Los_Angeles", "UTC"])
def test_ticket_load_counts_local_days(tmp_path, tz):
    tables = book_tables()
    # tickets minutes either side of local midnight at the end of the as-of day
    # (2024-06-30) and of a month end, written as local wall-clock times -> UTC
    local = pd.to_datetime(["2024-06-30 23:55", "2024-07-01 00:05", "2024-05-31 23:59",
                            "2024-06-01 00:01", "2024-06-30 23:59"])
    utc = local.tz_localize(tz).tz_convert("UTC").tz_localize(None)
    tables["support_tickets"] = pd.DataFrame({
        "ticket_id": ["T1", "T2", "T3", "T4", "T5"],
        "account_id": ["A2", "A2", "A3", "A3", "A4"], "opened_at": utc})
    ws = open_workspace(write_workspace(tmp_path / "t.duckdb", tables,
                                        config={"as_of": AS_OF, "timezone": tz}))
    ev = cap.evaluate_coverage(ws, RULES, criteria=CRITERIA, min_accounts=2)
    tiers = ev.tiers.set_index("tier")
    # brute force: local dates in pandas, on or before 2024-06-30
    days = utc.tz_localize("UTC").tz_convert(tz).tz_localize(None).normalize()
    kept = tables["support_tickets"][days <= pd.Timestamp(AS_OF)]
    assert len(kept) == 4  # T2 (00:05 on 1 July, local) is after the as-of day
    life_days = {"A2": (d(AS_OF) - d("2024-05-01")).days, "A3": (d(AS_OF) - d("2023-08-01")).days}
    want_low = 3 / (sum(life_days.values()) / (365.25 / 12))  # T1, T3, T4 on A2 / A3
    assert tiers.loc["low", "tickets"] == 3
    assert tiers.loc["low", "tickets_per_account_month"] == pytest.approx(want_low)
    # tiers by the rule at each account's start: high A1, A5; low A2, A3; tech A4, A6
    assert tiers["accounts"].to_dict() == {"high": 2, "low": 2, "tech": 2}
    assert tiers.loc["tech", "churned"] == 1  # A6
    assert any("health" in n for n in ev.notes)


# ======================================================================================
# Evaluation finds the planted mismatch (demo)
# ======================================================================================
@pytest.fixture(scope="module")
def planted_demo(tmp_path_factory):
    from cs_analysis import demo

    tables = demo.generate(3000, seed=42, usage=False)
    path = tmp_path_factory.mktemp("planted") / "demo.duckdb"
    return open_workspace(write_workspace(path, tables, config={"as_of": str(demo.DEMO_AS_OF)}))


VALUE_BY_MILESTONE = {"clock_start": "kickoff_date", "if_no_clock_start": "signup_date",
                      "stages": [{"name": "value", "all": [{"milestone": "first_report_shared"}],
                                  "target_days": {"SMB": 45, "Mid-Market": 40,
                                                  "Enterprise": 30}}]}


def test_evaluation_finds_the_planted_paper_migration_group(planted_demo):
    from cs_analysis import demo

    plant = demo.PLANTED["paper_migration"]
    ev = cap.evaluate_coverage(planted_demo, None, criteria=VALUE_BY_MILESTONE)
    flagged = ev.flagged
    hit = flagged[(flagged["attribute"] == "industry") & (flagged["value"] == plant["industry"])]
    assert len(hit) == 1, flagged
    row = hit.iloc[0]
    assert row["tier"] == "low" and row["looks_like"] == "high" and bool(row["slower"])
    assert row["ttv_ratio"] > 1.4 and row["ttv_p_adjusted"] < 0.05
    # nothing else is flagged as needing more help (no false alarm elsewhere)
    others = flagged[(flagged["looks_like"].notna()) & ~flagged.index.isin(hit.index)
                     & flagged["tier"].isin(["low", "tech"])]
    assert others.empty, others
    # the listed accounts are the low-tier Logistics accounts
    mm = ev.mismatches
    assert set(mm["group"]) == {f"industry = {plant['industry']}"}
    acc = planted_demo.table("accounts").to_pandas().set_index("account_id")
    assert (acc.loc[mm["account_id"], "industry"] == plant["industry"]).all()
    assert (mm["tier"] == "low").all()
    assert any("look like high-touch" in n for n in ev.notes)


def test_evaluation_tiers_on_the_demo(planted_demo):
    ev = cap.evaluate_coverage(planted_demo, None, criteria=VALUE_BY_MILESTONE)
    t = ev.tiers.set_index("tier")
    # high-touch accounts stay longer than tech-touch ones (segments churn differently)
    assert t.loc["high", "retention_12m"] > t.loc["tech", "retention_12m"]
    assert t["accounts"].sum() == len(ev.coverage.accounts)
    assert not math.isnan(t.loc["low", "median_ttv_days"])
    assert np.isfinite(t["tickets_per_account_month"]).all()


def test_arguments_are_checked(book):
    from cs_analysis.errors import ArgumentError

    with pytest.raises(ArgumentError):
        cap.evaluate_coverage(book, RULES, criteria=CRITERIA, alpha=1.5)
    with pytest.raises(ArgumentError):
        cap.assign_coverage(book, RULES, measured_at="yesterday")
    with pytest.raises(ArgumentError):
        cap.plan_capacity(plan_inputs_by_hand(), PLAN_MODEL, pipeline_factor=-1)
    with pytest.raises(ArgumentError):
        cap.plan_capacity(plan_inputs_by_hand(), PLAN_MODEL, utilisation_target=1.5)
    with pytest.raises(ArgumentError):
        cap.plan_capacity(plan_inputs_by_hand(), PLAN_MODEL, hours_factor={"medium": 2})


# ======================================================================================
# Dashboard: sliders redraw from small frames, with no engine query
# ======================================================================================
@pytest.fixture
def planning_app(book, tmp_path):
    from cs_analysis.dashboard import CapacityPlanningDashboard

    pipe = tmp_path / "pipe.csv"
    pipe.write_text("month,segment,new_accounts\n2024-07,Enterprise,1\n2024-07,SMB,2\n"
                    "2024-08,Enterprise,2\n2024-09,SMB,4\n", encoding="utf-8")
    model = {**PLAN_MODEL, "scenarios": {"all_tech": {
        "description": "everyone on tech touch",
        "new_account_tiers": {"Enterprise": "tech", "SMB": "tech"}}}}
    return CapacityPlanningDashboard(book, model=model, pipeline=str(pipe), criteria=CRITERIA)


class _NoEngine:
    def __getattr__(self, name):
        raise AssertionError(f"the dashboard queried the workspace ({name}) on a slider move")


def test_dashboard_sliders_are_arithmetic_only(planning_app):
    app = planning_app
    assert app.error is None
    before = app.kpi("CSMs needed").value
    # the KPI is the plan's peak: the same arithmetic as plan_capacity
    months, _ = cap.plan_capacity(app.inputs(), app.model)
    assert before == pytest.approx(months["csms_needed_fte"].max())
    app.ws = _NoEngine()  # from now on any workspace access fails the test
    for name, value in (("hours_high", 8.0), ("utilisation", 0.3), ("growth", 50.0),
                        ("scenario", "all_tech")):
        app.filters[name].value = value
        assert app.error is None, app.error
    # doubling high-touch hours (4 -> 8, factor 2), utilisation 0.3, +50% pipeline:
    # the same numbers through plan_capacity
    months, _ = cap.plan_capacity(app.inputs(), app.model, scenario="all_tech",
                                  pipeline_factor=1.5, hours_factor={"high": 2.0},
                                  utilisation_target=0.3,
                                  new_account_tiers={"Enterprise": "tech", "SMB": "tech"})
    assert app.kpi("CSMs needed").value == pytest.approx(months["csms_needed_fte"].max())
    assert app.kpi("CSMs needed").value != before


def test_dashboard_workload_table_and_csv(planning_app):
    app = planning_app
    table = app.table.set_index("csm_owner")
    # PLAN_MODEL hours (no renewal window): Kim = A1 high adoption 4 + A2 low onboarding 5
    assert table.loc["Kim", "hours"] == 9
    # capacity 20 h x 0.5 = 10 h: Kim not overloaded; at utilisation 0.4 (8 h) he is
    assert not bool(table.loc["Kim", "overloaded"])
    app.filters["utilisation"].value = 0.4
    assert bool(app.table.set_index("csm_owner").loc["Kim", "overloaded"])
    assert app.kpi("Overloaded").value == 1
    import base64

    csv = base64.b64decode(app.csv_href.split(",", 1)[1]).decode("utf-8-sig")
    assert csv.splitlines()[0].startswith("csm_owner,accounts")
    assert "Kim" in csv


def test_dashboard_bad_model_file_shows_its_line(book, tmp_path):
    from cs_analysis.dashboard import CapacityPlanningDashboard

    path = tmp_path / "model.yml"
    path.write_text(cap.default_model_path().read_text(encoding="utf-8").replace(
        "ramp_months: 3", "ramp_months: three"), encoding="utf-8")
    panel = CapacityPlanningDashboard.launch(book, model=str(path))
    assert "capacity model" in panel.error and "line" in panel.error


def test_charts_serialise_without_nan(book):
    import json

    from cs_analysis import charts

    ev = cap.evaluate_coverage(book, RULES, criteria=CRITERIA, min_accounts=2)
    wl = cap.workload(book, MODEL, as_of=AS_OF, criteria=CRITERIA)
    months, _ = cap.plan_capacity(plan_inputs_by_hand(), PLAN_MODEL)
    for chart in (charts.coverage_agreement(ev.coverage.agreement),
                  charts.coverage_outcomes(ev.tiers), charts.coverage_misfits(ev.groups),
                  charts.csm_workload(wl.per_csm), charts.csms_needed(months)):
        json.dumps(chart.to_dict(), allow_nan=False)  # a NaN would break the widget


def test_a_rule_with_an_empty_when_is_a_catch_all(book):
    rules = cap.load_rules({"rules": [{"name": "a", "tier": "low", "when": None},
                                      {"name": "b", "tier": "high", "when": {}}]})
    assert rules.rules[0].catch_all and "comes after the catch-all" in rules.warnings[0]
    assert set(cap.assign_coverage(book, rules).accounts["tier"]) == {"low"}
