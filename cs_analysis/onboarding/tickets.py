"""Support tickets opened during onboarding, per category and account-week."""

from __future__ import annotations

import datetime as dt

import ibis
import pandas as pd

from cs_analysis.errors import check_alpha
from cs_analysis.onboarding.ttv import (
    MISSING,
    OBSERVED,
    end_ts,
    group_labels,
    name_groups,
    poisson_ci,
    rate_ratio_ci,
    stage_ttv,
    utc_bounds,
)
from cs_analysis.time import resolve_as_of, utc_instant

__all__ = ["onboarding_tickets"]


# ======================================================================================
# Tickets during onboarding
# ======================================================================================
def onboarding_tickets(ws, criteria=None, *, stage: str | None = None, by: str | None = None,
                       as_of=None, alpha: float = 0.05) -> pd.DataFrame:
    """Support tickets opened during onboarding, by category, per account-week.

    Each account with a running clock (status ``reached``, ``in_progress`` or
    ``churned_before`` in :func:`time_to_value`) is **onboarding** from local midnight
    (workspace time zone) of its clock-start date until the stage was reached (its
    ``reached_at``), or, when it was not, until its churn date or the end of the as-of
    date. A ticket counts when its ``opened_at`` falls in that window. The rate is
    tickets / account-weeks of onboarding (the summed window lengths / 7 days), with an
    exact Poisson interval.
    For comparison, the same rate **after** onboarding: from ``reached_at`` to the churn
    date or the end of the as-of date, for accounts that reached the stage;
    ``rate_ratio`` = during / after. Null categories are labelled ``"(missing)"``.

    The join of tickets to onboarding windows runs in the engine.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace; needs ``support_tickets.category``.
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    stage : str, optional
        The stage that ends onboarding; default the last stage ("value").
    by : str, optional
        An ``accounts`` column to split by (a column named after it).
    as_of : date or str, optional
        Default: the workspace's as-of date.
    alpha : float
        1 - confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per (``by`` value and) category, most frequent first: the ``by``
        column (none without ``by``), ``category``,
        ``tickets``, ``accounts_with_tickets``, ``accounts`` (onboarding in the group),
        ``account_weeks``, ``per_account_week``, ``lower``, ``upper``, ``share`` (of the
        group's onboarding tickets), ``after_tickets``, ``after_account_weeks``,
        ``after_per_account_week``, ``rate_ratio`` with ``ratio_lower`` /
        ``ratio_upper`` (score interval of the ratio of two Poisson rates,
        ``statsmodels.stats.rates``).
    """
    alpha = check_alpha(alpha)
    ws.table("support_tickets", columns=["account_id", "opened_at", "category"])
    ttv, _ = stage_ttv(ws, criteria, stage, as_of=as_of, by=by, ttv=None)
    as_of_d = resolve_as_of(ws, as_of)
    tz = ws.timezone
    # window bounds as stored (UTC) instants: local midnights of the dates in ws.timezone
    end_day = pd.Timestamp(utc_instant(as_of_d + dt.timedelta(days=1), tz))
    obs = ttv[ttv["status"].isin(OBSERVED)].copy()
    obs["group"] = group_labels(obs, by)
    w0 = utc_bounds(obs["clock_start"], tz)
    churn = utc_bounds(obs["churn_date"], tz)
    stop = churn.where(obs["status"] == "churned_before", end_day)
    w1 = obs["reached_at"].where(obs["reached"], stop)
    w1 = w1.where(w1 > w0, w0)
    a0 = obs["reached_at"].where(obs["reached"])
    a1 = churn.where(churn.notna(), end_day)
    windows = pd.DataFrame({
        "account_id": obs["account_id"].astype("str"), "_g": obs["group"].astype("str"),
        "_w0": w0.astype("datetime64[us]"), "_w1": w1.astype("datetime64[us]"),
        "_a0": a0.astype("datetime64[us]"), "_a1": a1.astype("datetime64[us]")})
    weeks = windows.assign(
        during=(windows["_w1"] - windows["_w0"]).dt.total_seconds() / (7 * 86400),
        after=((windows["_a1"] - windows["_a0"]).dt.total_seconds() / (7 * 86400)).clip(
            lower=0).fillna(0.0))
    exposure = weeks.groupby("_g").agg(accounts=("account_id", "size"),
                                       account_weeks=("during", "sum"),
                                       after_account_weeks=("after", "sum"))
    cols = ["group", "category", "tickets", "accounts_with_tickets", "accounts",
            "account_weeks", "per_account_week", "lower", "upper", "share", "after_tickets",
            "after_account_weeks", "after_per_account_week", "rate_ratio", "ratio_lower",
            "ratio_upper"]
    if windows.empty:
        return name_groups(pd.DataFrame({c: [] for c in cols}), by)
    t = ws.table("support_tickets", columns=["account_id", "opened_at", "category"])
    t = t.filter(t.opened_at < end_ts(as_of_d, tz))
    w = ibis.memtable(windows)
    j = t.join(w, "account_id")
    cat = j.category.cast("string").fill_null(MISSING)
    during = (j.opened_at >= j._w0) & (j.opened_at < j._w1)
    after = j._a0.notnull() & (j.opened_at >= j._a0) & (j.opened_at < j._a1)
    j = j.mutate(_cat=cat, _during=during.cast("int64"), _after=after.cast("int64"))
    j = j.filter((j._during + j._after) > 0)
    agg = j.group_by(["_g", "_cat"]).agg(
        tickets=j._during.sum(), after_tickets=j._after.sum(),
        accounts_with_tickets=j.account_id.nunique(where=j._during == 1)).to_pandas()
    if agg.empty:
        return name_groups(pd.DataFrame({c: [] for c in cols}), by)
    agg = agg.rename(columns={"_g": "group", "_cat": "category"})
    agg = agg.join(exposure, on="group")
    agg["tickets"] = agg["tickets"].astype("int64")
    agg["after_tickets"] = agg["after_tickets"].astype("int64")
    agg["accounts_with_tickets"] = agg["accounts_with_tickets"].astype("int64")
    agg["per_account_week"] = agg["tickets"] / agg["account_weeks"]
    cis = [poisson_ci(int(k), float(e), alpha) for k, e in zip(agg["tickets"],
                                                              agg["account_weeks"],
                                                              strict=True)]
    agg["lower"] = [c[0] for c in cis]
    agg["upper"] = [c[1] for c in cis]
    agg["share"] = agg["tickets"] / agg.groupby("group")["tickets"].transform("sum")
    agg["after_per_account_week"] = (agg["after_tickets"] / agg["after_account_weeks"]).where(
        agg["after_account_weeks"] > 0)
    agg["rate_ratio"] = (agg["per_account_week"] / agg["after_per_account_week"]).where(
        agg["after_tickets"] > 0)
    rr = [rate_ratio_ci(int(k1), float(e1), int(k2), float(e2), alpha)
          for k1, e1, k2, e2 in zip(agg["tickets"], agg["account_weeks"], agg["after_tickets"],
                                    agg["after_account_weeks"], strict=True)]
    agg["ratio_lower"] = [c[0] for c in rr]
    agg["ratio_upper"] = [c[1] for c in rr]
    agg = agg.sort_values(["group", "tickets", "category"], ascending=[True, False, True])
    return name_groups(agg[cols].reset_index(drop=True), by)

