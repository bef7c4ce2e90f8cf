"""Journey maps, comparison, stage flow, stakeholders, goals and the workshop session.

Numbers are checked against brute-force pandas computations on small workspaces built
here (and a textbook product-limit estimate for the medians), and against effects planted
in the demo data (champion departures raise churn 2.2x, demo.PLANTED).
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from cs_analysis import journey as j
from cs_analysis.dashboard import JourneyWorkshopDashboard, SharedGoalsDashboard
from cs_analysis.journey import compare as jcompare
from cs_analysis.workspace import open_workspace, write_workspace

D = dt.date.fromisoformat
TS = pd.Timestamp

MINIMAL = """\
title: T
team: cs
persona:
  name: P
  role: owner
  domain: business
stages:
  - name: A
    signal: {milestone: m1}
"""


def write(tmp_path, text: str, name: str = "map.yml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


# -- parsing and round trips -----------------------------------------------------------
def test_example_maps_load_and_disagree():
    product, cs = j.default_maps()
    assert product.team == "product" and cs.team == "cs"
    assert product.persona.domain != cs.persona.domain
    cmp = j.compare_maps(product, cs)
    assert cmp.only_a and cmp.only_b and cmp.order_conflicts and cmp.success_differs


@pytest.mark.parametrize("name", ["product_team.yml", "cs_team.yml"])
def test_saved_maps_round_trip_exactly(tmp_path, name):
    m = j.load_map(j.journeys_dir() / name)
    out = j.save_map(m, tmp_path / "copy.yml")
    again = j.load_map(out)
    assert again == m
    assert j.dump_map(again) == out.read_text(encoding="utf-8")
    # edited maps round-trip too (aliases, signals, goals, unicode)
    edited = j.rename_stage(m, m.stages[0].name, "初期設定 / set-up")
    edited = j.set_signal(edited, edited.stages[-1].name,
                          {"events": ["report_shared"], "at_least": 3, "within_days": 14})
    assert j.load_map(j.save_map(edited, tmp_path / "e.yml")) == edited


def test_save_version_numbers_files(tmp_path):
    m = j.load_map(j.journeys_dir() / "cs_team.yml")
    p1, s1 = j.save_version(m, tmp_path, "agreed")
    p2, s2 = j.save_version(m, tmp_path, "agreed")
    assert (p1.name, p2.name) == ("agreed-v1.yml", "agreed-v2.yml")
    assert (s1.version, s2.version) == (1, 2)
    assert j.load_map(p2) == s2


BAD = [
    # (file text, substrings the message must contain)
    ("title: [unclosed\n", ["not valid YAML", "line 2, column 1"]),
    ("- a\n- b\n", ["expected a mapping", "list"]),
    (MINIMAL.replace("team: cs\n", ""), ["(team): `team` is required"]),
    (MINIMAL.replace("title: T", "title: T\ncolour: red"), ["line 2", "unknown key 'colour'"]),
    (MINIMAL.replace("persona:\n  name: P\n  role: owner\n  domain: business\n", ""),
     ["(persona): `persona` is required"]),
    (MINIMAL.replace("role: owner", "role: boss"), ["line 5", "persona.role", "'boss'",
                                                    "executive sponsor"]),
    (MINIMAL.replace("domain: business", "domain: legal"), ["persona.domain", "'legal'"]),
    (MINIMAL.replace("  domain: business", "  domain: business\n  decision_style: chaos"),
     ["decision_style", "'chaos'", "top_down"]),
    (MINIMAL.replace("  domain: business", "  domain: business\n  goals: grow"),
     ["persona.goals", "list of non-empty texts", "'grow'"]),
    (MINIMAL.replace("title: T", "title: T\nversion: 0"), ["version", "whole number >= 1"]),
    (MINIMAL.replace("  - name: A\n    signal: {milestone: m1}\n", "  []\n"),
     ["`stages` must be a non-empty list"]),
    (MINIMAL.replace("  - name: A", "  - customer_goal: x"),
     ["stages[0].name", "`name` is required"]),
    (MINIMAL.replace("  - name: A", "  - name: [A]"), ["stages[0].name", "must be text"]),
    (MINIMAL + "  - name: a\n", ["stages[1].name", "already used by stage 'A'"]),
    (MINIMAL + "  - name: B\n    aliases: [A]\n", ["already used by stage 'A'"]),
    (MINIMAL + "  - name: B\n    wheel: 3\n", ["line 11", "unknown key 'wheel'"]),
    (MINIMAL + "  - name: B\n    signal: data_imported\n",
     ["stages[1].signal", "must be a mapping"]),
    (MINIMAL + "  - name: B\n    signal: {}\n", ["exactly one of", "found: none"]),
    (MINIMAL + "  - name: B\n    signal: {milestone: x, survey: nps}\n",
     ["exactly one of", "milestone, survey"]),
    (MINIMAL + "  - name: B\n    signal: {events: report_shared}\n",
     ["stages[1].signal.events", "list of non-empty texts"]),
    (MINIMAL + "  - name: B\n    signal: {events: [x], at_least: three}\n",
     ["signal.at_least", "whole number >= 1", "'three'"]),
    (MINIMAL + "  - name: B\n    signal: {events: [x], within_days: 0}\n",
     ["signal.within_days", "whole number >= 1"]),
    (MINIMAL + "  - name: B\n    signal: {active_users: 2.5}\n",
     ["signal.active_users", "whole number"]),
    (MINIMAL + "  - name: B\n    signal: {milestone: m, at_least: 2}\n",
     ["`at_least` does not apply to a milestone signal"]),
    (MINIMAL + "  - name: B\n    signal: {survey: ces, min_score: high}\n",
     ["signal.min_score", "must be a number"]),
    (MINIMAL + "goals: {a: 1}\n", ["`goals` must be a list"]),
    (MINIMAL + "goals:\n  - name: g\n    metric: nps\n    target: 30\n",
     ["goals[0].layer", "`layer` is required"]),
    (MINIMAL + "goals:\n  - {name: g, layer: revenue, metric: nps, target: 30}\n",
     ["goals[0].layer", "'revenue'", "adoption"]),
    (MINIMAL + "goals:\n  - {name: g, layer: outcome, metric: mrr, target: 30}\n",
     ["goals[0].metric", "'mrr'", "stage_share"]),
    (MINIMAL + "goals:\n  - {name: g, layer: outcome, metric: nps, target: lots}\n",
     ["goals[0].target", "must be a number"]),
    (MINIMAL + "goals:\n  - {name: g, layer: outcome, metric: nps, target: 300}\n",
     ["NPS target is between -100 and 100"]),
    (MINIMAL + "goals:\n  - {name: g, layer: outcome, metric: stage_share, target: 60,"
               " stage: A, within_days: 30}\n", ["share between 0 and 1"]),
    (MINIMAL + "goals:\n  - {name: g, layer: outcome, metric: stage_share, target: .6}\n",
     ["needs `stage`"]),
    (MINIMAL + "goals:\n  - {name: g, layer: outcome, metric: stage_share, target: .6,"
               " stage: Z, within_days: 30}\n", ["no stage 'Z'", "the stages are: A"]),
    (MINIMAL + "  - name: B\ngoals:\n  - {name: g, layer: outcome, metric: stage_share,"
               " target: .6, stage: B, within_days: 30}\n", ["stage 'B' has no data signal"]),
    (MINIMAL + "goals:\n  - {name: g, layer: outcome, metric: stage_share, target: .6,"
               " stage: A}\n", ["needs `within_days`"]),
    (MINIMAL + "goals:\n  - {name: g, layer: adoption, metric: nps, target: 1,"
               " direction: up}\n", ["goals[0].direction", "'up'", "at_least"]),
    (MINIMAL + "goals:\n  - {name: g, layer: outcome, metric: nps, target: 1}\n"
               "  - {name: G, layer: outcome, metric: nps, target: 2}\n",
     ["goals[1].name", "used twice"]),
    # schema (pydantic through config.validate): 3.0 is not a whole number, kinds of value
    (MINIMAL + "  - name: B\n    signal: {events: [x], at_least: 3.0}\n",
     ["line 11", "signal.at_least", "whole number >= 1", "3.0"]),
    (MINIMAL.replace("persona:\n  name: P\n  role: owner\n  domain: business\n",
                     "persona: someone\n"), ["(persona)", "`persona` must be a mapping"]),
    (MINIMAL + "  - name: B\n    signal: {milestone: [a, b]}\n",
     ["stages[1].signal.milestone", "must be text"]),
    (MINIMAL + "  - name: B\n    signal: {milestone: m, colour: red}\n",
     ["line 11", "unknown key 'colour'", "milestone"]),
    (MINIMAL + "  - name: B\n    signal: {survey: ces, at_least: 2}\n",
     ["`at_least` does not apply to a survey signal"]),
    # the safe reader: duplicate keys (both lines) and alias bombs
    (MINIMAL.replace("team: cs\n", "team: cs\nteam: product\n"),
     ["duplicate key 'team'", "first on line 2", "again on line 3"]),
    ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n"
        for i in range(8)), ["aliases"]),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_every_bad_map_has_a_clear_error(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(j.JourneyMapError) as err:
        j.load_map(path)
    msg = str(err.value)
    assert str(path) in msg
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(j.JourneyMapError, match="no such file"):
        j.load_map(tmp_path / "nope.yml")
    p = tmp_path / "bin.yml"
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(j.JourneyMapError, match="not UTF-8 text.*save it as UTF-8"):
        j.load_map(p)


# -- comparison -------------------------------------------------------------------------
def _map(team, stages, **persona):
    p = {"name": "P", "role": "owner", "domain": "business", **persona}
    return j.load_map({"title": team, "team": team, "persona": p, "stages": stages})


def test_compare_matches_by_name_and_alias_and_finds_differences():
    a = _map("product", [{"name": "Setup", "success": "configured"}, {"name": "Feature A"},
                         {"name": "Feature B"}, {"name": "Feature C"}, {"name": "Only A"}])
    b = _map("cs", [{"name": "set-up", "success": "Configured"},
                    {"name": "Value", "aliases": ["feature b"], "success": "x"},
                    {"name": "feature_a"}, {"name": "Feature C"}, {"name": "Renewal"}],
             role="admin")
    cmp = j.compare_maps(a, b)
    s = cmp.stages.set_index("key")
    assert s.loc["Setup", "matched_by"] == "name"  # case, '-' and '_' ignored
    assert s.loc["Feature B", "b_name"] == "Value" and s.loc["Feature B", "matched_by"] == "alias"
    assert cmp.only_a == ["Only A"] and cmp.only_b == ["Renewal"]
    # a: A(2) B(3) C(4); b: B(2) A(3) C(4) -> moving one of A / B suffices
    assert len(cmp.order_conflicts) == 1 and cmp.order_conflicts[0] in ("Feature A", "Feature B")
    assert not s.loc["Setup", "success_differs"]  # same text up to case
    assert not s.loc["Feature B", "success_differs"]  # a has no success text
    assert cmp.persona.set_index("field").loc["role", "differs"]
    html = cmp.html()
    assert html.count('data-status="only_a"') == 1 and "cs-diff-order" in html
    assert len(cmp.stages) == 6


def test_compare_escapes_html():
    a = _map("a", [{"name": "<script>x</script>"}])
    html = j.compare_maps(a, a).html()
    assert "<script>x" not in html and "&lt;script&gt;" in html


def test_lis_conflicts_are_minimal():
    rng = np.random.default_rng(1)
    for _ in range(30):
        perm = list(rng.permutation(7))
        keep = jcompare._lis_keep(perm)
        kept = [perm[i] for i in sorted(keep)]
        assert kept == sorted(kept)
        # brute force: the longest increasing subsequence length
        best = 0
        for mask in range(1 << 7):
            sub = [perm[i] for i in range(7) if mask >> i & 1]
            if sub == sorted(sub):
                best = max(best, len(sub))
        assert len(keep) == best


# -- editing -------------------------------------------------------------------------------
def test_edits():
    m = j.load_map(j.journeys_dir() / "cs_team.yml")
    r = j.rename_stage(m, "First value", "First report shared with the boss")
    assert "First value" in r.stage("First report shared with the boss").aliases
    assert r.goals[0].stage == "First report shared with the boss"  # goal follows
    with pytest.raises(j.JourneyMapError, match="already used"):
        j.rename_stage(m, "Kickoff", "set-up")
    mv = j.move_stage(m, "Kickoff", 99)
    assert mv.stage_names[-1] == "Kickoff" and len(mv.stages) == len(m.stages)
    mg = j.merge_stages(m, "Set-up", "Connect integration")
    assert "Connect integration" in mg.stage("Set-up").aliases
    assert len(mg.stages) == len(m.stages) - 1
    assert mg.stage("set-up").signal == m.stage("Set-up").signal
    ad = j.add_stage(m, j.Stage("Training", owner="cs"), after="Kickoff")
    assert ad.stage_names[1] == "Training"
    with pytest.raises(j.JourneyMapError, match="measured by goal"):
        j.remove_stage(m, "First value")
    assert "Kickoff" not in j.remove_stage(m, "Kickoff").stage_names
    with pytest.raises(j.JourneyMapError, match="exactly one of"):
        j.set_signal(m, "Kickoff", {"events": ["x"], "milestone": "y"})
    g = j.add_goal(m, {"name": "Active", "layer": "adoption", "metric": "active_share",
                       "target": 0.5, "events": ["login"], "at_least": 4})
    assert g.goals[-1].at_least == 4 and j.remove_goal(g, "active") == m
    merged = j.merge_maps(*j.default_maps())
    assert len(merged.stages) == len(j.compare_maps(*j.default_maps()).stages)
    assert j.load_map(merged.to_dict()) == merged


# -- a hand-built workspace ------------------------------------------------------------
@pytest.fixture
def flow_ws(tmp_path):
    """Eight accounts with known milestones, events, survey answers, churn and people."""
    ids = [f"A{i}" for i in range(1, 9)]
    signup = [D("2024-01-01")] * 4 + [D("2024-04-10")] * 4
    accounts = pd.DataFrame({"account_id": ids, "signup_date": signup,
                             "segment": ["SMB", "SMB", "Ent", "Ent", "SMB", "Ent", "SMB", "Ent"]})
    end = [None, D("2024-03-01"), None, None, None, D("2024-06-01"), None, None]
    subs = pd.DataFrame({"account_id": ids, "start_date": signup, "end_date": end,
                         "mrr": [100.0] * 8})
    ms = [  # (account, milestone, date)
        ("A1", "m1", "2024-01-05"), ("A1", "m2", "2024-01-20"),
        ("A2", "m1", "2024-01-10"), ("A2", "m2", "2024-03-05"),  # m2 after churn: no
        ("A3", "m1", "2024-01-02"), ("A3", "m1", "2024-01-09"),  # duplicate: first counts
        ("A4", "m2", "2024-01-03"), ("A4", "m1", "2024-01-08"),  # out of order
        ("A5", "m1", "2024-04-10"), ("A5", "m2", "2024-05-30"),
        ("A6", "m1", "2024-05-01"),
        ("A7", "m1", "2024-04-09"),  # before signup: does not count
        ("A8", "m1", "2024-04-20"), ("A8", "m2", "2024-07-01"),  # m2 after as-of: no
    ]
    milestones = pd.DataFrame({"account_id": [x[0] for x in ms], "milestone": [x[1] for x in ms],
                               "completed_at": pd.to_datetime([x[2] + " 10:00" for x in ms])})
    ev = [("A1", "2024-01-21"), ("A1", "2024-01-22"), ("A1", "2024-02-01"),
          ("A5", "2024-06-01"), ("A5", "2024-06-02"), ("A4", "2024-01-04"),
          ("A4", "2024-01-05"), ("A4", "2024-01-06")]
    events = pd.DataFrame({"account_id": [e[0] for e in ev],
                           "event_at": pd.to_datetime([e[1] + " 09:00" for e in ev]),
                           "event_name": ["report_shared"] * len(ev)})
    sv = [("A1", "2024-02-10", 6), ("A4", "2024-01-20", 3), ("A4", "2024-02-20", 7),
          ("A5", "2024-06-10", 5)]
    surveys = pd.DataFrame({"response_id": [f"R{i}" for i in range(len(sv))],
                            "account_id": [s[0] for s in sv], "survey": "ces",
                            "score": [float(s[2]) for s in sv],
                            "responded_at": pd.to_datetime([s[1] + " 12:00" for s in sv]),
                            "touchpoint": "onboarding"})
    people = pd.DataFrame({
        "account_id": ["A1", "A1", "A1", "A2", "A2", "A3", "A6"],
        "person_id": ["p1", "p2", "p3", "p4", "p5", "p6", "p7"],
        "role": ["executive sponsor", "owner", "heavy user", "owner", "admin", "owner",
                 "executive sponsor"],
        "name": ["Sato", "Kim", "Lee", "Ito", "Abe", "Mori", "Ueda"],
        "domain": ["business", "technical", "technical", "business", "technical",
                   "technical", "business"],
        "influence": [5, 4, 2, 4, 2, 3, 5],
        "sentiment": [2, 1, 2, 1, 0, -1, 2],
        "decision_style": ["top_down"] * 3 + ["balanced"] * 2 + ["bottom_up", "top_down"],
        "left_at": pd.to_datetime([None, "2024-06-20", None, "2024-02-01", None, None,
                                   "2024-05-01"]),
    })
    path = write_workspace(tmp_path / "flow.duckdb", {
        "accounts": accounts, "subscriptions": subs, "onboarding_milestones": milestones,
        "usage_events": events, "survey_responses": surveys, "stakeholders": people},
        config={"as_of": "2024-06-30"})
    return open_workspace(path)


FLOW_MAP = {
    "title": "t", "team": "cs",
    "persona": {"name": "P", "role": "owner", "domain": "business"},
    "stages": [
        {"name": "Kickoff"},
        {"name": "One", "signal": {"milestone": "m1"}},
        {"name": "Two", "signal": {"milestone": "m2"}},
        {"name": "Shares", "signal": {"events": ["report_shared"], "at_least": 2,
                                      "within_days": 2}},
        {"name": "Easy", "signal": {"survey": "ces", "touchpoint": "onboarding",
                                    "min_score": 5}},
    ],
}


def km_quantile(time, event, p):
    """Textbook product-limit estimate; smallest t with S(t) <= 1 - p."""
    time, event = np.asarray(time, float), np.asarray(event, int)
    s = 1.0
    for t in np.unique(time[event == 1]):
        at_risk = (time >= t).sum()
        s *= 1 - ((time == t) & (event == 1)).sum() / at_risk
        if s <= 1 - p + 1e-12:
            return t
    return math.nan


def brute_flow(ws_tables_as_of="2024-06-30"):
    """Reach times by hand from the fixture's rows (read it off the table above)."""
    as_of = TS(ws_tables_as_of)
    signup = {a: TS("2024-01-01") if a in ("A1", "A2", "A3", "A4") else TS("2024-04-10")
              for a in [f"A{i}" for i in range(1, 9)]}
    churn = {"A2": TS("2024-03-01"), "A6": TS("2024-06-01")}
    reach = {
        "One": {"A1": "2024-01-05", "A2": "2024-01-10", "A3": "2024-01-02", "A4": "2024-01-08",
                "A5": "2024-04-10", "A6": "2024-05-01", "A8": "2024-04-20"},
        "Two": {"A1": "2024-01-20", "A4": "2024-01-03", "A5": "2024-05-30"},
        # 2 report_shared within 2 consecutive days: A1 on 01-22, A4 on 01-05, A5 on 06-02
        "Shares": {"A1": "2024-01-22", "A4": "2024-01-05", "A5": "2024-06-02"},
        # first CES >= 5 at onboarding
        "Easy": {"A1": "2024-02-10", "A4": "2024-02-20", "A5": "2024-06-10"},
    }
    reach = {k: {a: TS(v) for a, v in d.items()} for k, d in reach.items()}
    return signup, churn, reach, as_of


def test_stage_flow_matches_brute_force(flow_ws):
    out = j.stage_flow(flow_ws, FLOW_MAP, stall_days=20)
    signup, churn, reach, as_of = brute_flow()
    accounts = list(signup)
    assert out["stage"].tolist() == ["Kickoff", "One", "Two", "Shares", "Easy"]
    assert not out.loc[0, "has_signal"] and pd.isna(out.loc[0, "reached"])
    prev = {a: signup[a] for a in accounts}
    prev_name = "signup"
    for name in ["One", "Two", "Shares", "Easy"]:
        row = out.set_index("stage").loc[name]
        got = reach[name]
        had = [a for a in accounts if prev.get(a) is not None]
        conv = [a for a in had if a in got]
        assert row["from_stage"] == prev_name
        assert row["reached"] == len(got) and row["accounts"] == 8
        assert row["from_reached"] == len(had) and row["converted"] == len(conv)
        assert row["conversion"] == pytest.approx(len(conv) / len(had))
        time, event = [], []
        for a in had:
            if a in got:
                time.append(max(0, (got[a].normalize() - prev[a].normalize()).days))
                event.append(1)
            else:
                end = churn.get(a, as_of)
                time.append((end - prev[a].normalize()).days)
                event.append(0)
        for p, col in ((0.5, "median_days"), (0.25, "p25_days"), (0.75, "p75_days")):
            exp = km_quantile(time, event, p)
            assert (math.isnan(exp) and math.isnan(row[col])) or row[col] == exp, (name, col)
        waiting = [a for a in had if a not in got and a not in churn]
        stalled = [a for a in waiting if (as_of - prev[a].normalize()).days > 20]
        assert row["waiting"] == len(waiting) and row["stalled"] == len(stalled)
        assert row["churned_before"] == len([a for a in had if a not in got and a in churn])
        prev = {a: got.get(a) for a in accounts}
        prev_name = name


def test_stage_flow_by_segment_and_scope(flow_ws):
    by = j.stage_flow(flow_ws, FLOW_MAP, by="segment")
    assert set(by["segment"]) == {"SMB", "Ent"}
    one = by[by["stage"] == "One"].set_index("segment")
    assert one.loc["SMB", "reached"] + one.loc["Ent", "reached"] == 7
    smb = j.stage_flow(flow_ws.where(segment="SMB"), FLOW_MAP)
    assert smb.set_index("stage").loc["One", "reached"] == one.loc["SMB", "reached"]
    style = j.stage_flow(flow_ws, FLOW_MAP, by="decision_style")
    assert "(unknown)" in set(style["decision_style"])  # accounts without people
    # an earlier as-of sees less
    early = j.stage_flow(flow_ws, FLOW_MAP, as_of="2024-01-31").set_index("stage")
    assert early.loc["One", "accounts"] == 4 and early.loc["Easy", "reached"] == 0


def test_stage_flow_unknown_milestone_is_named(flow_ws):
    bad = {**FLOW_MAP, "stages": [{"name": "X", "signal": {"milestone": "nope"}}]}
    with pytest.raises(Exception, match="nope"):
        j.stage_flow(flow_ws, bad)


# -- stakeholders ----------------------------------------------------------------------
def test_stakeholder_map_flags(flow_ws):
    m = j.stakeholder_map(flow_ws, "A1", as_of="2024-06-01", recent_days=30)
    people = m.people.set_index("person_id")
    assert people["role"].tolist()[0] == "executive sponsor"
    assert people.loc["p2", "present"] and not people.loc["p2", "left_recently"]  # leaves later
    assert m.flags == {"no_technical_champion": False, "no_business_champion": False,
                       "key_person_left": False}
    assert m.decision_style == "top_down"
    later = j.stakeholder_map(flow_ws, "A1", as_of="2024-06-30", recent_days=30)
    assert later.flags["key_person_left"] and later.flags["no_technical_champion"]
    assert later.departed == ["Kim (owner)"]
    a3 = j.stakeholder_map(flow_ws, "A3")  # one owner with negative sentiment
    assert a3.flags["no_technical_champion"] and a3.flags["no_business_champion"]
    assert not j.stakeholder_map(flow_ws, "A3", min_sentiment=None).flags[
        "no_technical_champion"]
    assert "Mori" in a3.html()
    with pytest.raises(Exception, match="A9"):
        j.stakeholder_map(flow_ws, "A9")


def test_stakeholder_coverage_matches_brute_force(flow_ws):
    cov = j.stakeholder_coverage(flow_ws).set_index("gap")
    # follow-up ends: A2 churned 2024-03-01, A6 2024-06-01, the others the as-of date
    ends = {a: TS("2024-06-30") for a in [f"A{i}" for i in range(1, 9)]}
    ends.update({"A2": TS("2024-03-01"), "A6": TS("2024-06-01")})
    signup = {a: TS("2024-01-01") if a in ("A1", "A2", "A3", "A4") else TS("2024-04-10")
              for a in ends}
    years = {a: (ends[a] - signup[a]).days / 365.25 for a in ends}
    # no executive sponsor: A1's stays (never a gap); A6's left 2024-05-01, a month before
    # A6 churned (gap from then: A6's churn counts with it, its time before without); the
    # others never had one (gap from signup)
    never = {a for a in ends if a not in ("A1", "A6")}
    row = cov.loc["no executive sponsor"]
    assert row["accounts"] == len(never) + 1 and row["churned"] == 2
    with_gap = sum(years[a] for a in never) + (ends["A6"] - TS("2024-05-01")).days / 365.25
    without = years["A1"] + (TS("2024-05-01") - signup["A6"]).days / 365.25
    assert row["exposure_years"] == pytest.approx(with_gap)
    assert row["exposure_years_without"] == pytest.approx(without)
    assert row["accounts_without"] == 2 and row["churn_per_year_without"] == 0
    # no owner: A1's owner left 2024-06-20 (gap for its last 10 days), A2's owner left
    # 2024-02-01 before A2 churned, A3's stays; the rest never had one
    row = cov.loc["no owner"]
    own_with = (sum(years[a] for a in ends if a not in ("A1", "A2", "A3"))
                + (ends["A1"] - TS("2024-06-20")).days / 365.25
                + (ends["A2"] - TS("2024-02-01")).days / 365.25)
    assert row["accounts"] == 7 and row["churned"] == 2 and row["churned_without"] == 0
    assert row["exposure_years"] == pytest.approx(own_with)
    assert row["exposure_years"] + row["exposure_years_without"] == pytest.approx(
        sum(years.values()))
    # key person left: A6's sponsor (2024-05-01) before its churn; A2's owner before churn;
    # A1's owner left 2024-06-20 before the as-of date.
    row = cov.loc["key person left"]
    assert row["accounts"] == 3 and row["churned"] == 2 and row["churned_without"] == 0
    after = ((ends["A6"] - TS("2024-05-01")).days + (ends["A2"] - TS("2024-02-01")).days
             + (ends["A1"] - TS("2024-06-20")).days) / 365.25
    assert row["exposure_years"] == pytest.approx(after)
    assert row["exposure_years"] + row["exposure_years_without"] == pytest.approx(
        sum(years.values()))


def test_champion_departures_raise_churn_in_demo(small_demo):
    cov = j.stakeholder_coverage(small_demo).set_index("gap")
    row = cov.loc["key person left"]
    # planted: 2.2x churn after a champion leaves (demo.PLANTED)
    assert row["rate_ratio"] > 1.3 and row["lower"] < 2.2 < row["upper"]


# -- goals --------------------------------------------------------------------------------
GOAL_MAP = {**FLOW_MAP, "goals": [
    {"name": "One fast", "layer": "outcome", "metric": "stage_share", "stage": "One",
     "within_days": 10, "target": 0.5},
    {"name": "Sharing", "layer": "adoption", "metric": "active_share",
     "events": ["report_shared"], "at_least": 2, "target": 0.3},
    {"name": "Effort", "layer": "experience", "metric": "ces", "target": 5},
]}


def test_goal_progress_matches_brute_force(flow_ws):
    out = j.goal_progress(flow_ws, GOAL_MAP, grain="quarter")
    signup, churn, reach, as_of = brute_flow()
    share = out[out["goal"] == "One fast"].set_index("period_label")
    # 2024-Q1 cohort (A1-A4) is observable (Mar 31 + 10 days <= Jun 30); Q2 is not
    assert list(share.index) == ["2024-Q1"]
    fast = [a for a in ("A1", "A2", "A3", "A4")
            if a in reach["One"] and (reach["One"][a].normalize() - signup[a]).days <= 10]
    assert share.loc["2024-Q1", "numerator"] == len(fast) == 4
    assert share.loc["2024-Q1", "denominator"] == 4 and bool(share.loc["2024-Q1", "met"])
    act = out[out["goal"] == "Sharing"].set_index("period_label")
    # paying on Mar 31: A1, A3, A4 (A2 ended Mar 1); >= 2 report_shared in Q1: A1, A4
    assert act.loc["2024-Q1", "denominator"] == 3 and act.loc["2024-Q1", "numerator"] == 2
    # paying on Jun 30: all but A2, A6; in Q2: A5 (2 events)
    assert act.loc["2024-Q2", "denominator"] == 6 and act.loc["2024-Q2", "numerator"] == 1
    assert not bool(act.loc["2024-Q2", "met"])
    ces = out[out["goal"] == "Effort"].set_index("period_label")
    assert ces.loc["2024-Q1", "value"] == pytest.approx(np.mean([6, 3, 7]))
    assert ces.loc["2024-Q1", "denominator"] == 3
    assert set(out["layer"]) == {"outcome", "adoption", "experience"}


def test_goal_progress_by_segment_sums_to_total(flow_ws):
    tot = j.goal_progress(flow_ws, GOAL_MAP, goals=["Sharing"])
    by = j.goal_progress(flow_ws, GOAL_MAP, goals=["Sharing"], by="segment")
    sums = by.groupby("period")[["numerator", "denominator"]].sum()
    assert (sums["denominator"].to_numpy() == tot["denominator"].to_numpy()).all()
    assert (sums["numerator"].to_numpy() == tot["numerator"].to_numpy()).all()


def test_goal_definitions_are_readable():
    g = j.load_map(GOAL_MAP).goals[0]
    text = g.definition()
    assert "'One'" in text and "10 days" in text and ">= 50%" in text


# -- persona evidence on the demo ------------------------------------------------------
def test_persona_evidence_on_demo(small_demo):
    cs = j.load_map(j.journeys_dir() / "cs_team.yml")
    ev = j.persona_evidence(small_demo, cs)
    assert ev.accounts > 0 and not ev.themes.empty
    assert set(ev.voices["respondent_role"]) <= {"owner"}
    assert set(ev.voices["segment"]) <= {"SMB", "Mid-Market"}
    assert set(ev.onboarding["stage"]) == {"setup_complete", "value_realized"}


def test_demo_flow_on_example_maps(small_demo):
    product, cs = j.default_maps()
    flow = j.stage_flow(small_demo, cs, by="segment")
    sig = flow[flow["has_signal"]]
    assert (sig["converted"] <= sig["from_reached"]).all()
    assert (sig["waiting"] + sig["churned_before"] + sig["converted"]
            == sig["from_reached"]).all()


# -- workshop session, handout and dashboards -------------------------------------------
def test_session_autosaves_and_survives_a_restart(tmp_path):
    s = j.WorkshopSession(folder=tmp_path)
    assert not s.draft_path.exists()  # nothing written before the first edit
    first = s.map.stage_names[0]
    s.apply(j.rename_stage, first, "Kick-off meeting")
    assert j.load_map(s.draft_path) == s.map  # saved as made
    s.apply(j.move_stage, "Kick-off meeting", 2)
    restarted = j.WorkshopSession(folder=tmp_path)  # a new kernel
    assert restarted.map == s.map
    s.undo()  # undo is per session; it autosaves too
    restarted = j.WorkshopSession(folder=tmp_path)
    assert restarted.map.stage_names[0] == "Kick-off meeting"
    path = restarted.save()
    assert path.name == "agreed-v1.yml" and j.load_map(path) == restarted.map
    assert j.latest_agreed(tmp_path) == restarted.map


def test_broken_draft_is_moved_aside_not_lost(tmp_path):
    (tmp_path / "agreed.draft.yml").write_text("title: [", encoding="utf-8")
    s = j.WorkshopSession(folder=tmp_path)
    assert "could not be read" in s.notice
    assert (tmp_path / "agreed.draft.yml.broken-1").read_text(encoding="utf-8") == "title: ["


def test_draft_with_duplicate_keys_or_an_alias_bomb_is_refused_and_kept(tmp_path):
    good = j.dump_map(j.merge_maps(*j.default_maps()))
    bomb = "a: &a [x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 8)}]\n"
        for i in range(9))
    dup = good.replace("team: shared\n", "team: shared\nteam: cs\n")
    for k, text in enumerate([dup, bomb], start=1):
        (tmp_path / "agreed.draft.yml").write_text(text, encoding="utf-8")
        s = j.WorkshopSession(folder=tmp_path)
        assert "could not be read" in s.notice
        assert ("duplicate key 'team'" if k == 1 else "aliases") in s.notice
        aside = tmp_path / f"agreed.draft.yml.broken-{k}"
        assert aside.read_text(encoding="utf-8") == text


def _save_many(folder: str, count: int) -> list[str]:
    """One viewer saving ``count`` times (also run in a separate process)."""
    s = j.WorkshopSession(folder=folder)
    return [s.save().name for _ in range(count)]


def _check_versions(folder, names: list[str], total: int):
    assert len(names) == total and len(set(names)) == total  # every save its own file
    files = sorted(folder.glob("agreed-v*.yml"))
    assert len(files) == total
    versions = sorted(j.load_map(f).version for f in files)
    assert versions == list(range(1, total + 1))  # none lost, each file names itself
    for f in files:
        assert f.name == f"agreed-v{j.load_map(f).version}.yml"
    assert not list(folder.glob(".*.tmp"))  # no temporary file left behind


def test_concurrent_saves_in_threads_keep_every_version(tmp_path):
    import threading

    j.WorkshopSession(folder=tmp_path).autosave()
    names: list[str] = []
    start = threading.Barrier(2)
    lock = threading.Lock()

    def viewer():
        start.wait()
        got = _save_many(str(tmp_path), 20)
        with lock:
            names.extend(got)

    threads = [threading.Thread(target=viewer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    _check_versions(tmp_path, names, 40)


def test_concurrent_saves_in_processes_keep_every_version(tmp_path):
    import multiprocessing as mp

    j.WorkshopSession(folder=tmp_path).autosave()
    with mp.get_context("fork").Pool(2) as pool:
        parts = pool.starmap(_save_many, [(str(tmp_path), 20)] * 2)
    _check_versions(tmp_path, [n for p in parts for n in p], 40)


def test_workshop_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(j.WORKSHOP_ENV, str(tmp_path / "w"))
    assert j.workshop_dir() == tmp_path / "w"
    monkeypatch.delenv(j.WORKSHOP_ENV)
    assert j.workshop_dir().parts[-2:] == ("data", "workshop")


def test_handout_has_persona_journey_data_and_goals(flow_ws, tmp_path):
    m = j.load_map(GOAL_MAP)
    flow = j.stage_flow(flow_ws, m)
    prog = j.goal_progress(flow_ws, m)
    out = j.export_handout(m, tmp_path / "h", flow=flow, progress=prog, pdf=False)
    text = out["html"].read_text(encoding="utf-8")
    for part in ("Persona", "Kickoff", "milestone m1", "One fast", "2024-Q1", "@media print"):
        assert part in text
    assert "pdf" not in out


def test_workshop_dashboard_edits_and_saves(small_demo, tmp_path):
    app = JourneyWorkshopDashboard(small_demo, folder=tmp_path)
    assert app.error is None and app.kpi("Accounts in scope").value == 300
    before = app.kpis[1].value
    app._stage.value = app.session.map.stage_names[1]
    app._name.value = "Everything set up"
    app._guard(app._on_rename)
    assert "Everything set up" in app._agreed.value and app._stage.value == "Everything set up"
    assert j.load_map(tmp_path / "agreed.draft.yml").stage_names[1] == "Everything set up"
    app._name.value = "x"
    app._stage.value = app.session.map.stage_names[0]
    app._name.value = app.session.map.stage_names[2]  # a taken name: an error, no change
    app._guard(app._on_rename)
    assert "already used" in app._status.value
    app.filters["segment"].value = "SMB"
    assert app.kpi("Accounts in scope").value < 300 and app.kpis[1].value != before
    app._guard(app._on_save)
    assert (tmp_path / "agreed-v1.yml").exists()
    again = JourneyWorkshopDashboard(small_demo, folder=tmp_path)
    assert again.session.map.stage_names[1] == "Everything set up"


def test_shared_goals_dashboard(small_demo):
    m = j.merge_maps(*j.default_maps())
    app = SharedGoalsDashboard(small_demo, journey=m)
    assert app.error is None
    assert [k.label for k in app.kpis] == [g.name for g in m.goals]
    assert len(app.charts) == len(m.goals)
    app.filters["by_segment"].value = True
    assert app.error is None and "segment" in app.table.columns


def test_workshop_dashboard_narrows_the_reach_frame_exactly_like_a_scoped_workspace(
        small_demo, tmp_path):
    # journey_reach runs once per map version; filter changes narrow it in memory.
    app = JourneyWorkshopDashboard(small_demo, folder=tmp_path)
    m = app.session.map
    for segment in ("SMB", "Enterprise"):
        for label, split in (("no split", None), ("segment", "segment"),
                             ("champion domain", "champion_domain"),
                             ("decision style", "decision_style")):
            app.filters["segment"].value = segment
            app.filters["split"].value = label
            want = j.stage_flow(small_demo.where(segment=segment), m, by=split)
            pd.testing.assert_frame_equal(app.table.reset_index(drop=True), want,
                                          check_dtype=False)
    # an edit changes the map: the reach frame is computed again for the new one
    app.filters["segment"].value = "SMB"
    app.filters["split"].value = "no split"
    app._stage.value = m.stage_names[1]
    app._guard(app._on_remove)
    want = j.stage_flow(small_demo.where(segment="SMB"), app.session.map)
    pd.testing.assert_frame_equal(app.table.reset_index(drop=True), want, check_dtype=False)
    with pytest.raises(ValueError, match="journey_reach"):
        j.stage_flow(small_demo, app.session.map, reach=j.journey_reach(small_demo, m))


def test_shared_goals_dashboard_picks_rows_equal_to_a_scoped_workspace(small_demo):
    m = j.merge_maps(*j.default_maps())
    app = SharedGoalsDashboard(small_demo, journey=m)
    for grain in ("quarter", "month"):
        app.filters["grain"].value = grain
        for segment in ("SMB", "Mid-Market"):
            app.filters["segment"].value = segment
            for split in (False, True):
                app.filters["by_segment"].value = split
                want = j.goal_progress(small_demo.where(segment=segment), m, grain=grain,
                                       by="segment" if split else None)
                got = app.table
                # a period without any account or response of the segment has no value
                # either way; the scoped run may list it with a zero denominator
                want = want[want["denominator"] > 0].reset_index(drop=True)
                got = got[got["denominator"] > 0].reset_index(drop=True)
                pd.testing.assert_frame_equal(got, want, check_dtype=False)
            for g, k in zip(m.goals, app.kpis, strict=True):
                rows = want[(want["goal"] == g.name) & want["value"].notna()]
                assert k.value == pytest.approx(rows["value"].iloc[-1]) if len(rows) else (
                    k.value is None)


def test_shared_goals_launch_has_both_grains_ready(small_demo, monkeypatch):
    from cs_analysis.dashboard import journey as dash_journey

    m = j.merge_maps(*j.default_maps())
    app = SharedGoalsDashboard.launch(small_demo, journey=m)
    assert app.error is None
    monkeypatch.setattr(dash_journey, "goal_progress",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("asked again")))
    app.filters["grain"].value = "month"
    assert app.error is None and (app.table["period_label"].str.len() == 7).all()


# -- the workspace's time zone ----------------------------------------------------------
def _utc(local: str, tz: str) -> pd.Timestamp:
    """The stored (naive UTC) instant of a local wall-clock time in ``tz``."""
    return TS(local).tz_localize(tz).tz_convert("UTC").tz_localize(None)


def _local_day(stored, tz: str) -> pd.Timestamp:
    """Reference: the local date of a stored UTC timestamp, with pandas' tz database."""
    return TS(stored).tz_localize("UTC").tz_convert(tz).tz_localize(None).normalize()


def _edge_times(tz: str, rng) -> list[pd.Timestamp]:
    """Stored instants minutes either side of local midnight at month and quarter ends."""
    out = []
    for day in ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31",
                "2024-06-15", "2024-06-29", "2024-06-30"]:
        nxt = (TS(day) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        for _ in range(3):
            m = int(rng.integers(1, 20))
            out.append(_utc(f"{day} 23:{60 - m:02d}", tz))
            out.append(_utc(f"{nxt} 00:{m:02d}", tz))
    return out


@pytest.fixture(params=["Asia/Tokyo", "America/Los_Angeles"])
def tz_ws(request, tmp_path):
    """Accounts whose responses, events and departures sit minutes from local midnight."""
    tz = request.param
    rng = np.random.default_rng(7)
    ids = [f"T{i}" for i in range(12)]
    signup = [D("2024-01-01"), D("2024-02-01"), D("2024-03-01"), D("2024-04-01")] * 3
    accounts = pd.DataFrame({"account_id": ids, "signup_date": signup,
                             "segment": ["SMB", "Ent"] * 6})
    end = [None] * 10 + [D("2024-04-30"), D("2024-05-31")]
    subs = pd.DataFrame({"account_id": ids, "start_date": signup, "end_date": end,
                         "mrr": [100.0] * 12})
    times = _edge_times(tz, rng)
    # signup-day edges: 08:30 local on signup day (stored the day before in Tokyo) and
    # 23:30 local the day before signup (stored on the signup day in Los Angeles)
    resp = []
    for a, s in zip(ids, signup, strict=True):
        resp.append((a, _utc(f"{s} 08:30", tz)))
        resp.append((a, _utc(f"{s - dt.timedelta(days=1)} 23:30", tz)))
        for t in rng.choice(times, size=3, replace=False):
            resp.append((a, TS(t)))
    rng.shuffle(resp)
    survey = pd.DataFrame({"response_id": [f"R{i}" for i in range(len(resp))],
                           "account_id": [r[0] for r in resp], "survey": "ces",
                           "score": rng.integers(3, 8, len(resp)).astype(float),
                           "responded_at": [r[1] for r in resp], "touchpoint": "onboarding"})
    ev = [(a, TS(t)) for a in ids for t in rng.choice(times, size=8, replace=False)]
    events = pd.DataFrame({"account_id": [e[0] for e in ev], "event_at": [e[1] for e in ev],
                           "event_name": "report_shared"})
    people = pd.DataFrame({
        "account_id": ids, "person_id": [f"p{i}" for i in range(12)],
        "role": "executive sponsor", "domain": "business", "sentiment": 2,
        # left 00:10 local on 1 May (stored 30 April in Tokyo) or 23:50 local on 30 April
        # (stored 1 May in Los Angeles); a third stay
        "left_at": [_utc("2024-05-01 00:10", tz), _utc("2024-04-30 23:50", tz), None] * 4})
    path = write_workspace(tmp_path / "tz.duckdb", {
        "accounts": accounts, "subscriptions": subs, "survey_responses": survey,
        "usage_events": events, "stakeholders": people},
        config={"as_of": "2024-06-30", "timezone": tz})
    return open_workspace(path), tz, accounts, subs, survey, events, people


def test_stage_flow_uses_local_days(tz_ws):
    ws, tz, accounts, subs, survey, _, _ = tz_ws
    as_of = TS("2024-06-15")
    m = {**FLOW_MAP, "stages": [{"name": "Easy", "signal": {"survey": "ces", "min_score": 5}}]}
    out = j.stage_flow(ws, m, as_of="2024-06-15").set_index("stage").loc["Easy"]
    signup = dict(zip(accounts["account_id"], pd.to_datetime(accounts["signup_date"]),
                      strict=True))
    churn = {a: TS(e) for a, e in zip(subs["account_id"], subs["end_date"], strict=True) if e}
    s = survey[survey["score"] >= 5].assign(
        day=[_local_day(t, tz) for t in survey.loc[survey["score"] >= 5, "responded_at"]])
    time, event = [], []
    for a in signup:
        days = s.loc[(s["account_id"] == a) & (s["day"] >= signup[a]) & (s["day"] <= as_of),
                     "day"]
        first = days.min() if len(days) else None
        if first is not None and (a not in churn or first < churn[a]):
            time.append((first - signup[a]).days)
            event.append(1)
        else:
            time.append((min(churn.get(a, as_of), as_of) - signup[a]).days)
            event.append(0)
    assert out["reached"] == sum(event)
    for p, col in ((0.5, "median_days"), (0.25, "p25_days"), (0.75, "p75_days")):
        exp = km_quantile(time, event, p)
        assert (math.isnan(exp) and math.isnan(out[col])) or out[col] == exp, col
    # the 08:30-on-signup-day response is counted (0 days) in both zones
    assert out["p25_days"] == 0


@pytest.mark.parametrize("grain", ["month", "quarter"])
def test_active_share_cuts_periods_in_the_workspace_zone(tz_ws, grain):
    ws, tz, accounts, subs, _, events, _ = tz_ws
    goal = {**FLOW_MAP, "goals": [{"name": "Sharing", "layer": "adoption",
                                   "metric": "active_share", "events": ["report_shared"],
                                   "at_least": 2, "target": 0.3}]}
    out = j.goal_progress(ws, goal, grain=grain).set_index("period_label")
    local = pd.Series([_local_day(t, tz) for t in events["event_at"]])
    freq = "M" if grain == "month" else "Q"
    ev = events.assign(period=local.dt.to_period(freq).to_numpy())
    counts = ev.groupby(["account_id", "period"]).size()
    as_of = TS("2024-06-30")
    expected = {}
    for per in pd.period_range("2024-01", "2024-06", freq=freq):
        last = per.end_time.normalize()
        if last > as_of:
            continue
        paying = [a for a, s, e in zip(subs["account_id"], subs["start_date"], subs["end_date"],
                                       strict=True)
                  if TS(s) <= last and (e is None or TS(e) > last)]
        active = [a for a in paying if counts.get((a, per), 0) >= 2]
        label = str(per) if grain == "month" else f"{per.year}-Q{per.quarter}"
        expected[label] = (len(active), len(paying))
    assert set(out.index) == set(expected)
    for label, (num, den) in expected.items():
        assert (out.loc[label, "numerator"], out.loc[label, "denominator"]) == (num, den), label


def test_departures_are_local_days(tz_ws):
    ws, tz, _, _, _, _, people = tz_ws
    for pid, acc in (("p0", "T0"), ("p1", "T1")):
        day = _local_day(people.set_index("person_id").loc[pid, "left_at"], tz)
        before = (day - pd.Timedelta(days=1)).date()
        m = j.stakeholder_map(ws, acc, as_of=before).people.set_index("person_id")
        assert m.loc[pid, "present"]
        m = j.stakeholder_map(ws, acc, as_of=day.date()).people.set_index("person_id")
        assert not m.loc[pid, "present"] and m.loc[pid, "left_recently"]


# -- time-varying stakeholder gaps: a simulation with known truth ------------------------
def test_sponsor_gap_recovers_the_true_hazard_ratio_without_snapshot_bias(tmp_path):
    """Sponsors leave mid-follow-up; churn hazard triples after. The truth is 3."""
    rng = np.random.default_rng(2024)
    n, horizon, lam0, ratio = 3000, 1095, 0.25 / 365.25, 3.0
    start = TS("2021-01-01")
    leaves = rng.random(n) < 0.6
    leave_day = np.where(leaves, rng.integers(1, horizon, n), horizon + 10_000)
    t0 = rng.exponential(1 / lam0, n)
    t1 = leave_day + rng.exponential(1 / (lam0 * ratio), n)
    churn_day = np.ceil(np.where(t0 < leave_day, t0, t1)).astype(int)
    churned = churn_day < horizon
    end_day = np.where(churned, churn_day, horizon)
    ids = [f"S{i:04d}" for i in range(n)]
    subs = pd.DataFrame({"account_id": ids, "start_date": start.date(),
                         "end_date": [(start + pd.Timedelta(days=int(d))).date() if c else None
                                      for d, c in zip(churn_day, churned, strict=True)],
                         "mrr": 100.0})
    seen = leaves & (leave_day < end_day)  # departures the CS team saw while a customer
    people = pd.DataFrame({
        "account_id": ids * 2, "person_id": [f"x{i}" for i in range(2 * n)],
        "role": ["executive sponsor"] * n + ["owner"] * n,
        "left_at": [start + pd.Timedelta(days=int(d), hours=10) if s else None
                    for d, s in zip(leave_day, seen, strict=True)] + [None] * n})
    path = write_workspace(tmp_path / "sim.duckdb", {
        "accounts": pd.DataFrame({"account_id": ids, "signup_date": start.date()}),
        "subscriptions": subs, "stakeholders": people},
        config={"as_of": (start + pd.Timedelta(days=horizon)).strftime("%Y-%m-%d")})
    row = j.stakeholder_coverage(open_workspace(path)).set_index("gap").loc[
        "no executive sponsor"]
    assert row["lower"] < ratio < row["upper"]
    assert row["rate_ratio"] == pytest.approx(ratio, rel=0.2)
    # the old last-day snapshot: the whole follow-up of an account whose sponsor left
    # counts as "without a sponsor", which dilutes the gap's churn rate
    years = end_day / 365.25
    snap = (churned[seen].sum() / years[seen].sum()) / (churned[~seen].sum()
                                                        / years[~seen].sum())
    assert snap < 0.75 * ratio and abs(row["rate_ratio"] - ratio) < abs(snap - ratio) / 3
    assert row["exposure_years"] + row["exposure_years_without"] == pytest.approx(
        years.sum())
    # an independent reference: a Cox model with the gap as a time-varying covariate
    # (statsmodels PHReg on counting-process rows with entry times)
    from statsmodels.duration.hazard_regression import PHReg

    split = np.where(seen, leave_day, end_day)
    pre = split > 0
    entry = np.r_[np.zeros(pre.sum()), split[seen]]
    exit_ = np.r_[split[pre], end_day[seen]]
    status = np.r_[(churned & ~seen)[pre], churned[seen]].astype(int)
    gap = np.r_[np.zeros(pre.sum()), np.ones(seen.sum())]
    fit = PHReg(exit_, gap[:, None], status=status, entry=entry, ties="efron").fit()
    assert row["rate_ratio"] == pytest.approx(float(np.exp(fit.params[0])), rel=0.1)


# -- one shape for results ---------------------------------------------------------------
def test_results_have_one_shape(flow_ws):
    import dataclasses as dc

    from cs_analysis import charts
    from cs_analysis.errors import ArgumentError, CSAnalysisError
    from cs_analysis.results import Result

    cmp = j.compare_maps(*j.default_maps())
    assert isinstance(cmp, Result) and "stages in both maps" in cmp.summary()
    assert "cs-journey-compare" in cmp._repr_html_()
    with pytest.raises(dc.FrozenInstanceError):
        cmp.a = cmp.b
    sm = j.stakeholder_map(flow_ws, "A1", as_of="2024-06-30")
    assert isinstance(sm, Result) and list(sm.summary()["role"])[0] == "executive sponsor"
    reach = j.journey_reach(flow_ws, FLOW_MAP, by="segment")
    assert isinstance(reach, j.JourneyReach) and reach.by == ("segment",)
    assert reach.summary()["accounts"].iloc[0] == 8
    assert len(reach.narrow(["A1", "A2"]).frame) == 2
    # no metadata in DataFrame.attrs; the grouping column is named after `by`
    flow = j.stage_flow(flow_ws, FLOW_MAP, by="segment")
    prog = j.goal_progress(flow_ws, GOAL_MAP, by="segment")
    cov = j.stakeholder_coverage(flow_ws)
    assert flow.attrs == {} and prog.attrs == {} and cov.attrs == {}
    assert flow.columns[0] == "segment" and "segment" in prog.columns
    spec = str(charts.journey_funnel(flow).to_dict())
    assert "xOffset" in spec and "segment" in spec  # the chart finds the group itself
    assert "xOffset" not in str(charts.journey_funnel(j.stage_flow(flow_ws, FLOW_MAP)).to_dict())
    # as_of keyword-only; arguments checked with one error family
    with pytest.raises(TypeError):
        j.stage_flow(flow_ws, FLOW_MAP, None, "2024-01-01")
    for call in (lambda: j.stage_flow(flow_ws, FLOW_MAP, stall_days=-1),
                 lambda: j.goal_progress(flow_ws, GOAL_MAP, grain="fortnight"),
                 lambda: j.stakeholder_coverage(flow_ws, alpha=1.5),
                 lambda: j.stakeholder_map(flow_ws, "A1", recent_days=2.5)):
        with pytest.raises(ArgumentError):
            call()
    assert issubclass(j.JourneyMapError, CSAnalysisError) and issubclass(
        j.JourneyMapError, ValueError)


def test_stage_share_counts_local_days(tz_ws):
    ws, tz, accounts, subs, survey, _, _ = tz_ws
    m = {**FLOW_MAP, "stages": [{"name": "Easy", "signal": {"survey": "ces", "min_score": 5}}],
         "goals": [{"name": "Easy fast", "layer": "outcome", "metric": "stage_share",
                    "stage": "Easy", "within_days": 30, "target": 0.5}]}
    out = j.goal_progress(ws, m, grain="month").set_index("period_label")
    churn = {a: TS(e) for a, e in zip(subs["account_id"], subs["end_date"], strict=True) if e}
    ok = survey[survey["score"] >= 5]
    day = pd.Series([_local_day(t, tz) for t in ok["responded_at"]], index=ok.index)
    expected: dict[str, list[int]] = {}
    for a, sd in zip(accounts["account_id"], pd.to_datetime(accounts["signup_date"]),
                     strict=True):
        d = day[(ok["account_id"] == a) & (day >= sd) & (day <= TS("2024-06-30"))]
        first = d.min() if len(d) else None
        hit = (first is not None and (a not in churn or first < churn[a])
               and (first - sd).days <= 30)
        expected.setdefault(sd.strftime("%Y-%m"), []).append(int(hit))
    assert sorted(out.index) == sorted(expected)
    for label, hits in expected.items():
        assert (out.loc[label, "numerator"], out.loc[label, "denominator"]) == (
            sum(hits), len(hits)), label
