"""The synthetic demo workspace: determinism, contract conformity, planted effects.

Every planted effect is checked from the raw tables with plain pandas (or statsmodels for
the Cox model), the way an analyst would look at them, never from the generator's
internal state.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from cs_analysis import contract, demo
from cs_analysis.workspace import USAGE_ROLLUP, open_workspace

AS_OF = pd.Timestamp(demo.DEMO_AS_OF)
FAR = pd.Timestamp("2200-01-01")


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    """400 accounts with usage events."""
    return demo.generate(400, seed=11)


@pytest.fixture(scope="module")
def book():
    """The default demo's book (3000 accounts, seed 42) without usage events."""
    return demo.generate(demo.DEFAULT_ACCOUNTS, seed=42, usage=False)


@pytest.fixture(scope="module")
def big_book():
    """A larger book for effects whose groups are small at 3000 accounts."""
    return demo.generate(8000, seed=3, usage=False)


def lifetimes(t: dict) -> pd.DataFrame:
    """Per account: churn date and lifetime as metrics.md defines them (brute force).

    churn date = the end_date after which no subscription covers any later day; accounts
    with a running line (or one ending after the as-of date) are censored at the as-of.
    """
    subs = t["subscriptions"]
    end = subs.end_date.fillna(FAR).astype("datetime64[us]")
    last = subs.assign(e=end).groupby("account_id").e.max()
    acc = t["accounts"].set_index("account_id")
    out = acc[["signup_date", "segment", "employees", "kickoff_date"]].copy()
    out["last_end"] = last
    out["churned"] = out.last_end <= AS_OF
    out["churn_date"] = out.last_end.where(out.churned)
    out["days"] = (out.churn_date.fillna(AS_OF) - out.signup_date).dt.days
    return out


def cox_hr(frame: pd.DataFrame, formula: str):
    import statsmodels.formula.api as smf

    f = frame.reset_index()
    fit = smf.phreg(f"days ~ {formula}", f, status=f.churned.astype(int).to_numpy(),
                    ties="efron").fit()
    return np.exp(fit.params), np.exp(fit.conf_int()), fit.model.exog_names


def value_times(t: dict) -> pd.Series:
    ms = t["onboarding_milestones"]
    return ms[ms.milestone == demo.PLANTED["onboarding_stages"]["value_realized"][0]].groupby(
        "account_id").completed_at.min()


def onboarding_frame(t: dict) -> pd.DataFrame:
    """TTV in days from the planted clock (kickoff, else signup); slow = late or never."""
    life = lifetimes(t)
    life["clock"] = life.kickoff_date.fillna(life.signup_date)
    life["value_at"] = value_times(t)
    life["ttv"] = (life.value_at.dt.normalize() - life.clock).dt.days
    target = life.segment.map(demo.PLANTED["ttv_target_days"])
    deadline = life.clock + pd.to_timedelta(target, unit="D")
    # only accounts whose target window ended while they were customers can be judged
    life["judged"] = deadline <= life.churn_date.fillna(AS_OF)
    life["slow"] = life.value_at.isna() | (life.ttv > target)
    act = t["cs_activities"]
    training = act[act.activity == "training"].groupby("account_id").occurred_at.min()
    life["trained"] = life.index.isin(training.index)
    life["training_day"] = (training.reindex(life.index).dt.normalize() - life.clock).dt.days
    return life


# -- determinism and size ------------------------------------------------------------------
def test_same_seed_gives_identical_tables_and_other_seeds_differ():
    a = demo.generate(120, seed=5)
    b = demo.generate(120, seed=5)
    c = demo.generate(120, seed=6)
    assert list(a) == list(contract.TABLE_NAMES)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    differ = [n for n in a if not (a[n].shape == c[n].shape and a[n].equals(c[n]))]
    assert len(differ) == len(a), f"tables equal across seeds: {set(a) - set(differ)}"


def test_sizes_scale_with_accounts(small):
    larger = demo.generate(800, seed=11, usage=False)
    assert len(small["accounts"]) == 400 and len(larger["accounts"]) == 800
    for name, frame in larger.items():
        ratio = len(frame) / len(small[name])
        assert 1.5 < ratio < 2.6, (name, ratio)


def test_usage_volume_is_tunable():
    base = demo.generate(150, seed=2)["usage_events"]
    double = demo.generate(150, seed=2, events_per_account_month=2 * (
        demo.DEFAULT_EVENTS_PER_ACCOUNT_MONTH))["usage_events"]
    assert 1.8 < len(double) / len(base) < 2.2
    per_account_month = len(base) / base.assign(
        m=base.event_at.dt.to_period("M")).groupby(["account_id", "m"]).ngroups
    assert 0.5 * demo.DEFAULT_EVENTS_PER_ACCOUNT_MONTH < per_account_month < (
        2 * demo.DEFAULT_EVENTS_PER_ACCOUNT_MONTH)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="accounts must be at least 1"):
        demo.generate(0)
    with pytest.raises(ValueError, match="events_per_account_month must be > 0"):
        demo.generate(10, events_per_account_month=0)
    with pytest.raises(ValueError, match="as_of .* too early"):
        demo.generate(10, as_of=dt.date(2023, 3, 1))


# -- contract conformity ----------------------------------------------------------------
@pytest.mark.parametrize("name", contract.TABLE_NAMES)
def test_tables_conform_to_the_contract(small, name):
    frame = small[name]
    spec = contract.spec(name)
    assert len(frame) > 0
    assert [c for c in spec.names() if c not in frame.columns] == [], "demo fills every column"
    for col in frame.columns:
        assert col in spec, f"{name}.{col} not in the contract"
        c, s = spec[col], frame[col]
        if c.required:
            assert s.notna().all(), f"{name}.{col} has nulls"
        if c.unique:
            assert not s.duplicated().any(), f"{name}.{col} has duplicates"
        if c.dtype == "string":
            assert str(s.dtype) == "str", (name, col, s.dtype)
        elif c.dtype in ("date", "timestamp"):
            assert s.dtype == "datetime64[us]", (name, col, s.dtype)
            if col == "renewal_date":  # scheduled: the next renewal lies after the as-of date
                assert (s.dropna() > AS_OF).all(), f"{name}.{col} not after as-of"
            else:
                after = s.dropna() >= AS_OF + pd.Timedelta(days=1)
                assert not after.any(), f"{name}.{col} after as-of"
            assert (s.dropna() >= pd.Timestamp(demo.DEMO_START)).all(), (name, col)
            if c.dtype == "date":
                assert (s.dropna() == s.dropna().dt.normalize()).all(), f"{name}.{col} has times"
        elif c.dtype == "int":
            assert s.dtype == "int64", (name, col, s.dtype)
        elif c.dtype == "float":
            assert s.dtype == "float64", (name, col, s.dtype)
        if c.min is not None:
            assert (s.dropna() >= c.min).all(), (name, col)
        if c.max is not None:
            assert (s.dropna() <= c.max).all(), (name, col)
        if c.allowed:
            assert set(s.dropna()) <= set(c.allowed), (name, col, set(s.dropna()))
    for earlier, later in spec.ordered:
        bad = frame[later].notna() & (frame[later] < frame[earlier])
        assert not bad.any(), f"{name}: {later} before {earlier} in {bad.sum()} rows"
    if spec.references_accounts:
        unknown = set(frame.account_id) - set(small["accounts"].account_id)
        assert not unknown, f"{name}: unknown account ids {sorted(unknown)[:5]}"


def test_survey_scores_on_their_scales(small):
    sr = small["survey_responses"]
    assert set(sr.survey) == {"nps", "csat", "ces"}
    for survey, (lo, hi) in contract.DEFAULT_SURVEY_SCALES.items():
        s = sr.loc[sr.survey == survey, "score"]
        assert s.between(lo, hi).all() and (s == s.round()).all(), survey
    attrs = [c for c in sr.columns if c.startswith("attr_")]
    assert sorted(attrs) == sorted(demo.PLANTED["nps_driver_weights"])
    nps = sr.survey == "nps"
    assert sr.loc[nps, attrs].notna().all().all() and sr.loc[~nps, attrs].isna().all().all()
    assert sr.loc[nps, attrs].stack().between(1, 5).all()


def test_references_between_child_tables(small):
    people = small["stakeholders"]
    assert not people.person_id.duplicated().any()
    sr = small["survey_responses"]
    pairs = set(zip(people.account_id, people.person_id, strict=True))
    assert set(zip(sr.account_id, sr.respondent_id, strict=True)) <= pairs
    role = people.set_index("person_id").role
    assert (sr.respondent_role.to_numpy() == role.loc[sr.respondent_id].to_numpy()).all()
    fr = small["feature_requests"].dropna(subset=["person_id"])
    assert set(zip(fr.account_id, fr.person_id, strict=True)) <= pairs
    # respondents answer only while they are at the customer
    left = people.set_index("person_id").left_at.loc[sr.respondent_id].to_numpy()
    assert not (pd.notna(left) & (left <= sr.responded_at.to_numpy())).any()


def test_first_contract_line_starts_at_signup(small):
    subs = small["subscriptions"]
    first = subs.groupby("account_id").start_date.min()
    signup = small["accounts"].set_index("account_id").signup_date
    assert (first.reindex(signup.index) == signup).all()
    assert subs.subscription_id.is_unique
    assert set(subs["product"]) == {"Analytics", "Automation"}


def test_no_activity_outside_the_service_period(small):
    """Events, tickets, milestones and answers fall on days a subscription covers."""
    subs = small["subscriptions"][["account_id", "start_date", "end_date"]]
    checks = {
        "usage_events": "event_at", "support_tickets": "opened_at",
        "onboarding_milestones": "completed_at", "survey_responses": "responded_at",
        "cs_activities": "occurred_at", "feature_requests": "created_at",
    }
    for name, col in checks.items():
        rows = small[name][["account_id", col]].reset_index()
        day = rows[col].dt.normalize()
        m = rows.assign(day=day).merge(subs, on="account_id")
        covered = (m.day >= m.start_date) & (m.end_date.isna() | (m.day < m.end_date))
        ok = covered.groupby(m["index"]).any()
        assert ok.reindex(rows["index"], fill_value=False).all(), (
            f"{name}: {int((~ok).sum())} rows outside coverage")


# -- the realism the brief asks for ------------------------------------------------------
def test_accounts_look_like_a_b2b_book(book):
    acc = book["accounts"]
    share = acc.segment.value_counts(normalize=True)
    assert abs(share["SMB"] - 0.55) < 0.04 and abs(share["Mid-Market"] - 0.30) < 0.04
    assert acc.account_id.str.fullmatch(r"A\d{5}").all()
    assert acc.account_name.str.contains("株式会社").mean() > 0.3
    assert acc.account_name.str.contains(r"Inc\.|Ltd|LLC|GmbH").mean() > 0.2
    assert acc.account_name.is_unique
    med = acc.groupby("segment").employees.median()
    assert med["SMB"] < med["Mid-Market"] < med["Enterprise"]
    assert (acc.loc[acc.segment == "SMB", "plan"] != "Enterprise").all()
    assert (acc.loc[acc.segment == "Enterprise", "plan"] == "Enterprise").mean() > 0.6
    tech = acc.touch_model == "tech"
    assert acc.loc[tech, "csm_owner"].isna().all() and acc.loc[~tech, "csm_owner"].notna().all()
    assert acc.csm_owner.nunique() == 8
    assert (acc.loc[acc.segment == "SMB", "touch_model"] == "tech").mean() > 0.8
    delay = (acc.kickoff_date - acc.signup_date).dt.days.dropna()
    assert delay.between(1, 60).all() and 0.03 < acc.kickoff_date.isna().mean() < 0.3
    # signups grow: the last 12 months bring more than twice the first 12 months' signups
    first = (acc.signup_date < "2024-01-01").sum()
    last = (acc.signup_date > AS_OF - pd.Timedelta(days=365)).sum()
    assert last > 2 * first
    assert acc.signup_date.max() > AS_OF - pd.Timedelta(days=30)


def test_contracts_monthly_for_smb_annual_for_most_others(book):
    subs = book["subscriptions"].merge(book["accounts"][["account_id", "segment"]])
    main = subs[subs["product"] == "Analytics"].dropna(subset=["end_date"])
    months = ((main.end_date.dt.year - main.start_date.dt.year) * 12
              + main.end_date.dt.month - main.start_date.dt.month)
    annual_term = (months == 12).groupby(main.segment).mean()
    assert annual_term["Enterprise"] > 0.9 and annual_term["SMB"] < 0.5
    # expansion, contraction and reactivation all happen
    ordered = subs[subs["product"] == "Analytics"].sort_values(["account_id", "start_date"])
    prev = ordered.groupby("account_id").mrr.shift()
    assert (ordered.mrr > prev).sum() > 50 and (ordered.mrr < prev).sum() > 20
    life = lifetimes(book)
    end = subs.end_date.fillna(FAR)
    prev_end = subs.assign(e=end).sort_values(["account_id", "start_date"]).groupby(
        "account_id").e.transform(lambda s: s.shift().cummax())
    gap = subs.sort_values(["account_id", "start_date"]).start_date > prev_end
    assert 5 <= gap.sum() < 0.05 * len(life)


def test_usage_has_dormant_months_declines_before_churn_and_stops(small):
    ev = small["usage_events"]
    assert set(ev.event_name) == set(demo.EVENT_FEATURES)
    assert (ev.feature == ev.event_name.map(demo.EVENT_FEATURES)).all()
    assert (ev.user_id.str.split("-U").str[0] == ev.account_id).all()
    month = ev.event_at.dt.year * 12 + ev.event_at.dt.month
    active = ev.assign(m=month).groupby(["account_id", "m"]).size().rename("n").reset_index()
    span = active.groupby("account_id").m.agg(["min", "max", "count"])
    assert ((span["max"] - span["min"] + 1) > span["count"]).sum() > 20  # dormant months
    life = lifetimes(small)
    assert 1 <= len(set(life.index) - set(ev.account_id)) < 20  # a few accounts never use it
    churned = life[life.churned]
    cm = churned.churn_date.dt.year * 12 + churned.churn_date.dt.month
    a = active.merge(cm.rename("cm"), left_on="account_id", right_index=True)
    before = (a.cm - a.m).rename("before")
    by = a.n.groupby(before).mean()
    assert by[1] < by[2] < by[3] < by[6]  # the last full months decline towards churn


def test_onboarding_milestones_out_of_order_duplicates_and_censoring(book):
    ms = book["onboarding_milestones"]
    stages = demo.PLANTED["onboarding_stages"]
    names = set(stages["setup_complete"]) | set(stages["value_realized"])
    assert names | set(demo.PLANTED["extra_milestones"]) == set(ms.milestone)
    assert ms.duplicated(["account_id", "milestone"]).sum() >= 5
    first = ms.groupby(["account_id", "milestone"]).completed_at.min().unstack()
    setup_done = first[stages["setup_complete"]].max(axis=1)
    value = first[stages["value_realized"][0]]
    assert (value < setup_done).sum() >= 10  # value before setup is complete: out of order
    on = onboarding_frame(book)
    recent = on[on.signup_date > AS_OF - pd.Timedelta(days=20)]
    assert recent.value_at.isna().mean() > 0.9  # still onboarding (censored)
    old = on[(on.signup_date < "2025-01-01") & ~on.churned]
    assert 0.02 < old.value_at.isna().mean() < 0.15  # some never get there (stalled)


def test_support_tickets_onboarding_questions_first_then_other(book):
    st = book["support_tickets"].merge(book["accounts"][["account_id", "signup_date"]])
    weeks = (st.opened_at - st.signup_date).dt.days // 7
    early, late = st[weeks < 6], st[weeks >= 12]
    assert early.category.value_counts().idxmax() == "onboarding"
    assert (late.category == "onboarding").mean() < 0.05
    assert {"P1", "P2", "P3", "P4"} == set(st.priority)
    assert 0 < st.resolved_at.isna().mean() < 0.1
    hours = (st.first_response_at - st.opened_at).dt.total_seconds() / 3600
    med = hours.groupby(st.priority).median()
    assert med["P1"] < med["P2"] < med["P3"] < med["P4"]


def test_survey_details(book):
    sr = book["survey_responses"]
    assert dict(sr.groupby("survey").touchpoint.first()) == demo.PLANTED["survey_touchpoints"]
    nps = sr[sr.survey == "nps"].assign(q=lambda f: f.responded_at.dt.to_period("Q"))
    assert nps.duplicated(["respondent_id", "q"]).sum() > 20  # some answer twice a quarter
    assert nps.groupby(["account_id", "q"]).respondent_id.nunique().max() >= 3
    c = sr.comment.dropna()
    japanese = c.str.contains(r"[\u3040-\u30ff\u4e00-\u9fff]")
    assert 0.2 < japanese.mean() < 0.8
    # CES is lower for slow onboarders
    on = onboarding_frame(book)
    ces = sr[sr.survey == "ces"].merge(on[["slow"]], left_on="account_id", right_index=True)
    assert ces.groupby("slow").score.mean()[True] < ces.groupby("slow").score.mean()[False] - 0.5


def test_stakeholders_roles_domains_and_departures(book):
    sh = book["stakeholders"]
    per = sh.groupby("account_id").size()
    assert per.between(2, 8).all() and per.max() >= 6
    assert set(sh.role) == set(demo.PLANTED["stakeholder_roles"])
    roles = sh.groupby("account_id").role.agg(list)
    assert roles.map(lambda r: r.count("executive sponsor") == 1 and "owner" in r).all()
    assert {"CTO", "VP of Engineering", "Tech Lead"} <= set(sh.title)
    tech_owner = sh[(sh.role == "owner") & (sh.domain == "technical")].account_id.nunique()
    assert 0.2 < tech_owner / per.size < 0.8
    assert 0.03 < sh.left_at.notna().mean() < 0.3
    assert sh.groupby("account_id").decision_style.nunique().max() == 1


def test_feature_requests_repeat_within_an_account(book):
    fr = book["feature_requests"]
    same = fr.groupby(["account_id", "title"]).person_id.nunique()
    assert (same >= 2).sum() > 20
    assert set(fr.status) == {"open", "planned", "shipped", "declined"}
    assert (fr.status_at >= fr.created_at).all()
    assert set(fr.source) == {"survey", "ticket", "meeting", "roundtable"}


def test_cs_activities_follow_touch_models(book):
    act = book["cs_activities"].merge(book["accounts"][["account_id", "touch_model"]])
    by = pd.crosstab(act.activity, act.touch_model)
    assert by.loc["qbr", ["low", "tech"]].sum() == 0 and by.loc["qbr", "high"] > 0
    assert by.loc["campaign_email", ["high", "low"]].sum() == 0
    assert {"kickoff", "training", "qbr", "health_check", "webinar", "campaign_email"} == set(
        act.activity)
    kick = act[act.activity == "kickoff"].groupby("account_id").occurred_at.min().dt.normalize()
    acc = book["accounts"].set_index("account_id")
    assert (kick == acc.kickoff_date.reindex(kick.index)).all()


# -- planted effects --------------------------------------------------------------------
def test_segment_churn_hazard_ratios_recovered_by_cox(book):
    """Cox ``churn ~ segment`` on the default 3000-account book: within 20% of the plant."""
    life = lifetimes(book)
    hr, ci, names = cox_hr(life, "C(segment, Treatment('Enterprise'))")
    planted = demo.PLANTED["segment_churn_hr"]
    for seg in ("SMB", "Mid-Market"):
        i = next(k for k, n in enumerate(names) if seg in n)
        assert abs(hr[i] / planted[seg] - 1) < 0.2, (seg, hr[i])
        assert ci[i, 0] < planted[seg] < ci[i, 1], (seg, ci[i])


def test_smb_churns_more_than_mid_market_than_enterprise_in_each_cohort_year(book):
    life = lifetimes(book)
    for year in (2023, 2024, 2025):
        cohort = life[life.signup_date.dt.year == year]
        share = cohort.groupby("segment").churned.mean()
        assert share["SMB"] > share["Mid-Market"] > share["Enterprise"], (year, share)


def test_slow_onboarding_is_independent_of_segment_and_churns_more(book):
    on = onboarding_frame(book)
    judged = on[on.judged]
    share = judged.groupby("segment").slow.mean()
    assert share.max() - share.min() < 0.12, share
    hr, ci, names = cox_hr(judged, "slow + C(segment, Treatment('Enterprise'))")
    i = names.index("slow[T.True]")
    planted = demo.PLANTED["slow_onboarding_churn_hr"]
    assert 0.7 * planted < hr[i] < 1.3 * planted and ci[i, 0] > 1


def test_training_naive_gap_overstates_the_planted_effect(book):
    """Trained accounts are larger, and training spreads over the first five weeks.

    Naive TTV gap < within-segment gap (size confounds); classifying accounts by "ever
    trained" dilutes the plant (training after value does nothing), so only a method that
    respects when training happened recovers it: accounts trained in their first week
    (before value for nearly all) against never-trained ones, adjusted, ≈ the plant.
    """
    import statsmodels.formula.api as smf

    on = onboarding_frame(book)
    done = on.dropna(subset=["ttv"]).copy()
    assert on.groupby("trained").employees.mean()[True] > 3 * on.groupby(
        "trained").employees.mean()[False]
    share = on.groupby("segment").trained.mean()
    for seg, planted in demo.PLANTED["training_share_by_segment"].items():
        assert abs(share[seg] - planted) < 0.08, (seg, share[seg])
    days = on.training_day.dropna()
    assert days.min() >= 1 and days.max() <= 35 and days.quantile(0.75) > 20
    mean = done.groupby("trained").ttv.mean()
    naive = mean[True] - mean[False]
    cell = done.groupby(["segment", "trained"]).ttv.mean().unstack()
    weight = done[done.trained].groupby("segment").size()
    within = ((cell[True] - cell[False]) * weight).sum() / weight.sum()
    effect = demo.PLANTED["training_ttv_effect_days"]
    assert naive < within - 1.5  # naive overstates more than within-segment does
    done["log_employees"] = np.log(done.employees)
    ever = smf.ols("ttv ~ trained + C(segment) + log_employees", done.reset_index()).fit()
    assert effect + 1.5 < ever.params["trained[T.True]"] < 0  # diluted toward zero
    early = done[~done.trained | (done.training_day <= 7)].reset_index()
    fit = smf.ols("ttv ~ trained + C(segment) + log_employees", early).fit()
    assert abs(fit.params["trained[T.True]"] - effect) < 2.5


def test_detractor_accounts_churn_more(book):
    sr = book["survey_responses"]
    mean = sr[sr.survey == "nps"].groupby("account_id").score.mean()
    life = lifetimes(book).join(mean.rename("nps"), how="inner")
    life["cls"] = pd.cut(life.nps, [-1, 6.5, 8.5, 11], labels=["det", "pas", "pro"]).astype(str)
    hr, ci, names = cox_hr(life, "C(cls, Treatment('pro')) + C(segment)")
    det = hr[names.index("C(cls, Treatment('pro'))[T.det]")]
    pas = hr[names.index("C(cls, Treatment('pro'))[T.pas]")]
    planted = demo.PLANTED["detractor_churn_hr"]
    assert 0.7 * planted < det < 1.3 * planted
    assert 1.0 < pas < det
    # independent of segment: similar detractor share in each segment
    share = (life.cls == "det").groupby(life.segment).mean()
    assert share.max() - share.min() < 0.08


def test_nps_drivers_relate_to_the_score_with_the_planted_order(book):
    import statsmodels.formula.api as smf

    nps = book["survey_responses"].query("survey == 'nps'")
    weights = demo.PLANTED["nps_driver_weights"]
    fit = smf.ols("score ~ " + " + ".join(weights), nps).fit()
    got = fit.params[list(weights)]
    assert list(got.sort_values(ascending=False).index) == sorted(
        weights, key=weights.get, reverse=True)
    ratio = got / pd.Series(weights)
    assert ratio.between(0.65, 1.05).all(), ratio


def test_comment_themes_differ_between_detractors_and_promoters(book):
    sr = book["survey_responses"].query("survey == 'nps'").dropna(subset=["comment"])
    cat = np.where(sr.score <= 6, "det", np.where(sr.score >= 9, "pro", "pas"))
    kw = demo.PLANTED["theme_keywords"]

    def mentions(theme):
        pattern = "|".join(kw[theme])
        return sr.comment.str.contains(pattern, case=False, regex=True)

    for theme in demo.PLANTED["detractor_themes"]:
        m = mentions(theme)
        assert m[cat == "det"].mean() > 2 * m[cat == "pro"].mean(), theme
    for theme in demo.PLANTED["promoter_themes"]:
        m = mentions(theme)
        assert m[cat == "pro"].mean() > 1.5 * m[cat == "det"].mean(), theme


def test_p1_tickets_before_renewal_raise_churn_at_it(big_book):
    """At contract anniversaries, a P1 opened in the 90 days before goes with more churn."""
    life = lifetimes(big_book).reset_index()
    tickets = big_book["support_tickets"]
    p1 = tickets.loc[tickets.priority == "P1", ["account_id", "opened_at"]]
    rows = []
    for k in (1, 2, 3):
        renewal = life.signup_date + pd.DateOffset(months=12 * k)
        reached = (renewal <= AS_OF) & (life.last_end >= renewal)
        rows.append(pd.DataFrame({
            "account_id": life.account_id[reached], "renewal": renewal[reached],
            "churned_at_renewal": life.churn_date[reached] == renewal[reached],
        }))
    ren = pd.concat(rows, ignore_index=True).reset_index()
    j = ren.merge(p1, on="account_id", how="left")
    window = (j.opened_at >= j.renewal - pd.Timedelta(days=90)) & (j.opened_at < j.renewal)
    ren["p1"] = window.groupby(j["index"]).any().reindex(ren["index"]).to_numpy()
    rate = ren.groupby("p1").churned_at_renewal.mean()
    assert ren.p1.sum() > 300
    assert 1.2 < rate[True] / rate[False] < demo.PLANTED["p1_before_renewal_churn_hr"] + 0.3


def test_key_person_departure_raises_churn_rate(big_book):
    """Churn per account-year after a key person left vs before (person-time rates)."""
    life = lifetimes(big_book)
    sh = big_book["stakeholders"]
    key = sh[sh.role.isin(demo.PLANTED["key_roles"]) & sh.left_at.notna()]
    left = key.groupby("account_id").left_at.min().reindex(life.index)
    stop = life.churn_date.fillna(AS_OF)
    before = ((left.fillna(stop).clip(upper=stop)) - life.signup_date).dt.days.clip(lower=0)
    after = (stop - left).dt.days.fillna(0).clip(lower=0)
    churn_after = life.churned & left.notna()
    rate_after = churn_after.sum() / after.sum()
    rate_before = (life.churned.sum() - churn_after.sum()) / before.sum()
    planted = demo.PLANTED["champion_departure_churn_hr"]
    assert 0.7 * planted < rate_after / rate_before < 1.3 * planted
    assert key.account_id.nunique() > 300


def test_csm_ratings_are_lower_before_churn(book):
    hp = demo.PLANTED["health_predicts_renewal"]
    life = lifetimes(book)
    hi = book["health_inputs"].merge(life[["churn_date"]], left_on="account_id",
                                     right_index=True)
    soon = (hi.churn_date > hi.as_of) & (
        hi.churn_date <= hi.as_of + pd.Timedelta(days=hp["horizon_days"]))
    gap = hi.csm_rating[~soon].mean() - hi.csm_rating[soon].mean()
    assert gap > 0.7, gap
    assert hi.groupby(["account_id", "as_of"]).size().max() == 1
    assert (hi.as_of.dt.is_quarter_end).all()


# -- the written workspace, chunking and the CLI ----------------------------------------
def _read_all(path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for name in contract.TABLE_NAMES:
            frame = con.execute(f'SELECT * FROM "{name}"').df()
            keys = [c for c in frame.columns if c != "comment"]
            out[name] = frame.sort_values(keys).reset_index(drop=True)
        return out
    finally:
        con.close()


def test_built_workspace_equals_generated_tables(small_demo_path):
    ws = open_workspace(small_demo_path)
    assert ws.as_of == demo.DEMO_AS_OF and ws.currency == "USD" and ws.timezone == "UTC"
    assert USAGE_ROLLUP in ws.con.list_tables()
    written = _read_all(small_demo_path)
    gen = demo.generate(300, seed=7)
    for name, frame in gen.items():
        keys = [c for c in frame.columns if c != "comment"]
        expected = frame.sort_values(keys).reset_index(drop=True)
        got = written[name][list(expected.columns)]
        pd.testing.assert_frame_equal(got, expected, check_dtype=False, obj=name)


def test_chunked_build_matches_a_single_chunk(tmp_path):
    # a light event volume keeps this fast; chunking works the same at any volume
    kw = dict(accounts=2000, seed=9, events_per_account_month=8)
    one = demo.build_demo(tmp_path / "one.duckdb", chunk_accounts=2000,
                          parquet_dir=tmp_path / "pq_one", **kw)
    many = demo.build_demo(tmp_path / "many.duckdb", chunk_accounts=500,
                           parquet_dir=tmp_path / "pq_many", **kw)
    parts_one = sorted((tmp_path / "pq_one" / "usage_events").glob("part-*.parquet"))
    parts_many = sorted((tmp_path / "pq_many" / "usage_events").glob("part-*.parquet"))
    assert len(parts_one) == 1 and len(parts_many) == 4
    a, b = _read_all(one), _read_all(many)
    for name in contract.TABLE_NAMES:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    # every small table was kept as Parquet too
    for name in contract.TABLE_NAMES:
        if name != "usage_events":
            kept = pd.read_parquet(tmp_path / "pq_many" / f"{name}.parquet")
            assert len(kept) == len(b[name]), name
    # each part holds only its own chunk of accounts, in account order
    seen = []
    for part in parts_many:
        ids = pd.read_parquet(part, columns=["account_id"]).account_id
        assert ids.is_monotonic_increasing
        seen.append((ids.iloc[0], ids.iloc[-1]))
    assert all(prev[1] < nxt[0] for prev, nxt in zip(seen, seen[1:], strict=False))
    assert sum(pq_rows(p) for p in parts_many) == len(b["usage_events"])
    # no temporary files left beside the workspace
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "many.duckdb", "one.duckdb", "pq_many", "pq_one"]


def pq_rows(path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def test_event_chunks_hold_one_chunk_of_accounts_each():
    size = demo.EVENT_BLOCK
    chunks = list(demo.usage_event_chunks(accounts=3 * size, seed=4, chunk_accounts=size))
    assert len(chunks) == 3
    whole = demo.generate(3 * size, seed=4)["usage_events"]
    total = sum(c.num_rows for c in chunks)
    assert total == len(whole)
    ids = sorted(whole.account_id.unique())
    for i, c in enumerate(chunks):
        acc = set(c.column("account_id").to_pylist())
        lo, hi = f"A{size * i + 1:05d}", f"A{size * (i + 1):05d}"
        assert all(lo <= a <= hi for a in acc)
        assert c.num_rows < 0.6 * total
    got = pd.concat([c.to_pandas() for c in chunks], ignore_index=True)
    assert sorted(got.account_id.unique()) == ids
    pd.testing.assert_frame_equal(got, whole, check_dtype=False)


def test_as_of_moves_the_whole_book():
    as_of = dt.date(2025, 6, 30)
    t = demo.generate(200, seed=1, as_of=as_of)
    limit = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    for name, frame in t.items():
        for col in frame.columns:
            if col == "renewal_date":  # scheduled: after the as-of date
                assert (frame[col].dropna() >= limit).all(), (name, col)
            elif frame[col].dtype == "datetime64[us]":
                assert (frame[col].dropna() < limit).all(), (name, col)
    assert t["accounts"].signup_date.max() > pd.Timestamp(as_of) - pd.Timedelta(days=30)


def test_cli_demo_builds_a_workspace(tmp_path, capsys):
    from cs_analysis.cli import main

    out = tmp_path / "cli.duckdb"
    assert main(["demo", "--accounts", "300", "--out", str(out), "--quiet"]) == 0
    assert str(out) in capsys.readouterr().out
    ws = open_workspace(out)
    assert ws.accounts.count().execute() == 300
    assert ws.as_of == demo.DEMO_AS_OF
    assert set(ws.tables) == set(contract.TABLE_NAMES)
