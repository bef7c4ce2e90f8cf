"""Time to value: per-account clocks and stage times, Kaplan-Meier summaries, stalled accounts.

Definitions: see :mod:`cs_analysis.onboarding` (metrics.md, "Onboarding"). The heavy work
(first milestone times, the N-th event of an event set, windows of N events within D
days, the K-th distinct user) runs in the engine; one row per account comes back.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ibis
import numpy as np
import pandas as pd

from cs_analysis.errors import check_alpha, check_int
from cs_analysis.formatting import is_missing
from cs_analysis.onboarding.criteria import CLOCK_COLUMNS, Condition, Criteria, Stage, load_criteria
from cs_analysis.survival import aalen_johansen, cif_interval, kaplan_meier, loglog_interval
from cs_analysis.time import day_start, local_date, local_dates, resolve_as_of

__all__ = [
    "ALL_ACCOUNTS",
    "MISSING",
    "STATUSES",
    "stalled_accounts",
    "stalled_per_owner",
    "time_to_value",
    "ttv_curves",
    "ttv_summary",
]

#: Status of an account for a stage (see :func:`time_to_value`).
STATUSES = ("reached", "in_progress", "churned_before", "no_clock_start", "not_started")
#: Statuses that enter the Kaplan-Meier estimate (the others have no clock running).
OBSERVED = ("reached", "in_progress", "churned_before")
#: Label of the group holding every account when no ``by`` column is given.
ALL_ACCOUNTS = "All accounts"
#: Label of accounts whose ``by`` column is null.
MISSING = "(missing)"
DAY = pd.Timedelta(days=1)


# ======================================================================================
# Engine work: per-account clock and condition times
# ======================================================================================
def end_ts(as_of: dt.date, tz: str | None):
    """The stored (UTC) instant of local midnight after the as-of date in ``tz``.

    Activity strictly before it counts: it happened on or before the as-of date on the
    workspace's calendar.
    """
    return day_start(as_of + dt.timedelta(days=1), tz)


def utc_bounds(dates: pd.Series, tz: str | None) -> pd.Series:
    """Stored (UTC) instants at which local days ``dates`` start in ``tz`` (NaT stays)."""
    d = pd.to_datetime(dates).astype("datetime64[us]")
    name = tz or "UTC"
    if name == "UTC":
        return d
    return (d.dt.tz_localize(name, ambiguous=False, nonexistent="shift_forward")
            .dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]"))


def _scoped_accounts(ws, as_of: dt.date):
    acc = ws.table("accounts", columns=["account_id", "signup_date"])
    acc = acc.filter(acc.signup_date <= as_of)
    return acc.select("account_id", _signup=acc.signup_date)


def _since_signup(j, col, as_of: dt.date, tz: str | None):
    """Rows of ``j`` whose timestamp ``col`` falls from the local signup date to as-of."""
    return j.filter(local_date(col, tz) >= j._signup, col < end_ts(as_of, tz))


def _milestone_times(ws, as_of: dt.date, names: Sequence[str]) -> pd.DataFrame:
    """First ``completed_at`` per account and milestone (``account_id, milestone, at``)."""
    m = ws.table("onboarding_milestones", columns=["account_id", "milestone", "completed_at"])
    m = m.filter(m.milestone.isin(list(names)))
    acc = _scoped_accounts(ws, as_of)
    j = m.join(acc, "account_id")
    j = _since_signup(j, j.completed_at, as_of, ws.timezone)
    out = j.group_by(["account_id", "milestone"]).agg(at=j.completed_at.min()).to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _events_time(ws, as_of: dt.date, cond: Condition) -> pd.DataFrame:
    """When each account first meets an events condition (``account_id, at``).

    ``at_least`` N events of the set, all of them if ``within_days`` is None (the N-th
    event), else N events on at most ``within_days`` consecutive calendar days (the
    first event closing such a window: the event N-1 rows earlier in time order is
    fewer than ``within_days`` calendar days before it).
    """
    cols = ["account_id", "event_at"] + (["event_name"] if cond.events else [])
    ev = ws.table("usage_events", columns=cols)
    if cond.events:
        ev = ev.filter(ev.event_name.isin(list(cond.events)))
    acc = _scoped_accounts(ws, as_of)
    j = ev.join(acc, "account_id")
    j = _since_signup(j, j.event_at, as_of, ws.timezone)
    j = j.select("account_id", "event_at")
    n = cond.at_least
    w = ibis.window(group_by=j.account_id, order_by=j.event_at)
    if cond.within_days is None:
        if n == 1:
            res = j.group_by("account_id").agg(at=j.event_at.min())
        else:
            r = j.mutate(_rn=ibis.row_number().over(w))
            res = r.filter(r._rn == n - 1).select("account_id", at=r.event_at)
    else:
        r = j.mutate(_prev=j.event_at.lag(n - 1).over(w)) if n > 1 else j.mutate(
            _prev=j.event_at)
        tz = ws.timezone
        r = r.filter(r._prev.notnull(),
                     local_date(r.event_at, tz).delta(local_date(r._prev, tz), unit="day")
                     < cond.within_days)
        res = r.group_by("account_id").agg(at=r.event_at.min())
    out = res.to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _users_time(ws, as_of: dt.date, cond: Condition) -> pd.DataFrame:
    """When each account's K-th distinct user had a first event (``account_id, at``)."""
    cols = ["account_id", "event_at", "user_id"] + (["event_name"] if cond.events else [])
    ev = ws.table("usage_events", columns=cols)
    ev = ev.filter(ev.user_id.notnull())
    if cond.events:
        ev = ev.filter(ev.event_name.isin(list(cond.events)))
    acc = _scoped_accounts(ws, as_of)
    j = ev.join(acc, "account_id")
    j = _since_signup(j, j.event_at, as_of, ws.timezone)
    first = j.group_by(["account_id", "user_id"]).agg(_first=j.event_at.min())
    k = cond.at_least
    if k == 1:
        res = first.group_by("account_id").agg(at=first._first.min())
    else:
        w = ibis.window(group_by=first.account_id, order_by=first._first)
        r = first.mutate(_rn=ibis.row_number().over(w))
        res = r.filter(r._rn == k - 1).select("account_id", at=r._first)
    out = res.to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _last_milestones(ws, as_of: dt.date) -> pd.DataFrame:
    """Latest milestone of any name per account (``account_id, last_milestone, last_at``)."""
    if not ws.has("onboarding_milestones"):
        return pd.DataFrame({"account_id": pd.Series([], dtype="str"),
                             "last_milestone": pd.Series([], dtype="str"),
                             "last_at": pd.Series([], dtype="datetime64[us]")})
    m = ws.table("onboarding_milestones", columns=["account_id", "milestone", "completed_at"])
    acc = _scoped_accounts(ws, as_of)
    j = m.join(acc, "account_id")
    j = _since_signup(j, j.completed_at, as_of, ws.timezone)
    out = j.group_by("account_id").agg(last_milestone=j.milestone.argmax(j.completed_at),
                                       last_at=j.completed_at.max()).to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _open_tickets(ws, as_of: dt.date) -> pd.DataFrame | None:
    """Tickets open at the end of the as-of date per account (None without the data)."""
    if not ws.has("support_tickets", "resolved_at"):
        return None
    t = ws.table("support_tickets", columns=["account_id", "opened_at", "resolved_at"])
    end = end_ts(as_of, ws.timezone)
    t = t.filter(t.opened_at < end, t.resolved_at.isnull() | (t.resolved_at >= end))
    out = t.group_by("account_id").agg(open_tickets=t.count()).to_pandas()
    out["account_id"] = out["account_id"].astype("str")
    return out


def _first_churn(ws, as_of: dt.date) -> pd.Series:
    """First churn date per account (engine), for churn before value.

    The first ``end_date`` (on or before the as-of date) on which no subscription of the
    account covers that day: metrics.md's churn date applied to each episode. Accounts
    that never lost coverage are absent.

    For an account that never came back this is :func:`cs_analysis.retention.
    account_lifetimes`' churn date; for a reactivated one it is the end of its first
    episode, where retention's churn date is the end of its last.
    """
    s = ws.table("subscriptions", columns=["account_id", "start_date", "end_date"])
    s = s.filter(s.start_date <= as_of)
    ends = s.filter(s.end_date.notnull(), s.end_date <= as_of).select(
        "account_id", _end=s.end_date)
    cover = s.select(_acc=s.account_id, _s=s.start_date, _e=s.end_date)
    # equality join first, then the date conditions: an anti-join on inequalities ran
    # as a nested loop (27-36 s at 100k accounts, benchmarks/), this as a hash join
    j = ends.join(cover, ends.account_id == cover._acc)
    covered = (j.filter(j._s <= j._end, j._e.isnull() | (j._e > j._end))
               .select("account_id", "_end").distinct())
    gaps = ends.anti_join(covered, ["account_id", "_end"])
    out = gaps.group_by("account_id").agg(churn_date=gaps._end.min()).to_pandas()
    return pd.Series(pd.to_datetime(out["churn_date"]).astype("datetime64[us]").to_numpy(),
                     index=out["account_id"].astype("str").to_numpy())


@dataclass
class _Data:
    """Everything per account that the onboarding analyses share."""

    accounts: pd.DataFrame  # indexed by account_id
    conditions: pd.DataFrame  # account_id x condition key -> first time it holds
    reached: pd.DataFrame  # account_id x stage name -> reached_at
    as_of: dt.date
    criteria: Criteria
    tz: str = "UTC"  # the workspace's time zone: dates of timestamps are taken there


def _collect(ws, criteria, as_of=None, extra: Sequence[str] = ()) -> _Data:
    crit = load_criteria(criteria)
    crit.check(ws)
    as_of = resolve_as_of(ws, as_of)
    extra = [c for c in dict.fromkeys(extra) if c]
    optional = [c for c in ("account_name", "segment", "csm_owner", "kickoff_date")
                if ws.has("accounts", c)]
    cols = ["account_id", "signup_date", *optional]
    cols += [c for c in extra if c not in cols]
    acc_t = ws.table("accounts", columns=cols)
    acc_t = acc_t.filter(acc_t.signup_date <= as_of).select(*cols)
    acc = acc_t.to_pandas()
    acc["account_id"] = acc["account_id"].astype("str")
    for c in ("signup_date", "kickoff_date"):
        if c in acc:
            acc[c] = pd.to_datetime(acc[c]).astype("datetime64[us]")
    acc = acc.set_index("account_id", drop=False).sort_index()
    acc.index.name = None

    # clock start
    seg = acc["segment"] if "segment" in acc else pd.Series(pd.NA, index=acc.index)
    chosen = _map_distinct(seg, lambda s: crit.clock_by_segment.get(str(s), crit.clock_start)
                           if not is_missing(s) else crit.clock_start).astype("str")
    start = pd.Series(pd.NaT, index=acc.index, dtype="datetime64[us]")
    for col in CLOCK_COLUMNS:
        if col in acc:
            start = start.mask(chosen == col, acc[col])
    source = chosen.where(start.notna())
    if crit.if_no_clock_start:
        fb = crit.if_no_clock_start
        use = start.isna() & acc[fb].notna()
        start = start.mask(use, acc[fb])
        source = source.mask(use, fb)
    acc["clock_column"] = chosen
    acc["clock_start"] = start
    acc["clock_source"] = source.astype("str").where(source.notna())

    # churn: the first churn episode (a reactivated account churned when it first lost
    # coverage; a later return does not undo "churned before value")
    churn = pd.Series(pd.NaT, index=acc.index, dtype="datetime64[us]")
    if ws.has("subscriptions"):
        first = _first_churn(ws, as_of)
        churn = first.reindex(acc.index).astype("datetime64[us]")
    acc["churn_date"] = churn

    # conditions (engine), then stages (per account, pandas)
    conds: dict[str, pd.Series] = {}
    milestones = crit.milestones
    if milestones:
        first = _milestone_times(ws, as_of, milestones)
        for name in milestones:
            rows = first[first["milestone"] == name]
            conds[f"milestone:{name}"] = pd.Series(
                pd.to_datetime(rows["at"]).to_numpy(), index=rows["account_id"].to_numpy())
    for s in crit.stages:
        for c in s.conditions:
            if c.key in conds:
                continue
            if c.kind == "events":
                got = _events_time(ws, as_of, c)
            elif c.kind == "active_users":
                got = _users_time(ws, as_of, c)
            else:
                continue
            conds[c.key] = pd.Series(pd.to_datetime(got["at"]).to_numpy(),
                                     index=got["account_id"].to_numpy())
    cond_df = pd.DataFrame(index=acc.index)
    for key, series in conds.items():
        cond_df[key] = series.reindex(acc.index).astype("datetime64[us]")
    reached = pd.DataFrame(index=acc.index)
    for s in crit.stages:
        times = cond_df[[c.key for c in s.conditions]]
        at = times.max(axis=1, skipna=False) if s.mode == "all" else times.min(axis=1)
        if s.requires:
            both = pd.concat([at, reached[s.requires]], axis=1)
            at = both.max(axis=1, skipna=False)
        reached[s.name] = at.astype("datetime64[us]")
    return _Data(acc, cond_df, reached, as_of, crit, ws.timezone)


def _map_distinct(values: pd.Series, fn) -> pd.Series:
    """``values.map(fn)``, calling ``fn`` once per distinct value (missing ones included)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    out = [fn(u) for u in uniques]
    if (codes < 0).any():
        out.append(fn(values[codes < 0].iloc[0]))  # code -1 picks this last entry
    table = np.empty(len(out), dtype=object)
    table[:] = out
    return pd.Series(table[codes] if len(out) else np.empty(0, dtype=object),
                     index=values.index, dtype=object)


def _stage_frame(data: _Data, stage: Stage, extra: Sequence[str] = ()) -> pd.DataFrame:
    """The :func:`time_to_value` rows of one stage."""
    acc = data.accounts
    as_of = pd.Timestamp(data.as_of)
    start = acc["clock_start"]
    reached_at = data.reached[stage.name]
    reached_day = local_dates(reached_at, data.tz).astype("datetime64[us]")
    churn = acc["churn_date"]
    no_clock = start.isna()
    not_started = ~no_clock & (start > as_of)
    running = ~no_clock & ~not_started
    reached = running & reached_at.notna() & (churn.isna() | (reached_day < churn))
    churned = running & ~reached & churn.notna()
    in_progress = running & ~reached & ~churned
    status = pd.Series(np.select(
        [no_clock.to_numpy(), not_started.to_numpy(), reached.to_numpy(), churned.to_numpy()],
        ["no_clock_start", "not_started", "reached", "churned_before"], "in_progress"),
        index=acc.index, dtype="str")
    end = reached_day.where(reached, churn.where(churned, as_of))
    days = ((end - start).dt.days.astype("float").clip(lower=0)).where(running)
    seg = acc["segment"] if "segment" in acc else pd.Series(pd.NA, index=acc.index)
    target = _map_distinct(seg, stage.target_for).astype("float")
    within = pd.Series(pd.NA, index=acc.index, dtype="boolean")
    within = within.mask(reached, days <= target)
    beyond = (churned | in_progress) & (days > target)
    within = within.mask(beyond, False)
    within = within.mask(target.isna() | ~running, pd.NA)
    out = pd.DataFrame({
        "account_id": acc["account_id"].astype("str"),
        "stage": stage.name,
        "stage_label": stage.label,
    })
    for col in ("account_name", "segment", "csm_owner"):
        if col in acc:
            out[col] = acc[col]
    for col in extra:
        if col not in out:
            out[col] = acc[col]
    out["signup_date"] = acc["signup_date"]
    out["clock_start"] = start
    out["clock_source"] = acc["clock_source"]
    out["reached_at"] = reached_at.where(reached)
    out["status"] = status
    out["reached"] = reached.astype(bool)
    out["days"] = days
    out["churn_date"] = churn
    out["target_days"] = target
    out["within_target"] = within
    return out.reset_index(drop=True)


# ======================================================================================
# Time to value
# ======================================================================================
def time_to_value(ws, criteria=None, stage: str | None = None, *, as_of=None,
                  by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Per account and stage: clock start, time the stage was reached, or censoring.

    Definitions (metrics.md, "Onboarding"): the **clock start** is ``signup_date`` or
    ``kickoff_date`` as the criteria say (per segment if they say so); an account
    without it is reported with status ``no_clock_start`` (unless the criteria name a
    date to start from instead), not guessed. A **stage is reached at** the first moment
    all of its conditions hold (``any:``: one of them). **TTV** = whole days from the
    clock-start date to the date of the reached time (0 when reached before the clock
    started). How each account is treated (``status``):

    - ``reached``: reached by the as-of date while still a customer; ``days`` = TTV.
    - ``in_progress``: not reached by the as-of date; censored there (``days`` = as-of
      date - clock start).
    - ``churned_before``: churned before reaching the stage ("churned before value");
      censored at the churn date. The churn date is that of metrics.md (the ``end_date``
      after which no subscription covers the next day) of the account's **first** churn
      episode: a reactivated account that lost coverage during onboarding churned before
      value even if it came back and reached value later (its clock does not run
      through the gap). For accounts that never came back it equals
      :func:`cs_analysis.retention.account_lifetimes`' churn date.
    - ``no_clock_start``: the clock's date is missing; left out of every estimate.
    - ``not_started``: the clock starts after the as-of date; left out.

    Only milestones and events from the account's ``signup_date`` up to the as-of date
    count; duplicated milestone rows count once (the first), and milestones reached out
    of order are fine (each condition has its own time).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace; accounts signing up after the as-of date are
        left out.
    criteria : Criteria, str, Path or mapping, optional
        Completion criteria (:func:`load_criteria`); default
        :func:`default_criteria_path`.
    stage : str, optional
        One stage's name; default every stage (one row per account and stage).
    as_of : date or str, optional
        Default: the workspace's as-of date.
    by : str or list of str, optional
        Extra ``accounts`` columns to carry along.

    Returns
    -------
    pandas.DataFrame
        ``account_id``, ``stage``, ``stage_label``, ``account_name`` / ``segment`` /
        ``csm_owner`` (when present), the ``by`` columns, ``signup_date``,
        ``clock_start`` (NaT without one), ``clock_source`` (the column it came from),
        ``reached_at`` (NaT unless reached), ``status``, ``reached`` (bool: the event of
        the Kaplan-Meier estimate), ``days`` (TTV or time to censoring; NaN without a
        running clock), ``churn_date``, ``target_days`` (NaN without a target),
        ``within_target`` (True: reached within target; False: reached later, or
        censored after the target passed; NA: censored before the target).
    """
    extra = by_list(by)
    data = _collect(ws, criteria, as_of, extra)
    stages = [data.criteria.stage(stage)] if stage is not None else data.criteria.stages
    frames = [_stage_frame(data, s, extra) for s in stages]
    return pd.concat(frames, ignore_index=True)


def by_list(by) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


# -- Kaplan-Meier: cs_analysis.survival (one convention: median = first t with S(t) <= 0.5)
def z_value(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def group_labels(frame: pd.DataFrame, by: str | None) -> pd.Series:
    if by is None:
        return pd.Series(ALL_ACCOUNTS, index=frame.index, dtype="str")
    return frame[by].astype("str").where(frame[by].notna(), MISSING)


def name_groups(frame: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Name the grouping column after ``by``; without ``by`` there is none (house rule)."""
    if by is None:
        return frame.drop(columns="group")
    return frame.rename(columns={"group": by})


def stage_ttv(ws, criteria, stage, *, as_of, by, ttv) -> tuple[pd.DataFrame, Stage]:
    crit = load_criteria(criteria)
    st = crit.stage(stage)
    if ttv is None:
        ttv = time_to_value(ws, crit, st.name, as_of=as_of, by=[by] if by else None)
    else:
        ttv = ttv[ttv["stage"] == st.name]
        if by is not None and by not in ttv:
            raise ValueError(f"the ttv frame has no {by!r} column; pass by={by!r} to "
                             "time_to_value")
    return ttv, st


# ======================================================================================
# Summary and curves
# ======================================================================================
def ttv_summary(ws, criteria=None, by: str | None = "segment", *, stage: str | None = None,
                as_of=None, percentiles: Sequence[float] = (0.25, 0.75), alpha: float = 0.05,
                small_sample: int = 30, ttv: pd.DataFrame | None = None) -> pd.DataFrame:
    """Kaplan-Meier median and percentiles of days to a stage, share within target, counts.

    Definitions (metrics.md): TTV as in :func:`time_to_value` (censored at the as-of
    date, or at the churn date for accounts that churned before the stage). The
    **median TTV** and the percentiles come from the Kaplan-Meier estimate S(t) of the
    share not yet at the stage after t days: the p-th percentile is the smallest t with
    S(t) <= 1 - p (the convention of lifelines and most textbooks; NaN when fewer than
    that share have reached it within follow-up). Its interval is where the pointwise
    log(-log) band of S crosses 1 - p (metrics.md, median intervals; lifelines'
    convention): when the curve steps across 50% in one jump, the interval is that
    step's day (e.g. [3, 3]). A NaN bound means that edge of the band does not reach
    1 - p within follow-up (typically the upper bound when too few accounts have
    reached the stage yet to rule out a later median). **Share within target** = 1 -
    S(target) from the same estimate, not completed / all; its interval is the Greenwood
    interval on the log(-log) scale. When a group's accounts have different targets
    (grouping by anything but segment), the estimate runs on days / target and the share
    is 1 - S(1), which equals 1 - S(target) when the target is common.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    by : str, optional
        An ``accounts`` column (one row per value; nulls labelled ``"(missing)"``), or
        None for one row over every account.
    stage : str, optional
        Default: the last stage ("value").
    as_of : date or str, optional
        Default: the workspace's as-of date.
    percentiles : list of float
        Other percentiles than the median (0.25 -> ``p25_days``).
    alpha : float
        1 - confidence level of the intervals.
    small_sample : int
        Groups with fewer accounts in the estimate are flagged ``small_sample``.
    ttv : DataFrame, optional
        A :func:`time_to_value` frame for the same workspace, criteria, stage and as-of
        date (with the ``by`` column), to avoid computing it again.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` column (named after it; none when ``by`` is
        None: one row for every account), ``stage``, ``accounts`` (in the estimate),
        ``reached``, ``in_progress``, ``churned_before``, ``no_clock_start``,
        ``not_started``, ``target_days`` (NaN when mixed or none),
        ``share_within_target`` with ``within_lower`` / ``within_upper``: 1 - S(target)
        of Kaplan-Meier, churn treated as censoring: the share that would have reached
        the stage within target **in a world without churn**;
        ``share_within_target_cif`` with ``within_cif_lower`` / ``within_cif_upper``:
        the Aalen-Johansen cumulative incidence of the stage by the target, churn before
        value a competing event: the share that **actually** reached it within target
        (never above the Kaplan-Meier figure); ``churned_before_target_cif``: the share
        that churned before reaching it, by the target; ``median_days``,
        ``median_lower``, ``median_upper``, ``p<q>_days`` / ``_lower`` / ``_upper`` per
        percentile (NaN bound: see above), ``small_sample``.
    """
    alpha = check_alpha(alpha)
    ttv, st = stage_ttv(ws, criteria, stage, as_of=as_of, by=by, ttv=ttv)
    z = z_value(alpha)
    groups = group_labels(ttv, by)
    rows = []
    for group, g in ttv.groupby(groups, sort=True):
        obs = g[g["status"].isin(OBSERVED)]
        counts = g["status"].value_counts()
        row: dict[str, Any] = {"group": group, "stage": st.name, "accounts": len(obs)}
        for s in STATUSES:
            row[s] = int(counts.get(s, 0))
        targets = obs["target_days"].dropna().unique()
        row["target_days"] = float(targets[0]) if len(targets) == 1 and obs[
            "target_days"].notna().all() else math.nan
        row.update(_within_share(obs, z))
        km = kaplan_meier(obs["days"], obs["reached"]) if len(obs) else None
        for p in (0.5, *percentiles):
            name = "median" if p == 0.5 else f"p{round(p * 100):d}"
            if km is None:
                row.update({f"{name}_days": math.nan, f"{name}_lower": math.nan,
                            f"{name}_upper": math.nan})
                continue
            lo, hi = km.quantile_ci(p, alpha)
            row.update({f"{name}_days": km.quantile(p), f"{name}_lower": lo,
                        f"{name}_upper": hi})
        row["small_sample"] = len(obs) < small_sample
        rows.append(row)
    cols = ["group", "stage", "accounts", *STATUSES, "target_days", *_WITHIN_COLUMNS]
    for p in (0.5, *percentiles):
        name = "median" if p == 0.5 else f"p{round(p * 100):d}"
        cols += [f"{name}_days", f"{name}_lower", f"{name}_upper"]
    cols.append("small_sample")
    return name_groups(pd.DataFrame(rows, columns=cols), by)


def _within_share(obs: pd.DataFrame, z: float) -> dict[str, float]:
    """1 - S(1) on days / target (= 1 - S(target) for one target), with its interval."""
    ok = obs[obs["target_days"].notna()]
    nan = {c: math.nan for c in _WITHIN_COLUMNS}
    if ok.empty:
        return nan
    target = ok["target_days"].to_numpy(float)
    days = ok["days"].to_numpy(float)
    # days / target; a 0-day target: 0 when reached on day 0, else past it (2 > 1)
    scaled = np.where(target > 0, days / np.where(target > 0, target, 1.0),
                      np.where(days > 0, 2.0, 0.0))
    out = dict(nan)
    km = kaplan_meier(scaled, ok["reached"])
    s, se = km.at(1.0)
    if not is_missing(s):
        lo, hi = loglog_interval(s, se, z)
        out.update(share_within_target=1 - s,
                   within_lower=1 - hi if not is_missing(hi) else 1 - s,
                   within_upper=1 - lo if not is_missing(lo) else 1 - s)
    # Aalen-Johansen: churn before value is a competing event, not censoring
    kind = np.where(ok["reached"].to_numpy(bool), 1,
                    np.where((ok["status"] == "churned_before").to_numpy(), 2, 0))
    aj = aalen_johansen(scaled, kind, cause=1)
    f, fse = aj.at(1.0)
    if not is_missing(f):
        lo, hi = cif_interval(f, fse, z)
        churn, _ = aalen_johansen(scaled, kind, cause=2).at(1.0)
        out.update(share_within_target_cif=f,
                   within_cif_lower=lo if not is_missing(lo) else f,
                   within_cif_upper=hi if not is_missing(hi) else f,
                   churned_before_target_cif=churn)
    return out


#: Columns of the share within target: Kaplan-Meier (a world without churn) and
#: Aalen-Johansen (what actually happened).
_WITHIN_COLUMNS = ("share_within_target", "within_lower", "within_upper",
                   "share_within_target_cif", "within_cif_lower", "within_cif_upper",
                   "churned_before_target_cif")


def ttv_curves(ws, criteria=None, by: str | None = "segment", *, stage: str | None = None,
               as_of=None, alpha: float = 0.05, ttv: pd.DataFrame | None = None
               ) -> pd.DataFrame:
    """Cumulative share of accounts at a stage after each number of days (1 - KM).

    The Kaplan-Meier estimate of :func:`ttv_summary` drawn as a step function:
    ``reached_share`` = 1 - S(days), with the pointwise Greenwood interval on the
    log(-log S) scale. Censoring as in :func:`time_to_value`.

    Parameters
    ----------
    ws, criteria, by, stage, as_of, alpha, ttv
        As for :func:`ttv_summary`.

    Returns
    -------
    pandas.DataFrame
        the ``by`` column (none when ``by`` is None), ``stage``, ``days``,
        ``reached_share``, ``lower``, ``upper``,
        ``at_risk`` (accounts not yet there and still observed just before ``days``),
        ``events`` (reached at ``days``), ``target_days`` (the group's target when it
        has one). The first row per group is day 0; a last row carries the curve to the
        longest follow-up.
    """
    alpha = check_alpha(alpha)
    ttv, st = stage_ttv(ws, criteria, stage, as_of=as_of, by=by, ttv=ttv)
    z = z_value(alpha)
    groups = group_labels(ttv, by)
    parts = []
    for group, g in ttv.groupby(groups, sort=True):
        obs = g[g["status"].isin(OBSERVED)]
        if obs.empty:
            continue
        km = kaplan_meier(obs["days"], obs["reached"])
        days = [0.0, *km.times]
        surv = [1.0, *km.surv]
        se = [0.0, *km.se]
        at_risk = [len(obs), *km.n_risk]
        events = [0, *km.n_events]
        if km.max_time > days[-1]:
            days.append(km.max_time)
            surv.append(surv[-1])
            se.append(se[-1])
            at_risk.append(int((obs["days"] >= km.max_time).sum()))
            events.append(0)
        bands = [loglog_interval(s, e, z) for s, e in zip(surv, se, strict=True)]
        lower = [1 - (hi if not is_missing(hi) else s) for (lo, hi), s in zip(bands, surv,
                                                                           strict=True)]
        upper = [1 - (lo if not is_missing(lo) else s) for (lo, hi), s in zip(bands, surv,
                                                                           strict=True)]
        targets = obs["target_days"].dropna().unique()
        parts.append(pd.DataFrame({
            "group": group, "stage": st.name, "days": days,
            "reached_share": [1 - s for s in surv], "lower": lower, "upper": upper,
            "at_risk": np.asarray(at_risk, dtype="int64"),
            "events": np.asarray(events, dtype="int64"),
            "target_days": float(targets[0]) if len(targets) == 1 else math.nan}))
    cols = ["group", "stage", "days", "reached_share", "lower", "upper", "at_risk", "events",
            "target_days"]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: [] for c in cols})
    return name_groups(out, by)


# ======================================================================================
# Stalled onboardings
# ======================================================================================
def stalled_accounts(ws, criteria=None, idle_days: int = 14, *, stage: str | None = None,
                     as_of=None, include_moving: bool = False) -> pd.DataFrame:
    """Onboardings that stopped moving or ran past their target, riskiest first.

    Definition (metrics.md): **stalled** = the stage is not reached, the account has not
    churned (status ``in_progress`` of :func:`time_to_value`), and either no milestone
    (of any name) for ``idle_days`` days (counting from the clock start when there is
    none, or when the last one came before the clock started) or past the segment's
    target (days in onboarding > target days).

    Risk order: accounts with both reasons first, then by days over target (as a share
    of the target), then by days without progress, then by open tickets.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    criteria : Criteria, str, Path or mapping, optional
        Default :func:`default_criteria_path`.
    idle_days : int
        Days without a milestone that make an onboarding stalled.
    stage : str, optional
        The stage not yet reached; default the last stage ("value").
    as_of : date or str, optional
        Default: the workspace's as-of date.
    include_moving : bool
        Also return the onboardings that are not stalled (``stalled`` False), after the
        stalled ones.

    Returns
    -------
    pandas.DataFrame
        ``risk_rank``, ``account_id``, ``account_name``, ``segment``, ``csm_owner`` (when
        present), ``stage_label``, ``clock_start``, ``days_in_onboarding``,
        ``target_days``, ``days_over_target`` (NaN within target), ``stages_reached``,
        ``last_milestone``, ``last_milestone_at``, ``days_since_progress``,
        ``next_step`` (the first unmet condition of the first stage not reached, in the
        criteria's order), ``next_stage``, ``open_tickets`` (open at the end of the as-of
        date; NA without ticket data), ``past_target``, ``idle``, ``stalled``,
        ``reasons``.
    """
    idle_days = check_int("idle_days", idle_days, minimum=1)
    data = _collect(ws, criteria, as_of)
    crit = data.criteria
    st = crit.stage(stage)
    frame = _stage_frame(data, st)
    frame = frame[frame["status"] == "in_progress"].set_index("account_id", drop=False)
    frame.index.name = None
    as_of_ts = pd.Timestamp(data.as_of)
    last = _last_milestones(ws, data.as_of).set_index("account_id")
    frame["last_milestone"] = last["last_milestone"].reindex(frame.index)
    frame["last_milestone_at"] = pd.to_datetime(last["last_at"]).reindex(frame.index)
    progress = local_dates(frame["last_milestone_at"], ws.timezone).astype("datetime64[us]")
    since = progress.where(progress.notna() & (progress > frame["clock_start"]),
                           frame["clock_start"])
    frame["days_since_progress"] = (as_of_ts - since).dt.days.astype("float")
    frame["days_in_onboarding"] = frame["days"]
    frame["days_over_target"] = (frame["days"] - frame["target_days"]).where(
        frame["days"] > frame["target_days"])
    frame["past_target"] = (frame["days"] > frame["target_days"]).fillna(False).astype(bool)
    frame["idle"] = (frame["days_since_progress"] >= idle_days).astype(bool)
    frame["stalled"] = frame["past_target"] | frame["idle"]
    if not include_moving:
        frame = frame[frame["stalled"]]

    order = crit.stage_names[: crit.stage_names.index(st.name) + 1]
    reached_sets, next_steps, next_stages = [], [], []
    for acc_id in frame.index:
        done = [crit.stage(n).label for n in crit.stage_names
                if pd.notna(data.reached.at[acc_id, n])]
        reached_sets.append(", ".join(done))
        step, which = "", ""
        for name in order:
            s = crit.stage(name)
            if pd.notna(data.reached.at[acc_id, name]):
                continue
            unmet = [c for c in s.conditions if pd.isna(data.conditions.at[acc_id, c.key])]
            if unmet:
                step, which = unmet[0].describe(), s.label
                if s.mode == "any" and len(unmet) > 1:
                    step = " or ".join(c.describe() for c in unmet)
                break
        next_steps.append(step)
        next_stages.append(which)
    frame["stages_reached"] = pd.Series(reached_sets, index=frame.index, dtype="str")
    frame["next_step"] = pd.Series(next_steps, index=frame.index, dtype="str")
    frame["next_stage"] = pd.Series(next_stages, index=frame.index, dtype="str")
    tickets = _open_tickets(ws, data.as_of)
    if tickets is None:
        frame["open_tickets"] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    else:
        frame["open_tickets"] = (tickets.set_index("account_id")["open_tickets"]
                                 .reindex(frame.index).fillna(0).astype("int64"))
    reasons = []
    for _, r in frame.iterrows():
        parts = []
        if r["past_target"]:
            parts.append(f"{int(r['days_over_target'])} days past the {int(r['target_days'])}"
                         "-day target")
        if r["idle"]:
            what = "no milestone" if pd.isna(r["last_milestone"]) else "no new milestone"
            parts.append(f"{what} for {int(r['days_since_progress'])} days")
        reasons.append("; ".join(parts))
    frame["reasons"] = pd.Series(reasons, index=frame.index, dtype="str")
    frame["_n"] = frame["past_target"].astype(int) + frame["idle"].astype(int)
    frame["_over"] = (frame["days_over_target"] / frame["target_days"].where(
        frame["target_days"] > 0)).fillna(-1.0)
    frame["_tickets"] = frame["open_tickets"].astype("Float64").fillna(0).astype(float)
    frame = frame.sort_values(["stalled", "_n", "_over", "days_since_progress", "_tickets",
                               "account_id"],
                              ascending=[False, False, False, False, False, True])
    frame["risk_rank"] = np.arange(1, len(frame) + 1)
    cols = ["risk_rank", "account_id", "account_name", "segment", "csm_owner", "stage_label",
            "clock_start", "days_in_onboarding", "target_days", "days_over_target",
            "stages_reached", "last_milestone", "last_milestone_at", "days_since_progress",
            "next_step", "next_stage", "open_tickets", "past_target", "idle", "stalled",
            "reasons"]
    return frame[[c for c in cols if c in frame.columns]].reset_index(drop=True)



def stalled_per_owner(stalled: pd.DataFrame) -> pd.DataFrame:
    """Stalled onboardings per CSM and reason, for :func:`cs_analysis.charts.stalled_by_owner`.

    Parameters
    ----------
    stalled : pandas.DataFrame
        :func:`stalled_accounts` output.

    Returns
    -------
    pandas.DataFrame
        ``csm_owner`` (``"(no CSM)"`` when null), ``reason`` ("past target and idle",
        "past target" or "no recent milestone"), ``accounts``.
    """
    if stalled.empty:
        return pd.DataFrame({"csm_owner": [], "reason": [], "accounts": []})
    owner = (stalled["csm_owner"].astype("str").where(stalled["csm_owner"].notna(),
                                                      "(no CSM)")
             if "csm_owner" in stalled else pd.Series("(all)", index=stalled.index))
    reason = np.select([stalled["past_target"] & stalled["idle"], stalled["past_target"]],
                       ["past target and idle", "past target"], "no recent milestone")
    frame = pd.DataFrame({"csm_owner": owner, "reason": reason})
    return frame.groupby(["csm_owner", "reason"], as_index=False).size().rename(
        columns={"size": "accounts"})



def poisson_ci(k: int, exposure: float, alpha: float) -> tuple[float, float]:
    """Exact (Garwood) interval of a rate k / exposure (``statsmodels.stats.rates``)."""
    from statsmodels.stats.rates import confint_poisson

    if exposure <= 0:
        return math.nan, math.nan
    lo, hi = confint_poisson(int(k), float(exposure), method="exact-c", alpha=alpha)
    return float(lo), float(hi)


def rate_ratio_ci(k1: int, e1: float, k2: int, e2: float, alpha: float
                  ) -> tuple[float, float]:
    """Score interval of the ratio of two Poisson rates (k1 / e1) / (k2 / e2).

    ``statsmodels.stats.rates.confint_poisson_2indep(compare="ratio", method="score")``;
    NaN without exposure on either side or without events in the second.
    """
    from statsmodels.stats.rates import confint_poisson_2indep

    if e1 <= 0 or e2 <= 0 or k2 <= 0:
        return math.nan, math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = confint_poisson_2indep(int(k1), float(e1), int(k2), float(e2),
                                        method="score", compare="ratio", alpha=alpha)
    return float(lo), float(hi)
