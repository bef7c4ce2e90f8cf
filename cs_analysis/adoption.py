"""Product adoption: which features accounts use, how deeply, and whose usage is fading.

Every function takes a (possibly scoped) workspace and works in the engine: usage events
never come into pandas. The load-time rollups of :func:`cs_analysis.workspace.write_workspace`
(account × user × local month with a bitmask of active days, account × feature × local
month with events per day, users per account and local week / month; see
:meth:`Workspace.usage_user_months`, :meth:`Workspace.usage_feature_months` and
:meth:`Workspace.usage_user_periods`) answer every question, for any day window, without
rescanning events; a workspace without them (a warehouse, or a file built for another
time zone) aggregates ``usage_events`` at day grain with the same calendar expressions, so
both paths give identical numbers (a note says which one ran).

Definitions (metrics.md, Time; all days, weeks and months are local calendar periods of
the workspace's time zone, via :mod:`cs_analysis.time`):

- **window** ``"90D"``: the 90 local days ending on the as-of date (inclusive);
- **active account** in a window: at least one usage event in it; **active user**: a
  distinct non-null ``user_id`` with an event in it (events without a user id count as
  activity of the account, never as a user);
- **feature**: ``usage_events.feature``, else ``event_name``;
- **adoption rate** of a feature = active accounts that used it in the window / active
  accounts (Wilson interval); **breadth** of an account = share of the key features it
  used; **depth** = events per active user;
- **stickiness** = mean daily active users over the days of a week (month) / the
  week's (month's) active users: DAU/WAU (DAU/MAU);
- **usage trend**: Theil-Sen slope of weekly active users over the last ``weeks``
  complete local weeks (weeks before the signup week left out), as a share of their mean
  (``trend``); classes ``dropped`` (no event in the last ``dropped_days`` days),
  ``declining`` (trend <= -decline), ``growing`` (trend >= growth), ``stable``; plus
  ``new`` (fewer than ``min_weeks`` weeks since signup) and ``no_usage`` (never used);
- **seat utilisation** = active users in the window / ``subscriptions.seats`` summed over
  the contract lines covering the as-of date; accounts without seats are reported with
  status ``no_seats``, never guessed.

Associations (:func:`features_and_retention`) are associations: accounts that adopt a
feature differ from those that do not in many ways the data do not show.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd

from cs_analysis.errors import (
    ArgumentError,
    CSAnalysisError,
    check_alpha,
    check_choice,
    check_int,
    check_number,
)
from cs_analysis.results import Result
from cs_analysis.time import (
    last_observable,
    period_end,
    period_expr,
    period_label,
    period_number,
    period_of,
    period_start,
    resolve_as_of,
)
from cs_analysis.workspace import feature_day_expr, user_day_expr, user_period_expr

__all__ = [
    "USAGE_CLASSES",
    "AdoptionError",
    "FeatureAdoption",
    "FeaturesAndRetention",
    "SeatUtilisation",
    "Stickiness",
    "TimeToFirstUse",
    "feature_adoption",
    "features_and_retention",
    "seat_utilisation",
    "stickiness",
    "time_to_first_use",
    "usage_drops",
    "usage_trend",
]

MISSING = "(missing)"
ALL = "All accounts"
#: Usage classes of :func:`usage_trend`, most urgent first.
USAGE_CLASSES = ("dropped", "declining", "stable", "growing", "new", "no_usage")
CLOCKS = ("signup_date", "kickoff_date", "onboarding")


class AdoptionError(CSAnalysisError, ValueError):
    """An adoption analysis cannot run on this workspace (missing table or column)."""


# ======================================================================================
# Shared helpers
# ======================================================================================
def _window_days(window) -> int:
    """``"90D"`` (or 90) as a number of days, at least 1."""
    if isinstance(window, int | np.integer) and not isinstance(window, bool):
        return check_int("window", int(window), minimum=1)
    m = re.fullmatch(r"\s*(\d+)\s*[dD]\s*", str(window)) if isinstance(window, str) else None
    if not m or int(m.group(1)) < 1:
        raise ArgumentError(f"window={window!r} must be a number of days such as '90D'")
    return int(m.group(1))


def _events(ws):
    """The scoped usage events (for the raw-event path), or an AdoptionError."""
    if not ws.has("usage_events"):
        raise AdoptionError(f"this workspace ({ws.source}) has no usage_events table, "
                            "which adoption analyses need")
    return ws.table("usage_events", columns=["account_id", "event_at"])


def _check_features(ws) -> None:
    _events(ws)
    if not (ws.has("usage_events", "feature") or ws.has("usage_events", "event_name")):
        raise AdoptionError("usage_events has neither a feature nor an event_name "
                            "column; feature adoption needs one of them")


def _user_days(ws):
    """Account × user × local day event counts of the raw events (no rollup has them)."""
    return user_day_expr(_events(ws), ws.timezone)


def _user_periods(ws, grain: str):
    """``(table, from_rollup)``: account × local week/month users, user-days, events."""
    _events(ws)
    t = ws.usage_user_periods(grain)
    if t is not None:
        return t, True
    return user_period_expr(_user_days(ws), grain), False


def _day_bits(d1: int, d2: int) -> int:
    """Bitmask of days ``d1 .. d2`` of a month (bit ``d - 1`` = day ``d``)."""
    return (1 << d2) - (1 << (d1 - 1))


def _month_parts(lo: dt.date, hi: dt.date) -> tuple[int, int, dict[int, tuple[int, int]]]:
    """Months of the local days ``lo .. hi``, and the days inside of those partly in.

    Returns the first and last month and, for each month only partly inside the
    window, its first and last day (of the month) inside.
    """
    m_lo, m_hi = period_of(lo, "month"), period_of(hi, "month")
    parts: dict[int, tuple[int, int]] = {}
    for m in {m_lo, m_hi}:
        start, end = period_start(m, "month"), period_end(m, "month")
        d1 = lo.day if m == m_lo else 1
        d2 = hi.day if m == m_hi else end.day
        if (d1, d2) != (start.day, end.day):
            parts[m] = (d1, d2)
    return m_lo, m_hi, parts


def _window_users(ws, lo: dt.date, hi: dt.date):
    """``(table, from_rollup)``: distinct user ids per account on the days ``lo .. hi``.

    Columns ``account_id, active_users`` (local days), for accounts with an event in the
    window; from the user × month day bitmasks when the rollup exists.
    """
    _events(ws)
    t = ws.usage_user_months()
    if t is None:
        ud = _user_days(ws)
        ud = ud.filter(ud.day >= lo, ud.day <= hi)
        return ud.group_by("account_id").agg(active_users=ud.user_id.nunique()), False
    m_lo, m_hi, parts = _month_parts(lo, hi)
    t = t.filter(t.month >= m_lo, t.month <= m_hi)
    if parts:
        inside = ibis.literal(True)
        for m, (d1, d2) in parts.items():
            inside = inside & ((t.month != m) | ((t.days & _day_bits(d1, d2)) != 0))
        t = t.filter(inside)
    return t.group_by("account_id").agg(active_users=t.user_id.nunique()), True


def _feature_window(ws, lo: dt.date, hi: dt.date):
    """``(table, from_rollup)``: events per account and feature on the days ``lo .. hi``.

    Columns ``account_id, feature, events`` (local days; feature null for events
    without one); only rows with events.
    """
    _check_features(ws)
    t = ws.usage_feature_months()
    if t is None:
        fd = feature_day_expr(_events(ws), ws.timezone)
        fd = fd.filter(fd.day >= lo, fd.day <= hi)
        return fd.group_by(["account_id", "feature"]).agg(events=fd.events.sum()), False
    m_lo, m_hi, parts = _month_parts(lo, hi)
    t = t.filter(t.month >= m_lo, t.month <= m_hi)
    n = t.events
    if parts:
        n = ibis.cases(*[(t.month == m, sum(t[f"d{k:02d}"] for k in range(d1, d2 + 1)))
                         for m, (d1, d2) in parts.items()], else_=t.events)
    t = t.select("account_id", "feature", n=n.cast("int64"))
    t = t.filter(t.n > 0)
    return t.group_by(["account_id", "feature"]).agg(events=t.n.sum()), True


def _first_use(ws, as_of: dt.date, feature: str | None = None):
    """``(table, from_rollup)``: first use of each feature per account, up to ``as_of``.

    Columns ``account_id, feature, first_use``: the first local day on or before
    ``as_of`` with an event of the feature (only ``feature`` if given).
    """
    _check_features(ws)
    t = ws.usage_feature_months()
    if t is None:
        t = feature_day_expr(_events(ws), ws.timezone)
        t = t.filter(t.day <= as_of).mutate(first_day=t.day)
        from_rollup = False
    else:
        t = t.filter(t.first_day <= as_of)
        from_rollup = True
    t = t.filter(t.feature.notnull() if feature is None else t.feature == str(feature))
    return t.group_by(["account_id", "feature"]).agg(first_use=t.first_day.min()), from_rollup


def _source_note(from_rollup: bool) -> tuple[str, ...]:
    return () if from_rollup else (
        "Computed from raw usage events: this workspace has no usage rollup for its time "
        "zone (same numbers, slower).",)


def _by_list(by) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _accounts(ws, as_of: dt.date, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Scoped accounts signed up on or before ``as_of``: id, signup_date and ``extra``.

    ``cohort`` in ``extra`` is the signup quarter's label (e.g. ``2024-Q1``).
    """
    want = [c for c in dict.fromkeys(extra) if c != "cohort"]
    for c in want:
        if not ws.has("accounts", c):
            raise AdoptionError(f"accounts has no {c} column (asked for by={c!r})")
    acc = ws.table("accounts", columns=["account_id", "signup_date", *want])
    acc = acc.filter(acc.signup_date <= as_of).select("account_id", "signup_date", *want)
    df = acc.to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    df["signup_date"] = pd.to_datetime(df["signup_date"]).dt.normalize()
    if "cohort" in extra:
        df["cohort"] = [period_label(period_of(d.date(), "quarter"), "quarter")
                        for d in df["signup_date"]]
    return df.sort_values("account_id").reset_index(drop=True)


def _group_values(df: pd.DataFrame, by: str | None) -> pd.Series:
    if by is None:
        return pd.Series(ALL, index=df.index, dtype="str")
    return df[by].astype("str").where(df[by].notna(), MISSING)


def _live_accounts(ws, as_of: dt.date) -> pd.Index | None:
    """Accounts with a subscription covering ``as_of``; None without subscriptions."""
    if not ws.has("subscriptions"):
        return None
    s = _covering(ws, as_of, [])
    return pd.Index(s.select("account_id").distinct().to_pandas()["account_id"].astype("str"))


def _covering(ws, as_of: dt.date, cols: Sequence[str]):
    """Scoped subscription lines covering ``as_of`` (metrics.md, subscription coverage)."""
    has_end = ws.has("subscriptions", "end_date")
    s = ws.table("subscriptions", columns=["account_id", "start_date", *cols])
    pred = [s.start_date <= as_of]
    if has_end:
        pred.append(s.end_date.isnull() | (s.end_date > as_of))
    return s.filter(*pred)


def theil_sen_rows(y) -> np.ndarray:
    """Theil-Sen slope of every row of ``y`` at once; NaN marks a period not observed.

    Row ``r`` is a series observed at x = 0, 1, ..., n-1 (the column numbers); its slope
    is the median, over every pair of observed columns i < j, of
    ``(y[r, j] - y[r, i]) / (j - i)`` -- the estimator of ``scipy.stats.theilslopes``
    (same pairwise slopes, same median: the mean of the two middle ones for an even
    count), vectorised: a per-account ``theilslopes`` call takes ~0.3 ms, i.e. tens of
    seconds at 100k accounts, which cannot meet the adoption benchmark's 0.5 s. The
    tests keep ``scipy.stats.theilslopes`` as the independent reference. Rows with fewer
    than two observed columns get NaN.
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 2:
        raise ArgumentError("theil_sen_rows expects a 2-d array (series x periods)")
    m, n = y.shape
    out = np.full(m, np.nan)
    if n < 2 or m == 0:
        return out
    i, j = np.triu_indices(n, k=1)
    slopes = (y[:, j] - y[:, i]) / (j - i).astype(float)
    slopes.sort(axis=1)  # NaN (a pair with an unobserved column) sorts last
    k = np.count_nonzero(~np.isnan(slopes), axis=1)
    rows = np.nonzero(k > 0)[0]
    kk = k[rows]
    out[rows] = (slopes[rows, (kk - 1) // 2] + slopes[rows, kk // 2]) / 2
    return out


def _wilson(k, n, alpha: float):
    from statsmodels.stats.proportion import proportion_confint

    k = np.asarray(k, float)
    n = np.asarray(n, float)
    lo = np.full(k.shape, np.nan)
    hi = np.full(k.shape, np.nan)
    ok = n > 0
    if ok.any():
        lo[ok], hi[ok] = proportion_confint(k[ok], n[ok], alpha=alpha, method="wilson")
    return lo, hi


# ======================================================================================
# Feature adoption
# ======================================================================================
@dataclass(frozen=True)
class FeatureAdoption(Result):
    """Adoption of each feature in a window, with breadth and depth per account.

    Attributes
    ----------
    features : pandas.DataFrame
        One row per feature (and ``by`` group): ``feature``, [by], ``active_accounts``,
        ``adopting_accounts``, ``adoption_rate``, ``lower``, ``upper`` (Wilson),
        ``events``, ``active_users`` (of the adopting accounts), ``events_per_active_user``.
    accounts : pandas.DataFrame
        One row per active account: ``account_id``, [by], ``active_users``, ``events``,
        ``features_used`` (key features used), ``breadth``, ``events_per_active_user``.
    by, window_days, as_of, key_features
        The parameters.
    """

    features: pd.DataFrame
    accounts: pd.DataFrame
    by: str | None
    window_days: int
    as_of: dt.date
    key_features: tuple[str, ...]
    title = "Feature adoption"

    def summary(self) -> pd.DataFrame:
        """The per-feature table."""
        return self.features


def feature_adoption(ws, by: str | None = None, window="90D", *, as_of=None,
                     features: Sequence[str] | None = None,
                     key_features: Sequence[str] | None = None,
                     alpha: float = 0.05) -> FeatureAdoption:
    """Share of active accounts using each feature in a window, per group.

    Definitions (module docstring): the window is the ``window`` local days ending on the
    as-of date; an **active account** has at least one event in it; the **adoption rate**
    of a feature is the share of active accounts with at least one event of the feature
    in the window, with a Wilson interval. **Breadth** of an account: the share of the
    key features it used in the window; **depth**: its events per active user.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    by : str, optional
        An ``accounts`` column (``segment``, ``plan``, ...) or ``"cohort"`` (signup
        quarter); the output has a column named after it (nulls as "(missing)").
    window : str or int
        Days, e.g. ``"90D"``.
    as_of : date or str, optional
        Keyword; default the workspace's as-of date.
    features : list of str, optional
        Features to report (default every feature used in the window in scope).
    key_features : list of str, optional
        Features breadth counts (default: ``features``, else every feature seen).
    alpha : float
        0.05 gives 95% intervals.

    Returns
    -------
    FeatureAdoption
    """
    as_of = resolve_as_of(ws, as_of)
    days = _window_days(window)
    alpha = check_alpha(alpha)
    lo = as_of - dt.timedelta(days=days - 1)
    fw, from_rollup = _feature_window(ws, lo, as_of)
    wu, _ = _window_users(ws, lo, as_of)
    want = [c for c in _by_list(by) if c != "cohort"]
    for c in want:
        if not ws.has("accounts", c):
            raise AdoptionError(f"accounts has no {c} column (asked for by={c!r})")
    acc = ws.table("accounts", columns=["account_id", "signup_date", *want])
    acc = acc.filter(acc.signup_date <= as_of)
    # per active account (an event in the window): group, events, active users
    tot = fw.group_by("account_id").agg(events=fw.events.sum())
    gexpr = (ibis.literal(ALL) if by is None else
             period_expr(acc.signup_date, "quarter") if by == "cohort" else
             acc[by].cast("string").fill_null(MISSING))
    act = acc.select("account_id", _g=gexpr).join(tot, "account_id")
    act = act.left_join(wu, "account_id").select(
        "account_id", "_g", "events", active_users=ibis._.active_users.fill_null(0))
    active = act.to_pandas().sort_values("account_id").reset_index(drop=True)
    active["account_id"] = active["account_id"].astype("str")
    if by == "cohort":
        labels = {q: period_label(int(q), "quarter") for q in active["_g"].unique()}
        active["_g"] = active["_g"].map(labels)
    active["_g"] = active["_g"].astype("str")
    # features used per active account (no null feature: a fast transfer); accounts
    # signed up after the as-of date are dropped here, by position
    per_af = fw.filter(fw.feature.notnull()).to_pandas()
    pos = pd.Index(active["account_id"]).get_indexer(per_af["account_id"].astype("str"))
    per_af = per_af[pos >= 0].assign(_row=pos[pos >= 0])
    per_af["feature"] = per_af["feature"].astype("str")
    if features is None:  # every feature used in the window by an account in scope
        feats = sorted(per_af["feature"].unique())
    else:
        feats = [str(f) for f in features]
    keys = tuple(str(f) for f in key_features) if key_features is not None else tuple(feats)
    key_rows = per_af.loc[per_af["feature"].isin(keys), "_row"].to_numpy()
    active["features_used"] = np.bincount(key_rows, minlength=len(active))[:len(active)]
    # per feature and group: adopting accounts, their events and active users
    j = per_af[per_af["feature"].isin(feats)]
    cells = pd.DataFrame({
        "_g": active["_g"].to_numpy()[j["_row"].to_numpy()], "feature": j["feature"],
        "adopting_accounts": 1, "events": j["events"].to_numpy(),
        "active_users": active["active_users"].to_numpy()[j["_row"].to_numpy()]})
    cells = cells.groupby(["_g", "feature"], as_index=False).sum()

    # per account: breadth and depth
    active["features_used"] = active["features_used"].astype("int64")
    active["breadth"] = active["features_used"] / len(keys) if keys else math.nan
    users = active["active_users"].astype(float)
    active["events"] = active["events"].astype("int64")
    active["active_users"] = active["active_users"].astype("int64")
    active["events_per_active_user"] = (active["events"] / users).where(users > 0)
    gcols = [by] if by is not None else []
    accounts = active[["account_id", *(["_g"] if by else []), "active_users", "events",
                       "features_used", "breadth", "events_per_active_user"]]
    accounts = accounts.rename(columns={"_g": by} if by else {}).reset_index(drop=True)

    # per feature and group (every group with an active account x every feature)
    groups = active.groupby("_g")["account_id"].count()
    grid = pd.MultiIndex.from_product([list(groups.index), feats], names=["_g", "feature"])
    out = cells.set_index(["_g", "feature"]).reindex(grid).fillna(0).reset_index()
    out["active_accounts"] = out["_g"].map(groups).astype("int64")
    for c in ("adopting_accounts", "events", "active_users"):
        out[c] = out[c].astype("int64")
    out["adoption_rate"] = (out["adopting_accounts"] / out["active_accounts"]).astype(float)
    out["lower"], out["upper"] = _wilson(out["adopting_accounts"], out["active_accounts"], alpha)
    au = out["active_users"].astype(float)
    out["events_per_active_user"] = (out["events"] / au).where(au > 0)
    cols = ["feature", *(["_g"] if by else []), "active_accounts", "adopting_accounts",
            "adoption_rate", "lower", "upper", "events", "active_users",
            "events_per_active_user"]
    out = out[cols].rename(columns={"_g": by} if by else {})
    out = out.sort_values([*gcols, "feature"]).reset_index(drop=True)
    notes = list(_source_note(from_rollup))
    if not len(active):
        notes.append(f"No account was active in the {days} days to {as_of}.")
    return FeatureAdoption(out, accounts, by, days, as_of, keys, notes=tuple(notes))


# ======================================================================================
# Stickiness
# ======================================================================================
@dataclass(frozen=True)
class Stickiness(Result):
    """Active users per day and per week (month), and their ratio, over recent periods.

    Attributes
    ----------
    accounts : pandas.DataFrame
        One row per account and period with activity: ``account_id``, ``period``,
        ``period_label``, ``active_users`` (WAU or MAU), ``dau_mean`` (mean over the
        period's days of daily active users), ``stickiness`` (= dau_mean / active_users).
    trend : pandas.DataFrame
        One row per period: ``period``, ``period_label``, ``active_accounts``,
        ``active_users``, ``dau_mean`` (sums over accounts), ``stickiness`` (their ratio).
    account_trend : pandas.DataFrame
        One row per account: ``account_id``, ``periods`` (with activity),
        ``stickiness_mean``, ``stickiness_slope`` (Theil-Sen, per period).
    grain, as_of
    """

    accounts: pd.DataFrame
    trend: pd.DataFrame
    account_trend: pd.DataFrame
    grain: str
    as_of: dt.date
    title = "Stickiness"

    @property
    def ratio_name(self) -> str:
        """``DAU/WAU`` or ``DAU/MAU``."""
        return "DAU/WAU" if self.grain == "week" else "DAU/MAU"

    def summary(self) -> pd.DataFrame:
        """The trend over all accounts in scope."""
        return self.trend


def stickiness(ws, grain: str = "week", *, as_of=None, periods: int = 12) -> Stickiness:
    """Daily vs weekly (monthly) active users per account over the last complete periods.

    **Stickiness** of an account in a week (month) = the mean, over the period's days, of
    its daily active users (distinct user ids with an event that local day) / its active
    users over the period: DAU/WAU (DAU/MAU). 1/7 means each user comes one day a week;
    1 means every user every day. Periods are local calendar weeks (Monday-Sunday) or
    months of the workspace's zone; the last one is the last to end on or before the
    as-of date.

    Parameters
    ----------
    ws : Workspace
    grain : {"week", "month"}
    as_of : date or str, optional
    periods : int
        Number of complete periods.

    Returns
    -------
    Stickiness
    """
    grain = check_choice("grain", grain, ("week", "month"))
    periods = check_int("periods", periods, minimum=1)
    as_of = resolve_as_of(ws, as_of)
    last = last_observable(as_of, grain)
    first = last - periods + 1
    up, from_rollup = _user_periods(ws, grain)
    up = up.filter(up.period >= first, up.period <= last)
    df = up.select("account_id", "period", active_users=up.users,
                   dau_sum=up.user_days).to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    keep = set(_accounts(ws, as_of)["account_id"])
    df = df[df["account_id"].isin(keep) & (df["active_users"] > 0)].copy()
    df["period"] = df["period"].astype("int64")
    ndays = {p: (period_end(p, grain) - period_start(p, grain)).days + 1
             for p in range(first, last + 1)}
    df["dau_mean"] = df["dau_sum"].astype(float) / df["period"].map(ndays)
    df["active_users"] = df["active_users"].astype("int64")
    df["stickiness"] = df["dau_mean"] / df["active_users"]
    labels = {p: period_label(p, grain) for p in range(first, last + 1)}
    df["period_label"] = df["period"].map(labels)
    accounts = df[["account_id", "period", "period_label", "active_users", "dau_mean",
                   "stickiness"]].sort_values(["account_id", "period"]).reset_index(drop=True)
    rows = []
    for p in range(first, last + 1):
        s = accounts[accounts["period"] == p]
        au, dm = int(s["active_users"].sum()), float(s["dau_mean"].sum())
        rows.append({"period": p, "period_label": labels[p],
                     "active_accounts": int(len(s)), "active_users": au, "dau_mean": dm,
                     "stickiness": dm / au if au else math.nan})
    trend = pd.DataFrame(rows)
    # per account: periods with activity, mean and Theil-Sen slope (x = period number)
    ids = pd.Index(accounts["account_id"].unique())
    y = np.full((len(ids), periods), np.nan)
    y[ids.get_indexer(accounts["account_id"]), (accounts["period"] - first).to_numpy()] = \
        accounts["stickiness"].to_numpy(float)
    n_obs = (~np.isnan(y)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        slope = np.where(n_obs >= 3, theil_sen_rows(y), np.nan)
    account_trend = pd.DataFrame({
        "account_id": ids.astype("str"), "periods": n_obs.astype("int64"),
        "stickiness_mean": accounts.groupby("account_id", sort=False)["stickiness"]
        .mean().reindex(ids).to_numpy(float),
        "stickiness_slope": slope})
    account_trend = account_trend.sort_values("account_id").reset_index(drop=True)
    return Stickiness(accounts, trend, account_trend, grain, as_of,
                      notes=_source_note(from_rollup))


# ======================================================================================
# Usage trend and drops
# ======================================================================================
def usage_trend(ws, weeks: int = 12, *, as_of=None, growth: float = 0.2,
                decline: float = 0.2, dropped_days: int = 30,
                min_weeks: int = 4) -> pd.DataFrame:
    """Per live account: whether its usage is growing, stable, declining or stopped.

    Weekly active users (distinct user ids per local calendar week) over the last
    ``weeks`` complete weeks up to the as-of date, from the account's signup week on.
    ``slope``: the Theil-Sen slope (scipy ``theilslopes``; robust to a single odd week)
    in users per week; ``trend`` = slope × observed weeks / mean weekly active users,
    i.e. the fitted change across the window as a share of the usual level;
    ``change`` = mean weekly active users / the mean over the ``weeks`` weeks before - 1.

    ``usage_class``: ``no_usage`` (no event ever, up to as-of), ``dropped`` (no event in
    the last ``dropped_days`` days), ``new`` (fewer than ``min_weeks`` weeks observed),
    ``declining`` (trend <= -decline), ``growing`` (trend >= growth), else ``stable``
    (also when no event carries a user id, so weekly active users are all 0).

    Accounts: those in scope signed up on or before the as-of date and, when the
    workspace has subscriptions, covered by one on the as-of date (churned accounts are
    retention's business, not usage's).

    Parameters
    ----------
    ws : Workspace
    weeks : int
        Length of the window, in weeks.
    as_of : date or str, optional
    growth, decline : float
        Thresholds on ``trend`` (0.2 = a 20% change across the window).
    dropped_days : int
        No event in this many days means ``dropped``.
    min_weeks : int
        Fewer observed weeks mean ``new``.

    Returns
    -------
    pandas.DataFrame
        ``account_id``, ``signup_date``, ``weeks``, ``wau_mean``, ``wau_previous``,
        ``change``, ``slope``, ``trend``, ``last_use``, ``days_since_use``,
        ``usage_class``; sorted by account.
    """
    weeks = check_int("weeks", weeks, minimum=2)
    growth = check_number("growth", growth, minimum=0)
    decline = check_number("decline", decline, minimum=0)
    dropped_days = check_int("dropped_days", dropped_days, minimum=1)
    min_weeks = check_int("min_weeks", min_weeks, minimum=2)
    as_of = resolve_as_of(ws, as_of)
    last = last_observable(as_of, "week")
    first = last - 2 * weeks + 1
    # weekly active users of the 2 x weeks weeks, one row per account (pivoted in the engine)
    up, _ = _user_periods(ws, "week")
    cut = up.filter(up.period >= first, up.period <= last)
    wide = cut.group_by("account_id").agg(**{
        f"w{k}": (cut.period == first + k).ifelse(cut.users, 0).sum()
        for k in range(2 * weeks)}).to_pandas()
    lastuse = _last_use(ws, as_of)
    acc = _accounts(ws, as_of)
    live = _live_accounts(ws, as_of)
    if live is not None:
        acc = acc[acc["account_id"].isin(live)].reset_index(drop=True)
    n = len(acc)
    grid = np.zeros((n, 2 * weeks))
    if len(wide):
        pos = pd.Index(acc["account_id"]).get_indexer(wide["account_id"].astype("str"))
        ok = pos >= 0
        grid[pos[ok]] = wide.loc[ok, [f"w{k}" for k in range(2 * weeks)]].to_numpy(float)
    # a week counts from the account's signup week on (earlier weeks are not observed)
    signup_week = period_number(acc["signup_date"], "week").to_numpy()
    observed = (first + np.arange(2 * weeks))[None, :] >= signup_week[:, None]
    y = np.where(observed, grid, np.nan)
    cur, prev = y[:, weeks:], y[:, :weeks]
    n_cur = observed[:, weeks:].sum(axis=1)
    n_prev = observed[:, :weeks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_cur > 0, np.nansum(cur, axis=1) / np.maximum(n_cur, 1), np.nan)
        prev_mean = np.where(n_prev > 0, np.nansum(prev, axis=1) / np.maximum(n_prev, 1),
                             np.nan)
        slope = theil_sen_rows(cur)  # NaN with fewer than 2 observed weeks
        trend = np.where(mean > 0, slope * n_cur / mean, np.nan)
        change = np.where(prev_mean > 0, mean / prev_mean - 1, np.nan)
    pos = pd.Index(lastuse["account_id"].astype("str")).get_indexer(acc["account_id"])
    last = pd.to_datetime(lastuse["last_use"]).to_numpy()
    lu = np.full(len(acc), np.datetime64("NaT"), dtype=last.dtype)
    lu[pos >= 0] = last[pos[pos >= 0]]  # accounts without any event keep NaT
    lu = pd.to_datetime(pd.Series(lu, index=acc.index))
    since = (pd.Timestamp(as_of) - lu).dt.days.astype(float).to_numpy()
    cls = np.select(
        [np.isnan(since), since >= dropped_days, n_cur < min_weeks,
         ~np.isnan(trend) & (trend <= -decline), ~np.isnan(trend) & (trend >= growth)],
        ["no_usage", "dropped", "new", "declining", "growing"], "stable")
    out = pd.DataFrame({"account_id": acc["account_id"], "signup_date": acc["signup_date"],
                        "weeks": n_cur.astype("int64"), "wau_mean": mean,
                        "wau_previous": prev_mean, "change": change, "slope": slope,
                        "trend": trend, "last_use": lu, "days_since_use": since,
                        "usage_class": cls})
    return out.sort_values("account_id").reset_index(drop=True)


def _last_use(ws, as_of: dt.date) -> pd.DataFrame:
    """``account_id, last_use``: the last local day with an event, on or before ``as_of``.

    Whole weeks come from the weekly rollup's ``last_day``; the as-of date's own week
    from the days of that week up to the as-of date.
    """
    up, from_rollup = _user_periods(ws, "week")
    now = period_of(as_of, "week")
    done = up.filter(up.period < now).select("account_id", "last_day")
    start = period_start(now, "week")
    fm = ws.usage_feature_months() if from_rollup else None
    if fm is None:
        ud = _user_days(ws)
        part = ud.filter(ud.day >= start, ud.day <= as_of).select(
            "account_id", last_day=ud.day)
    else:  # the days of the as-of week up to as-of, from the per-day event counts
        days = [start + dt.timedelta(days=i) for i in range((as_of - start).days + 1)]
        t = fm.filter(fm.month.isin(sorted({period_of(d, "month") for d in days})))
        last = ibis.null("date")
        for d in days:  # later days win
            hit = (t.month == period_of(d, "month")) & (t[f"d{d.day:02d}"] > 0)
            last = hit.ifelse(ibis.literal(d, "date"), last)
        part = t.select("account_id", last_day=last)
        part = part.filter(part.last_day.notnull())
    both = done.union(part)
    return both.group_by("account_id").agg(last_use=both.last_day.max()).to_pandas()


def usage_drops(ws, weeks: int = 12, *, as_of=None, **thresholds) -> pd.DataFrame:
    """Declining and dropped accounts, with their MRR and next renewal, for CSMs.

    The ``declining`` and ``dropped`` accounts of :func:`usage_trend` (same parameters,
    ``thresholds`` passed on), with ``mrr`` (metrics.md: MRR of the account on the as-of
    date, :func:`cs_analysis.retention.mrr_at`) and ``renewal_date`` (the earliest
    ``subscriptions.renewal_date`` on or after the as-of date of the lines covering it;
    missing when the column is absent or empty). Sorted by renewal date (soonest first,
    unknown last), then MRR (highest first).

    Returns
    -------
    pandas.DataFrame
        ``account_id``, [``account_name``, ``segment``, ``plan``, ``csm_owner``],
        ``usage_class``, ``wau_mean``, ``wau_previous``, ``change``, ``trend``,
        ``last_use``, ``days_since_use``, ``mrr``, ``renewal_date``,
        ``days_to_renewal``.
    """
    from cs_analysis.retention import mrr_at

    as_of = resolve_as_of(ws, as_of)
    tr = usage_trend(ws, weeks, as_of=as_of, **thresholds)
    drops = tr[tr["usage_class"].isin(["declining", "dropped"])].copy()
    info = [c for c in ("account_name", "segment", "plan", "csm_owner")
            if ws.has("accounts", c)]
    acc = _accounts(ws, as_of, info)[["account_id", *info]]
    drops = drops.merge(acc, on="account_id", how="left")
    mrr = mrr_at(ws, as_of) if ws.has("subscriptions") else pd.DataFrame(
        {"account_id": [], "mrr": []})
    drops["mrr"] = drops["account_id"].map(dict(zip(mrr["account_id"], mrr["mrr"],
                                                    strict=True))).fillna(0.0).astype(float)
    renew = pd.Series(pd.NaT, index=drops.index, dtype="datetime64[ns]")
    if ws.has("subscriptions", "renewal_date"):
        s = _covering(ws, as_of, ["renewal_date"])
        s = s.filter(s.renewal_date >= as_of)
        r = s.group_by("account_id").agg(renewal_date=s.renewal_date.min()).to_pandas()
        look = dict(zip(r["account_id"].astype("str"), pd.to_datetime(r["renewal_date"]),
                        strict=True))
        renew = pd.to_datetime(drops["account_id"].map(look))
    drops["renewal_date"] = renew
    drops["days_to_renewal"] = (drops["renewal_date"] - pd.Timestamp(as_of)).dt.days
    cols = ["account_id", *info, "usage_class", "wau_mean", "wau_previous", "change",
            "trend", "last_use", "days_since_use", "mrr", "renewal_date", "days_to_renewal"]
    drops = drops.sort_values(["renewal_date", "mrr", "account_id"],
                              ascending=[True, False, True], na_position="last")
    return drops[cols].reset_index(drop=True)


# ======================================================================================
# Seats
# ======================================================================================
@dataclass(frozen=True)
class SeatUtilisation(Result):
    """Active users against seats bought, per live account.

    Attributes
    ----------
    accounts : pandas.DataFrame
        ``account_id``, ``seats`` (NaN when unknown), ``active_users``, ``utilisation``
        (active users / seats; NaN when seats are unknown or 0), ``status`` (``ok`` or
        ``no_seats``).
    window_days, as_of
    """

    accounts: pd.DataFrame
    window_days: int
    as_of: dt.date
    title = "Seat utilisation"

    #: Bands of the summary (upper bounds, inclusive of the lower).
    BANDS = ((0.25, "under 25%"), (0.5, "25-50%"), (0.75, "50-75%"), (1.0, "75-100%"),
             (math.inf, "over 100%"))

    def summary(self) -> pd.DataFrame:
        """Accounts per utilisation band (and without seats)."""
        u = self.accounts["utilisation"]
        rows, lo = [], 0.0
        for hi, label in self.BANDS:
            rows.append({"band": label, "accounts": int(((u >= lo) & (u < hi)).sum())})
            lo = hi
        rows.append({"band": "no seats recorded",
                     "accounts": int((self.accounts["status"] == "no_seats").sum())})
        return pd.DataFrame(rows)


def seat_utilisation(ws, *, as_of=None, window="30D") -> SeatUtilisation:
    """Active users ÷ seats per account live on the as-of date ("bought 50, uses 8").

    ``seats`` = sum of ``subscriptions.seats`` over the account's lines covering the
    as-of date (null seats ignored); ``active_users`` = distinct user ids with an event in
    the ``window`` local days ending on the as-of date. Accounts whose covering lines have
    no seats (or 0) get status ``no_seats`` and no utilisation: they are reported, never
    guessed.

    Parameters
    ----------
    ws : Workspace
    as_of : date or str, optional
    window : str or int
        Days counted for active users (default ``"30D"``).

    Returns
    -------
    SeatUtilisation
    """
    as_of = resolve_as_of(ws, as_of)
    days = _window_days(window)
    if not ws.has("subscriptions"):
        raise AdoptionError("seat utilisation needs a subscriptions table")
    has_seats = ws.has("subscriptions", "seats")
    s = _covering(ws, as_of, ["seats"] if has_seats else [])
    if has_seats:
        agg = s.group_by("account_id").agg(seats=s.seats.sum(), lines=s.seats.count())
    else:
        agg = s.select("account_id").distinct()
    seats = agg.to_pandas()
    if not has_seats:
        seats["lines"] = 0
    seats["account_id"] = seats["account_id"].astype("str")
    lo = as_of - dt.timedelta(days=days - 1)
    wu, from_rollup = _window_users(ws, lo, as_of)
    au = wu.to_pandas()
    au["account_id"] = au["account_id"].astype("str")
    acc = _accounts(ws, as_of)
    out = acc[["account_id"]].merge(seats, on="account_id", how="inner")
    if "seats" not in out:
        out["seats"] = math.nan
    out["seats"] = out["seats"].astype(float).where(out["lines"] > 0)
    out["active_users"] = out["account_id"].map(
        dict(zip(au["account_id"], au["active_users"], strict=True))).fillna(0).astype("int64")
    ok = out["seats"] > 0
    out["utilisation"] = (out["active_users"] / out["seats"]).where(ok)
    out["status"] = np.where(ok, "ok", "no_seats")
    out = out[["account_id", "seats", "active_users", "utilisation", "status"]]
    notes = list(_source_note(from_rollup))
    missing = int((~ok).sum())
    if not has_seats:
        notes.append("subscriptions has no seats column: every account is reported "
                     "without seats.")
    elif missing:
        notes.append(f"{missing} live account(s) have no seats recorded; they are listed "
                     "with status no_seats, not guessed.")
    return SeatUtilisation(out.reset_index(drop=True), days, as_of, notes=tuple(notes))


# ======================================================================================
# Time to first use
# ======================================================================================
@dataclass(frozen=True)
class TimeToFirstUse(Result):
    """Kaplan-Meier of days from clock start to first use of a feature.

    Attributes
    ----------
    groups : pandas.DataFrame
        Per group: [by], ``accounts``, ``used``, ``churned_before``, ``median_days``,
        ``median_lower``, ``median_upper``, ``share_within``, ``share_lower``,
        ``share_upper`` (1 - S(within_days) with a log-log interval).
    accounts : pandas.DataFrame
        Per account: ``account_id``, [by], ``clock_start``, ``first_use``, ``status``
        (``used``, ``churned_before``, ``in_progress``, ``no_clock_start``,
        ``not_started``), ``days``, ``used``.
    feature, clock, within_days, as_of
    """

    groups: pd.DataFrame
    accounts: pd.DataFrame
    feature: str
    clock: str
    within_days: int
    as_of: dt.date
    title = "Time to first use"

    def summary(self) -> pd.DataFrame:
        """The per-group table."""
        return self.groups


def _clock_start(ws, acc: pd.DataFrame, clock: str, criteria, as_of) -> pd.Series:
    if clock == "signup_date":
        return acc["signup_date"]
    if clock == "kickoff_date":
        if not ws.has("accounts", "kickoff_date"):
            raise AdoptionError("accounts has no kickoff_date column (clock='kickoff_date')")
        k = ws.table("accounts", columns=["account_id", "kickoff_date"]).select(
            "account_id", "kickoff_date").to_pandas()
        look = dict(zip(k["account_id"].astype("str"), pd.to_datetime(k["kickoff_date"]),
                        strict=True))
        return pd.to_datetime(acc["account_id"].map(look))
    from cs_analysis.onboarding import load_criteria, time_to_value

    crit = load_criteria(criteria)
    ttv = time_to_value(ws, crit, crit.stages[0].name, as_of=as_of)
    look = dict(zip(ttv["account_id"].astype("str"), pd.to_datetime(ttv["clock_start"]),
                    strict=True))
    return pd.to_datetime(acc["account_id"].map(look))


def time_to_first_use(ws, feature: str, *, by: str | None = "segment",
                      within_days: int = 30, clock: str = "signup_date", criteria=None,
                      as_of=None, alpha: float = 0.05) -> TimeToFirstUse:
    """Days from an account's clock start to its first use of a feature (Kaplan-Meier).

    Censored as onboarding's time-to-value (metrics.md, Onboarding): an account that has
    not used the feature by the as-of date is censored at the as-of date; one that churned
    first (retention's churn date) is censored at its churn date and counted as
    ``churned_before``. A first use before the clock start (e.g. a trial before the
    kickoff) counts as day 0. **Share within N days** = 1 - S(N) of the estimate, not
    used ÷ all.

    Parameters
    ----------
    ws : Workspace
    feature : str
        A value of ``usage_events.feature`` (or ``event_name``).
    by : str, optional
        ``accounts`` column or ``"cohort"``; default ``segment`` (None: all accounts).
    within_days : int
    clock : {"signup_date", "kickoff_date", "onboarding"}
        Clock start: the signup date (default), the kickoff date, or the onboarding
        criteria's clock (``criteria``; per segment, with its fallback). Accounts
        without the chosen date are reported with status ``no_clock_start``.
    criteria : onboarding criteria, optional
        For ``clock="onboarding"``; default the project's criteria file.
    as_of : date or str, optional
    alpha : float

    Returns
    -------
    TimeToFirstUse
    """
    from scipy.stats import norm

    from cs_analysis.survival import kaplan_meier, loglog_interval

    clock = check_choice("clock", clock, CLOCKS)
    within_days = check_int("within_days", within_days, minimum=0)
    alpha = check_alpha(alpha)
    if by is not None and by != "cohort" and not ws.has("accounts", by):
        by = None if by == "segment" else by
    as_of = resolve_as_of(ws, as_of)
    acc = _accounts(ws, as_of, _by_list(by))
    fu_t, from_rollup = _first_use(ws, as_of, str(feature))
    first = fu_t.to_pandas()
    look = dict(zip(first["account_id"].astype("str"), pd.to_datetime(first["first_use"]),
                    strict=True))
    acc["clock_start"] = pd.to_datetime(_clock_start(ws, acc, clock, criteria, as_of))
    acc["first_use"] = pd.to_datetime(acc["account_id"].map(look))
    churn = pd.Series(pd.NaT, index=acc.index, dtype="datetime64[ns]")
    if ws.has("subscriptions"):
        from cs_analysis.retention import account_lifetimes

        lt = account_lifetimes(ws, as_of=as_of)
        cl = dict(zip(lt["account_id"], pd.to_datetime(lt["churn_date"]), strict=True))
        churn = pd.to_datetime(acc["account_id"].map(cl))
    start, fu, asof = acc["clock_start"], acc["first_use"], pd.Timestamp(as_of)
    no_clock = start.isna()
    not_started = ~no_clock & (start > asof)
    run = ~no_clock & ~not_started
    used = run & fu.notna() & (churn.isna() | (fu < churn))
    churned = run & ~used & churn.notna()
    end = fu.where(used, churn.where(churned, asof))
    days = (end - start).dt.days.astype(float).clip(lower=0).where(run)
    status = np.select([no_clock, not_started, used, churned],
                       ["no_clock_start", "not_started", "used", "churned_before"],
                       "in_progress")
    gcols = [by] if by else []
    accounts = pd.DataFrame({"account_id": acc["account_id"]})
    for c in gcols:
        accounts[c] = _group_values(acc, c)
    accounts["clock_start"] = start
    accounts["first_use"] = fu.where(used)
    accounts["status"] = status
    accounts["days"] = days
    accounts["used"] = used.astype(bool)
    z = float(norm.ppf(1 - alpha / 2))
    rows = []
    keyed = accounts[run]
    groups = [(ALL, keyed)] if by is None else list(keyed.groupby(by, sort=True))
    for g, s in groups:
        km = kaplan_meier(s["days"], s["used"])
        med = km.quantile(0.5)
        mlo, mhi = km.quantile_ci(0.5, alpha)
        surv, se = km.at(within_days)
        slo, shi = loglog_interval(surv, se, z)
        row = {by: g} if by else {}
        row.update({"accounts": int(len(s)), "used": int(s["used"].sum()),
                    "churned_before": int((s["status"] == "churned_before").sum()),
                    "median_days": med, "median_lower": mlo, "median_upper": mhi,
                    "share_within": 1 - surv if not math.isnan(surv) else math.nan,
                    "share_lower": 1 - shi if not math.isnan(shi) else math.nan,
                    "share_upper": 1 - slo if not math.isnan(slo) else math.nan})
        rows.append(row)
    cols = [*gcols, "accounts", "used", "churned_before", "median_days", "median_lower",
            "median_upper", "share_within", "share_lower", "share_upper"]
    notes = list(_source_note(from_rollup))
    nc = int(no_clock.sum())
    if nc:
        notes.append(f"{nc} account(s) have no {clock.replace('_', ' ')} and are left out "
                     "(status no_clock_start).")
    return TimeToFirstUse(pd.DataFrame(rows, columns=cols), accounts.reset_index(drop=True),
                          str(feature), clock, within_days, as_of, notes=tuple(notes))


# ======================================================================================
# Features and retention (landmark association)
# ======================================================================================
@dataclass(frozen=True)
class FeaturesAndRetention(Result):
    """Landmark association of using each feature by day N with later churn.

    Attributes
    ----------
    features : pandas.DataFrame
        Per feature: ``feature``, ``accounts`` (still customers at day N), ``users``
        (used it by day N), ``non_users``, ``churned_users``, ``churned_non_users``,
        ``hazard_ratio`` (users vs non-users, adjusted), ``lower``, ``upper``,
        ``p_value``, ``p_adjusted`` (Holm across features), ``significant``.
    landmark_days, adjust, as_of
    """

    features: pd.DataFrame
    landmark_days: int
    adjust: tuple[str, ...]
    as_of: dt.date
    title = "Features and retention (association, not causation)"

    def summary(self) -> pd.DataFrame:
        """The per-feature table."""
        return self.features


def features_and_retention(ws, landmark_days: int = 60, *,
                           features: Sequence[str] | None = None,
                           adjust: Sequence[str] = ("segment", "employees"), as_of=None,
                           alpha: float = 0.05) -> FeaturesAndRetention:
    """Whether accounts using a feature by day N churn less afterwards (an association).

    Landmark design (no immortal time, metrics.md Onboarding): only accounts still
    customers ``landmark_days`` days after signup (lifetime > N, retention's
    :func:`~cs_analysis.retention.account_lifetimes`) count; each is classed by whether
    it used the feature on or before day N (its first use on or before signup + N days,
    local days); time runs from day N to churn, censored at the as-of date. Per feature,
    a Cox model (statsmodels ``PHReg``, Efron ties) of that time on the use indicator,
    adjusted for ``segment`` (categories, the largest as reference) and company size
    (log(1 + ``employees``), missing sizes set to the median), gives the hazard ratio of
    users vs non-users with its Wald interval; p-values are Holm-adjusted across features.

    A hazard ratio below 1 says users of the feature churned less *in these data*; the
    accounts that adopt a feature differ in ways not adjusted for (health, onboarding,
    budget), so this is association, never proof that the feature keeps customers.

    Parameters
    ----------
    ws : Workspace
    landmark_days : int
    features : list of str, optional
        Default: every feature used by day N by some account at risk.
    adjust : list of str
        Among ``segment`` and ``employees``; absent columns are skipped.
    as_of : date or str, optional
    alpha : float

    Returns
    -------
    FeaturesAndRetention
    """
    import warnings

    from scipy.stats import norm
    from statsmodels.duration.hazard_regression import PHReg
    from statsmodels.stats.multitest import multipletests

    from cs_analysis.retention import account_lifetimes

    landmark_days = check_int("landmark_days", landmark_days, minimum=0)
    alpha = check_alpha(alpha)
    for a in adjust:
        check_choice("adjust", a, ("segment", "employees"))
    as_of = resolve_as_of(ws, as_of)
    adj = tuple(a for a in adjust if ws.has("accounts", a))
    lt = account_lifetimes(ws, as_of=as_of, by=list(adj) or None)
    risk = lt[lt["lifetime_days"] > landmark_days].reset_index(drop=True)
    fu_t, from_rollup = _first_use(ws, as_of)
    first = fu_t.to_pandas()
    first["account_id"] = first["account_id"].astype("str")
    signup = dict(zip(risk["account_id"], risk["signup_date"], strict=True))
    first = first[first["account_id"].isin(signup)]
    first["by_n"] = (pd.to_datetime(first["first_use"])
                     - pd.to_datetime(first["account_id"].map(signup))).dt.days <= landmark_days
    early = first[first["by_n"]]
    feats = sorted(early["feature"].astype("str").unique()) if features is None else [
        str(f) for f in features]
    time = (risk["lifetime_days"] - landmark_days).astype(float).to_numpy()
    status = risk["churned"].astype(int).to_numpy()
    cov = pd.DataFrame(index=risk.index)
    notes = list(_source_note(from_rollup))
    if "segment" in adj and len(risk):
        seg = risk["segment"].astype("str").where(risk["segment"].notna(), MISSING)
        counts = seg.value_counts()
        ref = sorted(counts[counts == counts.max()].index)[0]
        for level in sorted(set(seg) - {ref}):
            cov[f"segment={level}"] = (seg == level).astype(float)
    if "employees" in adj:
        emp = pd.to_numeric(risk["employees"], errors="coerce").astype(float)
        if emp.isna().any():
            notes.append(f"{int(emp.isna().sum())} account(s) without employees were "
                         "given the median size.")
        cov["log_employees"] = np.log1p(emp.fillna(emp.median() if emp.notna().any() else 0))
    z = float(norm.ppf(1 - alpha / 2))
    rows = []
    for f in feats:
        users = set(early.loc[early["feature"] == f, "account_id"])
        x = risk["account_id"].isin(users).astype(float)
        row = {"feature": f, "accounts": int(len(risk)), "users": int(x.sum()),
               "non_users": int(len(risk) - x.sum()),
               "churned_users": int(status[x.to_numpy() == 1].sum()),
               "churned_non_users": int(status[x.to_numpy() == 0].sum()),
               "hazard_ratio": math.nan, "lower": math.nan, "upper": math.nan,
               "p_value": math.nan}
        if 0 < x.sum() < len(risk) and status.sum() > 0:
            design = pd.concat([x.rename("used"), cov], axis=1)
            design = design.loc[:, (design.nunique() > 1) | (design.columns == "used")]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    fit = PHReg(time, design.to_numpy(float), status=status,
                                ties="efron").fit()
                    b, se = float(fit.params[0]), float(fit.bse[0])
                    if math.isfinite(b) and math.isfinite(se) and abs(b) + z * se < 700:
                        row.update(hazard_ratio=math.exp(b), lower=math.exp(b - z * se),
                                   upper=math.exp(b + z * se),
                                   p_value=float(fit.pvalues[0]))
                except (np.linalg.LinAlgError, ValueError):
                    pass
        rows.append(row)
    out = pd.DataFrame(rows, columns=["feature", "accounts", "users", "non_users",
                                      "churned_users", "churned_non_users", "hazard_ratio",
                                      "lower", "upper", "p_value"])
    out["p_adjusted"] = math.nan
    ok = out["p_value"].notna()
    if ok.any():
        out.loc[ok, "p_adjusted"] = multipletests(out.loc[ok, "p_value"], method="holm")[1]
    out["significant"] = out["p_adjusted"] < alpha
    if (~ok).any():
        notes.append("No hazard ratio where every (or no) account at risk used the feature "
                     "by day N, or nobody churned.")
    notes.append("Association, not causation: accounts that adopt a feature early differ "
                 "in ways not adjusted for (health, onboarding, budget).")
    return FeaturesAndRetention(out, landmark_days, adj, as_of, notes=tuple(notes))
