"""Cohort retention, revenue retention, survival and churn drivers.

Public API (signatures are stable; notebooks and dashboards rely on them):

- :func:`cohort_retention` -- logo retention per signup cohort and period (contract or
  activity basis, bounded or unbounded).
- :func:`average_retention` / :func:`retention_curve` -- the cohort-size-weighted curve
  over the cohorts observable at each period, with Wilson intervals;
  :func:`compare_definitions` stacks the curves of contract and activity retention.
- :func:`revenue_retention` -- MRR bridge (new, reactivated, expansion, contraction,
  churned), GRR / NRR per cohort and over trailing 12-month windows.
- :func:`account_lifetimes` -- per-account lifetime, signup to churn or censored.
- :func:`survival` -- Kaplan-Meier curves, median lifetime, log-rank test.
- :func:`churn_drivers` -- Cox proportional-hazards hazard ratios.

Definitions (metrics.md, "Time" and "Retention")
------------------------------------------------
- **period**: a calendar month or quarter, numbered as one integer (month:
  ``year * 12 + month - 1``; quarter: ``year * 4 + quarter - 1``). A period is
  **observable** when its last day is on or before the as-of date.
- **subscription coverage**: a subscription covers day ``d`` when
  ``start_date <= d < end_date`` (null ``end_date``: still running).
- **cohort**: the accounts whose ``signup_date`` falls in a given period; **period k** of
  a cohort is the k-th calendar period after the signup period (k = 0: the signup period).
- Accounts that sign up after the as-of date do not exist yet at that date and are left
  out of every analysis here.
- **time zone**: usage events are stored in UTC and placed in calendar periods by their
  *local* date in the workspace's time zone (``ws.timezone``), as the workspace's usage
  rollup is; an event counts up to the end of the local as-of day (a login at 07:00 on
  1 May in Tokyo is a May login of a Tokyo workspace). Every calendar operation goes
  through :mod:`cs_analysis.time`.
- **logo retention** is contract retention counted in accounts (``basis="logo"`` is
  accepted as an alias of ``basis="contract"``); revenue retention (GRR / NRR) is
  :func:`revenue_retention`.

Results: tables are tidy frames whose grouping column is named after ``by`` (no metadata in
``DataFrame.attrs``); :class:`RevenueRetention` and :class:`SurvivalResult` are
:class:`cs_analysis.results.Result` objects with ``summary()``. Arguments are checked with
:mod:`cs_analysis.errors` (a bad value raises :class:`~cs_analysis.errors.ArgumentError`,
a ``ValueError``).

Heavy work over ``usage_events`` and ``subscriptions`` runs in the engine (Ibis on the
workspace's backend): only per-account or aggregated frames come back to pandas, where
statsmodels does the statistics.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd
from ibis.common.exceptions import OperationNotDefinedError

from cs_analysis.errors import (
    ArgumentError,
    CSAnalysisError,
    check_alpha,
    check_choice,
    check_int,
    short,
)
from cs_analysis.results import Result
from cs_analysis.survival import kaplan_meier, loglog_interval
from cs_analysis.time import (
    last_observable,
    on_or_before,
    period_end,
    period_expr,
    period_label,
    period_of,
    period_start,
    resolve_as_of,
    to_date,
    utc_instant,
)
from cs_analysis.workspace import WorkspaceError

__all__ = [
    "ALL",
    "BRIDGE_COMPONENTS",
    "DEFINITIONS",
    "MISSING",
    "ChurnModelError",
    "RevenueRetention",
    "SurvivalResult",
    "account_lifetimes",
    "average_retention",
    "churn_drivers",
    "cohort_retention",
    "combine_bridge",
    "combine_cohort_cells",
    "combine_trailing",
    "compare_definitions",
    "mrr_at",
    "retention_curve",
    "revenue_retention",
    "subscription_table",
    "survival",
]

#: Grains of the retention tables (periods of cohorts and of k).
GRAINS = ("month", "quarter")
#: Retained bases; ``"logo"`` is an alias of ``"contract"`` (logo retention: the share of
#: accounts, not of revenue, whose contract is in force).
BASES = ("contract", "activity", "logo")
KINDS = ("bounded", "unbounded")
#: Label of the group holding every account when no ``by`` column is given.
ALL = "All accounts"
#: Label of accounts whose ``by`` column is null.
MISSING = "(missing)"
#: Rows of the MRR bridge, in waterfall order (``start + changes = end``).
BRIDGE_COMPONENTS = ("start", "new", "reactivated", "expansion", "contraction", "churned",
                     "end")
_CHANGES = BRIDGE_COMPONENTS[1:-1]


# -- arguments ---------------------------------------------------------------------------
class ChurnModelError(CSAnalysisError, ValueError):
    """The churn model cannot be estimated on these data (too few or separated accounts)."""


def _basis(basis: str) -> str:
    """``basis`` checked; ``"logo"`` is the contract basis (logo retention of accounts)."""
    basis = check_choice("basis", basis, BASES)
    return "contract" if basis == "logo" else basis


def _periods(periods) -> int | None:
    return None if periods is None else check_int("periods", periods, minimum=0)


def _small(small_sample) -> int:
    return check_int("small_sample", small_sample, minimum=0)


def _by_name(by) -> str | None:
    """``by`` as one column name (or None); a clear error for anything else."""
    if by is None or (isinstance(by, str) and by):
        return by
    raise ArgumentError(f"by={short(by)} must be one accounts column name (e.g. 'segment') "
                        "or None")


# -- accounts --------------------------------------------------------------------------
def _by_list(by) -> list[str]:
    if by is None:
        return []
    if isinstance(by, str):
        return [by]
    return list(by)


def _accounts(ws, as_of: dt.date, by=None, grain: str | None = None):
    """Scoped accounts that exist at ``as_of``: ``account_id, signup_date[, c][, _g]``.

    ``c`` is the signup period (when ``grain`` is given); ``_g`` the ``by`` column as text
    with nulls labelled :data:`MISSING` (when ``by`` is one column name).
    """
    cols = ["account_id", "signup_date", *_by_list(by)]
    acc = ws.table("accounts", columns=cols)
    acc = acc.filter(acc.signup_date <= as_of)
    fields = {"account_id": acc.account_id, "signup_date": acc.signup_date}
    if grain is not None:
        fields["c"] = period_expr(acc.signup_date, grain).cast("int64")
    if isinstance(by, str):
        fields["_g"] = acc[by].cast("string").fill_null(MISSING)
    return acc.select(**fields)


def subscription_table(ws):
    """Scoped subscription lines (``account_id, start_date, mrr, end_date``), in the engine.

    ``end_date`` is null when the workspace's subscriptions have no such column (contracts
    still running). Shared by retention, renewals and support.
    """
    has_end = ws.has("subscriptions", "end_date")
    cols = ["account_id", "start_date", "mrr"] + (["end_date"] if has_end else [])
    subs = ws.table("subscriptions", columns=cols)
    if not has_end:
        subs = subs.mutate(end_date=ibis.null("date"))
    return subs


def mrr_at(ws, date) -> pd.DataFrame:
    """MRR of each account on a date (or on its own date), computed in the engine.

    metrics.md: the **MRR of an account at a date** is the sum of ``mrr`` of the
    subscriptions covering it: ``start_date <= d < end_date`` (a null ``end_date``, or
    no ``end_date`` column, means still running). Only subscriptions of the (scoped)
    workspace count.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    date : date, str, or pandas.DataFrame
        One date for every account, or a frame with ``account_id`` and ``date`` columns
        (one date per row, e.g. each survey response's day).

    Returns
    -------
    pandas.DataFrame
        For one date: ``account_id`` (text), ``mrr``, one row per account with a
        subscription covering the date (its MRR may be 0). For a frame: the frame with a
        ``mrr`` column added (same index and order; 0 where nothing covers the date).
    """
    subs = subscription_table(ws)
    if not isinstance(date, pd.DataFrame):
        d = to_date(date)
        live = subs.filter(subs.start_date <= d, subs.end_date.isnull() | (d < subs.end_date))
        out = live.group_by("account_id").agg(mrr=live.mrr.sum()).to_pandas()
        out["account_id"] = out["account_id"].astype("str")
        out["mrr"] = out["mrr"].astype(float)
        return out.sort_values("account_id").reset_index(drop=True)
    pairs = date
    if pairs.empty:
        return pairs.assign(mrr=pd.Series([], dtype=float, index=pairs.index))
    keys = pd.DataFrame({"k_account": pairs["account_id"].astype("str"),
                         "k_d": pd.to_datetime(pairs["date"]).dt.date}).drop_duplicates()
    mem = ibis.memtable(keys.reset_index(drop=True))
    mem = mem.mutate(k_d=mem.k_d.cast("date"))
    j = mem.join(subs, [mem.k_account == subs.account_id, subs.start_date <= mem.k_d,
                        subs.end_date.isnull() | (mem.k_d < subs.end_date)])
    agg = j.group_by(["k_account", "k_d"]).agg(mrr=j.mrr.sum()).to_pandas()
    look = {(a, pd.Timestamp(d)): float(m)
            for a, d, m in zip(agg["k_account"], agg["k_d"], agg["mrr"], strict=True)}
    mrr = [look.get((a, d), 0.0) for a, d in zip(pairs["account_id"].astype("str"),
                                                   pd.to_datetime(pairs["date"]).dt.normalize(),
                                                   strict=True)]
    return pairs.assign(mrr=pd.Series(mrr, index=pairs.index, dtype=float))


def _group_cols(by) -> list[str]:
    return ["_g"] if by is not None else []


def _rename_group(frame: pd.DataFrame, by) -> pd.DataFrame:
    return frame.rename(columns={"_g": by}) if by is not None else frame


# -- cohort retention ------------------------------------------------------------------
def _active_periods(ws, grain: str, as_of: dt.date, events):
    """``(account_id, p)`` rows for accounts with at least one usage event in period ``p``.

    Every calendar operation uses the workspace's time zone (metrics.md, Time): an
    event's period is the period of its local date, and only events on or before the
    local as-of day count (stored UTC instants before the start of the next local day).
    Uses the workspace's account x month rollup (months cut in the same zone) when it
    exists and no event set is chosen (exact for whole months before the as-of month;
    the as-of month comes from the rollup only when no event can be dated after
    ``as_of``, otherwise from the raw events between the local start of that month and
    the end of the local as-of day). Otherwise aggregates ``usage_events`` in the engine.
    """
    tz = ws.timezone
    m_asof = period_of(as_of, "month")
    roll = ws.usage_rollup() if events is None else None
    if roll is not None:
        # the rollup's months are local months of the workspace zone (ws.usage_rollup)
        complete = (ws.config.get("as_of") is None and as_of >= ws.as_of) or (
            period_end(m_asof, "month") == as_of)
        if complete:
            months = roll.filter(roll.events > 0, roll.month <= m_asof)
            months = months.select("account_id", m=months.month.cast("int64"))
        else:
            early = roll.filter(roll.events > 0, roll.month < m_asof)
            early = early.select("account_id", m=early.month.cast("int64"))
            ev = ws.table("usage_events", columns=["account_id", "event_at"])
            start = ibis.timestamp(utc_instant(period_start(m_asof, "month"), tz))
            late = ev.filter(ev.event_at >= start, on_or_before(ev.event_at, as_of, tz))
            late = late.select("account_id", m=ibis.literal(m_asof, "int64")).distinct()
            months = early.union(late, distinct=False)
    else:
        need = ["account_id", "event_at"] + (["event_name"] if events is not None else [])
        ev = ws.table("usage_events", columns=need)
        ev = ev.filter(on_or_before(ev.event_at, as_of, tz))
        if events is not None:
            ev = ev.filter(ev.event_name.isin([str(e) for e in events]))
        months = ev.select("account_id",
                           m=period_expr(ev.event_at, "month", tz).cast("int64")).distinct()
    # rows are distinct per (account, month); callers count distinct accounts or take a
    # max, so (account, quarter) duplicates need no DISTINCT pass here
    if grain == "month":
        return months.select("account_id", p=months.m)
    return months.select("account_id", p=(months.m // 3).cast("int64"))


def _coverage_intervals(ws, grain: str, p_obs: int):
    """Per subscription, the observable periods whose last day it covers: ``[lo, hi]``.

    A subscription covers the last day of period p iff
    ``period(start_date) <= p <= period(end_date) - 1`` (``end_date`` is the first day
    without service); ``hi`` is capped at the last observable period ``p_obs``.
    """
    subs = subscription_table(ws)
    lo = period_expr(subs.start_date, grain).cast("int64")
    hi = subs.end_date.isnull().ifelse(
        ibis.literal(p_obs, "int64"),
        ibis.least(period_expr(subs.end_date, grain).cast("int64") - 1, p_obs))
    iv = subs.select("account_id", lo=lo, hi=hi)
    return iv.filter(iv.lo <= iv.hi)


def _contract_bounded_fallback(intervals, acc, gcols: list[str], k_max: int):
    """Accounts covered at the end of period k, joining a table of offsets 0..k_max."""
    ks = ibis.memtable({"k": np.arange(k_max + 1, dtype="int64")})
    j = intervals.join(acc, "account_id")
    j = j.join(ks, [j.lo <= j.c + ks.k, j.c + ks.k <= j.hi])
    return j.group_by(["c", *gcols, "k"]).agg(n=j.account_id.nunique())


def _empty_cohort_frame(by) -> pd.DataFrame:
    cols = ["cohort", "cohort_label", "period", *_by_list(by), "period_end", "accounts",
            "retained", "rate", "observable", "kind", "basis"]
    return pd.DataFrame({c: [] for c in cols})


def cohort_retention(ws, grain: str = "month", basis: str = "contract", by: str | None = None,
                     periods: int | None = None, *, kind: str = "bounded",
                     events: Sequence[str] | None = None, as_of=None) -> pd.DataFrame:
    """Logo retention per signup cohort and period.

    Definitions (metrics.md):

    - **cohort**: the accounts whose ``signup_date`` falls in a given calendar period
      (month or quarter); **period k** of a cohort is the k-th calendar period after the
      signup period (k = 0 is the signup period).
    - **contract retained at k** (``basis="contract"``): a subscription covers the last
      day of period k (``start_date <= day < end_date``, null ``end_date`` = running).
    - **activity retained, bounded** (``basis="activity", kind="bounded"``, "active at
      k"): the account has at least one usage event (of the chosen ``events``, if any)
      in period k, events placed by their local date in the workspace's time zone and
      counted up to the end of the local as-of day.
    - **activity retained, unbounded** (``kind="unbounded"``, "active at k or later"):
      the account's last active period, counting events up to the as-of date, is k or
      later.
    - **contract retained, unbounded**: covered on the last day of some observable
      period k or later.
    - **rate** = retained / accounts in the cohort.
    - A period is **observable** when its last day is on or before the as-of date. Cells
      of periods that are not observable are returned with ``observable=False`` and no
      rate (NaN) and no retained count (NA): they are censored, never 0%, and
      :func:`average_retention` leaves them out.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    grain : {"month", "quarter"}
        Calendar period of cohorts and of k.
    basis : {"contract", "activity", "logo"}
        Retained by subscription coverage or by usage events. ``"logo"`` (logo
        retention: accounts whose contract is in force) is the contract basis; the
        ``basis`` column then says ``"contract"``.
    by : str, optional
        An ``accounts`` column (``segment``, ``plan``, ``region``, ...): one triangle per
        value (nulls labelled ``"(missing)"``).
    periods : int, optional
        Return k = 0..periods. Default: up to the period holding the as-of date for the
        oldest cohort (so the table is a full rectangle whose lower-right triangle is
        unobservable).
    kind : {"bounded", "unbounded"}
        Retained exactly at k, or at k or later (see above); named in the ``kind``
        column of the result.
    events : list of str, optional
        Activity basis only: count only these ``usage_events.event_name`` values.
    as_of : date or str, optional
        Default: the workspace's as-of date. Accounts that sign up after it are left out.

    Returns
    -------
    pandas.DataFrame
        One row per cohort x period [x group]: ``cohort`` (first day of the signup
        period), ``cohort_label`` (``2024-01`` / ``2024-Q1``), ``period`` (k),
        [``by``], ``period_end`` (last day of period k), ``accounts`` (cohort size),
        ``retained`` (nullable int), ``rate``, ``observable``, ``kind``, ``basis``.
    """
    grain = check_choice("grain", grain, GRAINS)
    basis = _basis(basis)
    kind = check_choice("kind", kind, KINDS)
    by = _by_name(by)
    if events is not None and basis != "activity":
        raise ArgumentError("events= selects usage events: use it with basis='activity'")
    if isinstance(events, str):
        events = [events]
    periods = _periods(periods)
    as_of = resolve_as_of(ws, as_of)
    gcols = _group_cols(by)
    acc = _accounts(ws, as_of, by, grain)
    p_asof = period_of(as_of, grain)
    p_obs = last_observable(as_of, grain)

    # One engine query returns both the cohort sizes (rows with k = -1) and the counts:
    # for bounded kinds, accounts retained at each k; for unbounded ones, accounts whose
    # last retained period offset is k (summed from the top in pandas).
    if basis == "activity":
        active = _active_periods(ws, grain, as_of, events)
        if kind == "bounded":
            j = active.join(acc, "account_id")
            j = j.mutate(k=j.p - j.c)
            j = j.filter(j.k >= 0, j.p <= p_obs)
        else:
            last = active.group_by("account_id").agg(last=active.p.max())
    else:
        intervals = _coverage_intervals(ws, grain, p_obs)
        if kind == "bounded":
            j = intervals.join(acc, "account_id")
            lo_k = ibis.greatest(j.lo - j.c, 0)
            hi_k = j.hi - j.c
            j = j.filter(lo_k <= hi_k)
            j = j.select("account_id", "c", *gcols,
                         k=ibis.range(lo_k, hi_k + 1).unnest().cast("int64"))
        else:
            last = intervals.group_by("account_id").agg(last=intervals.hi.max())
    if kind == "bounded":
        if periods is not None:
            j = j.filter(j.k <= int(periods))
        counts_e = j.group_by(["c", *gcols, "k"]).agg(n=j.account_id.nunique())
    else:
        j = last.join(acc, "account_id")
        j = j.mutate(k=(j["last"] - j.c).cast("int64"))
        j = j.filter(j.k >= 0)
        counts_e = j.group_by(["c", *gcols, "k"]).agg(n=j.account_id.count())
    sizes_e = acc.group_by(["c", *gcols]).agg(n=acc.account_id.count())
    sizes_e = sizes_e.mutate(k=ibis.literal(-1, "int64"))
    cols = ["c", *gcols, "k", "n"]
    try:
        both = sizes_e.select(*cols).union(counts_e.select(*cols), distinct=False).to_pandas()
    except OperationNotDefinedError:
        # a backend without integer ranges (e.g. SQLite): sizes first, then join the
        # coverage intervals with a table of offsets k = 0..k_max
        both = sizes_e.select(*cols).to_pandas()
        if not both.empty:
            k_top = int(periods) if periods is not None else p_asof - int(both["c"].min())
            both = pd.concat([both, _contract_bounded_fallback(
                intervals, acc, gcols, k_top).select(*cols).to_pandas()], ignore_index=True)
    sizes = both[both["k"] == -1].drop(columns="k").rename(columns={"n": "accounts"})
    if sizes.empty:
        return _empty_cohort_frame(by)
    k_max = int(periods) if periods is not None else p_asof - int(sizes["c"].min())
    counts = both[both["k"] >= 0]
    if kind == "bounded":
        counts = counts.rename(columns={"n": "retained"})
    else:
        counts = _unbounded_counts(counts.rename(columns={"k": "lastk"}), gcols, k_max)

    cells = sizes.merge(pd.DataFrame({"k": np.arange(k_max + 1, dtype="int64")}), how="cross")
    cells = cells.merge(counts, on=["c", *gcols, "k"], how="left")
    cells["observable"] = (cells["c"] + cells["k"]) <= p_obs
    retained = cells["retained"].fillna(0).astype("int64").astype("Int64")
    cells["retained"] = retained.where(cells["observable"], pd.NA)
    cells["rate"] = _rate(cells["retained"], cells["accounts"], cells["observable"])
    return _finish_cells(cells, by, grain, {"kind": kind, "basis": basis})


def _unbounded_counts(lastk: pd.DataFrame, gcols: list[str], k_max: int) -> pd.DataFrame:
    """Retained at k = accounts whose last retained period offset is >= k."""
    if lastk.empty:
        return pd.DataFrame({c: [] for c in ["c", *gcols, "k", "retained"]})
    keys = ["c", *gcols]
    lastk = lastk.assign(lastk=lastk["lastk"].clip(upper=k_max))
    grid = lastk[keys].drop_duplicates().merge(
        pd.DataFrame({"lastk": np.arange(k_max + 1, dtype="int64")}), how="cross")
    full = grid.merge(lastk.groupby([*keys, "lastk"], as_index=False)["n"].sum(),
                      on=[*keys, "lastk"], how="left").fillna({"n": 0})
    full = full.sort_values([*keys, "lastk"], ascending=[True] * len(keys) + [False])
    full["retained"] = full.groupby(keys)["n"].cumsum().astype("int64")
    return full.rename(columns={"lastk": "k"})[[*keys, "k", "retained"]]


def _finish_cells(cells: pd.DataFrame, by, grain: str, constants: Mapping) -> pd.DataFrame:
    """Add cohort / period dates and labels, order rows and columns."""
    c = cells["c"].astype("int64")
    end_p = c + cells["k"].astype("int64")
    starts = {p: period_start(p, grain) for p in c.unique()}
    ends = {p: period_end(p, grain) for p in end_p.unique()}
    out = pd.DataFrame({
        "cohort": pd.to_datetime(c.map(starts)),
        "cohort_label": c.map(lambda p: period_label(p, grain)).astype("str"),
        "period": cells["k"].astype("int64"),
    })
    if by is not None:
        out[by] = cells["_g"].astype("str")
    out["period_end"] = pd.to_datetime(end_p.map(ends))
    skip = {"c", "k", "_g"}
    for col in cells.columns:
        if col not in skip:
            out[col] = cells[col]
    for key, value in constants.items():
        out[key] = value
    order = ([by] if by is not None else []) + ["cohort", "period"]
    return out.sort_values(order, kind="stable").reset_index(drop=True)


def _frame_by(frame: pd.DataFrame, known: set[str], by: str | None = None) -> str | None:
    """The grouping column of a retention frame: ``by`` if given, else the one unknown column."""
    if by is not None:
        by = _by_name(by)
        if by not in frame.columns:
            raise ArgumentError(f"by={by!r} is not a column of this frame; its columns are "
                                f"{', '.join(map(str, frame.columns))}")
        return by
    extra = [c for c in frame.columns if c not in known]
    if len(extra) > 1:
        raise ArgumentError(f"cannot tell the group column among {extra}; pass by=")
    return extra[0] if extra else None


def _rate(retained, accounts, observable) -> pd.Series:
    """Retained / accounts (float), NaN where the cell is not observable (metrics.md)."""
    obs = pd.Series(observable).astype(bool).to_numpy()
    rate = (pd.Series(retained).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            / np.asarray(accounts, dtype=float))
    return pd.Series(np.where(obs, rate, np.nan), index=getattr(retained, "index", None))


def combine_cohort_cells(cells: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Cohort cells of :func:`cohort_retention` summed over the groups of ``by``.

    Each account is in exactly one group, so cohort sizes (``accounts``) and retained
    counts add up across groups and the result equals :func:`cohort_retention` without
    ``by`` (one query can serve the per-group and the all-accounts views). ``rate`` =
    retained / accounts (metrics.md), NaN and no retained count where the cell is not
    observable.

    Parameters
    ----------
    cells : pandas.DataFrame
        :func:`cohort_retention` output computed with ``by``.
    by : str or None
        The grouping column; None (or a column the frame lacks) returns ``cells``.

    Returns
    -------
    pandas.DataFrame
        The columns of ``cells`` without ``by``, one row per cohort x period.
    """
    if by is None or by not in cells.columns:
        return cells
    keys = ["cohort", "cohort_label", "period", "period_end", "observable"]
    extra = [c for c in ("kind", "basis") if c in cells.columns]
    out = (cells.assign(retained=cells["retained"].astype("Float64"))
           .groupby(keys + extra, as_index=False, sort=True, dropna=False)
           .agg(accounts=("accounts", "sum"), retained=("retained", "sum")))
    obs = out["observable"].astype(bool)
    out["retained"] = out["retained"].round().astype("Int64").where(obs, pd.NA)
    out["rate"] = _rate(out["retained"], out["accounts"], obs)
    return out[[c for c in cells.columns if c != by]].reset_index(drop=True)


_COHORT_COLS = {"cohort", "cohort_label", "period", "period_end", "accounts", "retained",
                "rate", "observable", "kind", "basis"}


def _wilson(retained, accounts, alpha: float):
    from statsmodels.stats.proportion import proportion_confint

    retained = np.asarray(retained, dtype=float)
    accounts = np.asarray(accounts, dtype=float)
    lower = np.full(len(accounts), np.nan)
    upper = np.full(len(accounts), np.nan)
    ok = accounts > 0
    if ok.any():
        lo, hi = proportion_confint(retained[ok], accounts[ok], alpha=alpha, method="wilson")
        lower[ok], upper[ok] = lo, hi
    return lower, upper


def average_retention(frame: pd.DataFrame, *, by: str | None = None, small_sample: int = 30,
                      alpha: float = 0.05) -> pd.DataFrame:
    """Cohort-size-weighted retention curve over the cohorts observable at each period.

    Definition (metrics.md): "an average over cohorts at period k is weighted by cohort
    size over the cohorts observable at k", i.e. ``rate(k) = sum(retained) /
    sum(accounts)`` over the observable cells at k. Unobservable cells never enter.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`cohort_retention`.
    by : str, optional
        The grouping column of ``frame``; default: the one column that is not a
        :func:`cohort_retention` column (none: one curve).
    small_sample : int
        Rows whose ``accounts`` is below this are flagged ``small_sample=True``.
    alpha : float
        1 - confidence level of the Wilson interval (statsmodels ``proportion_confint``),
        strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        One row per [group x] period with at least one observable cohort: [``by``],
        ``period``, ``cohorts`` (observable cohorts averaged), ``accounts``,
        ``retained``, ``rate``, ``lower``, ``upper``, ``small_sample``, ``kind``,
        ``basis``.
    """
    alpha = check_alpha(alpha)
    small_sample = _small(small_sample)
    if not isinstance(frame, pd.DataFrame) or not {"observable", "retained", "accounts",
                                                   "period", "cohort"} <= set(frame.columns):
        raise ArgumentError("average_retention needs the frame cohort_retention returns "
                            "(columns cohort, period, accounts, retained, observable)")
    by = _frame_by(frame, _COHORT_COLS, by)
    keys = ([by] if by is not None else []) + ["period"]
    extra = [c for c in ("kind", "basis") if c in frame.columns]
    obs = frame[frame["observable"].astype(bool)]
    if obs.empty:
        cols = [*keys, "cohorts", "accounts", "retained", "rate", "lower", "upper",
                "small_sample", *extra]
        return pd.DataFrame({c: [] for c in cols})
    out = (obs.assign(retained=obs["retained"].astype("int64"))
           .groupby(keys + extra, as_index=False, sort=True)
           .agg(cohorts=("cohort", "nunique"), accounts=("accounts", "sum"),
                retained=("retained", "sum")))
    out["rate"] = out["retained"] / out["accounts"]
    out["lower"], out["upper"] = _wilson(out["retained"], out["accounts"], alpha)
    out["small_sample"] = out["accounts"] < small_sample
    return out[[*keys, "cohorts", "accounts", "retained", "rate", "lower", "upper",
                "small_sample", *extra]]


def retention_curve(ws, grain: str = "month", basis: str = "contract", by: str | None = None,
                    periods: int | None = None, *, kind: str = "bounded",
                    events: Sequence[str] | None = None, as_of=None,
                    small_sample: int = 30, alpha: float = 0.05) -> pd.DataFrame:
    """Cohort-size-weighted retention curve: ``average_retention(cohort_retention(...))``.

    Retained and observable are defined as in :func:`cohort_retention`; the average at
    period k is weighted by cohort size over the cohorts observable at k (metrics.md).

    Parameters
    ----------
    ws, grain, basis, by, periods, kind, events, as_of
        As in :func:`cohort_retention`.
    small_sample, alpha
        As in :func:`average_retention`.

    Returns
    -------
    pandas.DataFrame
        As :func:`average_retention`.
    """
    alpha = check_alpha(alpha)
    small_sample = _small(small_sample)
    cells = cohort_retention(ws, grain, basis, by, periods, kind=kind, events=events,
                             as_of=as_of)
    return average_retention(cells, by=by, small_sample=small_sample, alpha=alpha)


#: The retention definitions compared by :func:`compare_definitions`: label -> (basis, kind).
DEFINITIONS = {
    "contract (covered at k)": ("contract", "bounded"),
    "active at k": ("activity", "bounded"),
    "active at k or later": ("activity", "unbounded"),
}


def compare_definitions(ws, grain: str = "month", periods: int | None = None, *,
                        as_of=None, small_sample: int = 30,
                        alpha: float = 0.05) -> pd.DataFrame:
    """Average retention curves under several definitions, stacked for comparison.

    For each entry of :data:`DEFINITIONS` (contract retention; activity retention
    bounded, "active at k"; activity retention unbounded, "active at k or later"), the
    cohort-size-weighted curve of :func:`retention_curve` over the cohorts observable at
    each period (metrics.md).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    grain : {"month", "quarter"}
        Calendar period.
    periods : int, optional
        Limit k to 0..periods.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    small_sample, alpha
        As in :func:`average_retention`.

    Returns
    -------
    pandas.DataFrame
        :func:`average_retention` columns plus ``definition`` (the label).
    """
    alpha = check_alpha(alpha)
    small_sample = _small(small_sample)
    parts = []
    for label, (basis, kind) in DEFINITIONS.items():
        curve = retention_curve(ws, grain, basis, None, periods, kind=kind, as_of=as_of,
                                small_sample=small_sample, alpha=alpha)
        parts.append(curve.assign(definition=label))
    out = pd.concat(parts, ignore_index=True)
    return out[["definition", *[c for c in out.columns if c != "definition"]]]


# -- revenue retention -----------------------------------------------------------------
@dataclass(frozen=True)
class RevenueRetention(Result):
    """Result of :func:`revenue_retention`: tidy frames of MRR movements and retention.

    ``summary()`` is the headline: trailing-12-month GRR / NRR to the last complete month
    (:attr:`latest`), per group when ``by`` was given.

    Attributes
    ----------
    bridge : pandas.DataFrame
        The MRR bridge per observable period [and group]: ``period`` (first day),
        ``period_label``, ``period_end``, [``by``], ``component`` (one of
        :data:`BRIDGE_COMPONENTS`: start, new, reactivated, expansion, contraction,
        churned, end), ``accounts`` (paying accounts for start / end, accounts moving
        for the changes) and ``mrr`` (signed: contraction and churned are negative), so
        that ``start + new + reactivated + expansion + contraction + churned = end``.
    by_cohort : pandas.DataFrame
        GRR / NRR of each signup cohort from the end of its signup period (k = 0) to the
        end of period k: ``cohort``, ``cohort_label``, ``period``, [``by``],
        ``period_end``, ``accounts`` (paying at the end of period 0), ``start_mrr``,
        ``end_mrr``, ``retained_mrr`` (sum of min(start, end) per account), ``grr``,
        ``nrr``, ``observable``. Unobservable cells have no MRR and no rates.
    trailing : pandas.DataFrame
        Trailing 12-month windows ending at each observable month end [per group]:
        ``window_start``, ``window_end``, [``by``], ``accounts`` (paying at the start),
        ``start_mrr``, ``expansion``, ``contraction``, ``churned``, ``end_mrr``, ``grr``,
        ``nrr``. The last row per group is the headline number (:attr:`latest`).
    grain : str
        Grain of ``bridge`` and ``by_cohort``.
    as_of : datetime.date
        The as-of date used.
    by : str or None
        The group column.
    """

    bridge: pd.DataFrame
    by_cohort: pd.DataFrame
    trailing: pd.DataFrame
    grain: str = "month"
    as_of: dt.date | None = None
    by: str | None = None

    title = "Revenue retention (trailing 12 months)"

    def summary(self) -> pd.DataFrame | str:
        """GRR / NRR of the latest trailing-12-month window [per group], with its counts."""
        latest = self.latest
        if latest.empty:
            return "No account was paying at the start of the latest 12-month window."
        cols = [*_by_list(self.by), "window_start", "window_end", "accounts", "start_mrr",
                "end_mrr", "grr", "nrr"]
        return latest[cols]

    @property
    def latest(self) -> pd.DataFrame:
        """Trailing-12-month GRR / NRR for the window ending at the last complete month.

        Empty when no account was paying at the start of that window.
        """
        t = self.trailing
        if t.empty or self.as_of is None:
            return t
        end = pd.Timestamp(period_end(last_observable(self.as_of, "month"), "month"))
        # empty when nobody was paying at the start of that window
        return t[t["window_end"] == end].reset_index(drop=True)

    def window_bridge(self, start=None, end=None, *, last: int | None = None) -> pd.DataFrame:
        """MRR bridge summed over the periods from ``start`` to ``end`` (inclusive).

        ``start`` is MRR at the start of the first period, ``end`` MRR at the end of the
        last; changes are summed over the periods in between, so the identity
        ``start + changes = end`` still holds. Default: the whole bridge.

        Parameters
        ----------
        start, end : date or str, optional
            Periods whose first day is within these dates are included.
        last : int, optional
            Only the last ``last`` periods of the bridge (e.g. ``last=12`` with monthly
            grain: the same 12 months as the latest trailing window).

        Returns
        -------
        pandas.DataFrame
            [``by``], ``component``, ``accounts`` (for start / end only), ``mrr``,
            ``window_start`` (first period's first day), ``window_end`` (last period's
            last day).
        """
        b = self.bridge
        if last is not None:
            periods = sorted(b["period"].unique())[-int(last):] if last > 0 else []
            b = b[b["period"].isin(periods)]
        if start is not None:
            b = b[b["period"] >= pd.Timestamp(to_date(start))]
        if end is not None:
            b = b[b["period"] <= pd.Timestamp(to_date(end))]
        keys = [self.by] if self.by is not None else []
        rows = []
        for key, g in (b.groupby(keys, sort=True) if keys else [((), b)]):
            first, last = g["period"].min(), g["period"].max()
            row_key = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
            for comp in BRIDGE_COMPONENTS:
                part = g[g["component"] == comp]
                if comp == "start":
                    part = part[part["period"] == first]
                elif comp == "end":
                    part = part[part["period"] == last]
                rows.append({**row_key, "component": comp,
                             "accounts": int(part["accounts"].sum())
                             if comp in ("start", "end") else pd.NA,
                             "mrr": float(part["mrr"].sum()),
                             "window_start": first,
                             "window_end": g["period_end"].max()})
        out = pd.DataFrame(rows)
        if not out.empty:
            out["accounts"] = out["accounts"].astype("Int64")
        return out


def _mrr_grid(ws, grain: str, p_first: int, p_obs: int, acc):
    """Account x period MRR at period ends, sparse, in the engine.

    Returns an Ibis table ``account_id, p, mrr, c[, _g]`` over periods
    ``p_first - 1 .. p_obs``: one row per account of ``acc`` and period end ``d`` (the
    last day of ``p``) that a subscription covers, ``mrr`` = sum of ``mrr`` of the
    subscriptions covering ``d``. A missing (account, period) means MRR 0 there: the
    callers read it so (the dense account x period grid is about 15 times larger and
    was rebuilt by every query).
    """
    subs = subscription_table(ws)
    ps = np.arange(p_first - 1, p_obs + 1, dtype="int64")
    ends = ibis.memtable({"p": ps, "d": [period_end(int(p), grain) for p in ps]})
    cov = subs.join(ends, [subs.start_date <= ends.d,
                           subs.end_date.isnull() | (ends.d < subs.end_date)])
    cov = cov.group_by(["account_id", "p"]).agg(mrr=cov.mrr.sum())
    return cov.join(acc.drop("signup_date"), "account_id")


def _with_prev(grid, p_first: int, p_obs: int, gcols: list[str]):
    """Rows ``account_id, p[, _g], mrr, prev`` for periods ``p_first .. p_obs``.

    ``prev`` is the MRR at the end of the previous period; only (account, period) pairs
    with a covered end of ``p`` or of ``p - 1`` are returned (elsewhere both are 0: an
    "unchanged" row that adds nothing to any sum). A union of the grid and the grid
    shifted by one period, summed per key: no outer join and no window function.
    """
    zero = ibis.literal(0.0, "float64")
    cur = grid.select("account_id", *gcols, p=grid.p, mrr=grid.mrr.cast("float64"), prev=zero)
    nxt = grid.select("account_id", *gcols, p=grid.p + 1, mrr=zero,
                      prev=grid.mrr.cast("float64"))
    both = cur.union(nxt, distinct=False)
    both = both.filter(both.p >= p_first, both.p <= p_obs)
    return both.group_by(["account_id", "p", *gcols]).agg(mrr=both.mrr.sum(),
                                                           prev=both.prev.sum())


def _first_paid(ws):
    """First day each account had MRR > 0 (start of its first non-empty paid subscription)."""
    subs = subscription_table(ws)
    paid = subs.filter(subs.mrr > 0, subs.end_date.isnull() | (subs.end_date > subs.start_date))
    return paid.group_by("account_id").agg(first_paid=paid.start_date.min())


def _bridge(ws, grid, by, grain: str, p_first: int, p_obs: int) -> pd.DataFrame:
    gcols = _group_cols(by)
    g = _with_prev(grid, p_first, p_obs, gcols)
    g = g.left_join(_first_paid(ws), "account_id").drop("account_id_right")
    ps = np.arange(p_first, p_obs + 1, dtype="int64")
    prev_ends = ibis.memtable({"p": ps, "prev_end": [period_end(int(p) - 1, grain)
                                                     for p in ps]})
    g = g.join(prev_ends, "p")
    s, e = g.prev, g.mrr
    category = ibis.cases(
        ((s == 0) & (e > 0) & (g.first_paid.isnull() | (g.first_paid > g.prev_end)), "new"),
        ((s == 0) & (e > 0), "reactivated"),
        ((s > 0) & (e == 0), "churned"),
        ((s > 0) & (e > s), "expansion"),
        ((s > 0) & (e < s), "contraction"),
        else_=ibis.literal("unchanged"),
    )
    g = g.mutate(component=category)
    # one query: per (period, group, component) the movers and the start / end totals
    agg = (g.group_by(["p", *gcols, "component"])
           .agg(accounts=g.account_id.count(), mrr=(g.mrr - g.prev).sum(),
                # ifelse, not bool.cast: PostgreSQL cannot cast boolean to bigint
                start_accounts=ibis.ifelse(g.prev > 0, 1, 0).cast("int64").sum(),
                start=g.prev.sum(),
                end_accounts=ibis.ifelse(g.mrr > 0, 1, 0).cast("int64").sum(),
                end=g.mrr.sum())
           .to_pandas())
    moves = agg[agg["component"] != "unchanged"][["p", *gcols, "component", "accounts", "mrr"]]
    totals = (agg.groupby(["p", *gcols], as_index=False)
              [["start_accounts", "start", "end_accounts", "end"]].sum())
    if totals.empty:
        cols = ["period", "period_label", "period_end", *_by_list(by), "component",
                "accounts", "mrr"]
        return pd.DataFrame({c: [] for c in cols})
    # every period of the range for every group with a paying account (a period where a
    # group pays nothing, before and after, has start = end = 0, as on a dense grid)
    base = pd.DataFrame({"p": ps})
    if gcols:
        base = base.merge(totals[gcols].drop_duplicates(), how="cross")
    totals = base.merge(totals, on=["p", *gcols], how="left")
    for col in ("start_accounts", "end_accounts"):
        totals[col] = totals[col].fillna(0).astype("int64")
    for col in ("start", "end"):
        totals[col] = totals[col].fillna(0.0).astype(float)
    comps = pd.DataFrame({"component": list(BRIDGE_COMPONENTS)})
    full = base.merge(comps, how="cross").merge(moves, on=["p", *gcols, "component"],
                                                 how="left")
    full = full.merge(totals, on=["p", *gcols], how="left")
    is_start = full["component"] == "start"
    is_end = full["component"] == "end"
    full["accounts"] = np.select([is_start, is_end],
                                 [full["start_accounts"], full["end_accounts"]],
                                 full["accounts"].fillna(0)).astype("int64")
    full["mrr"] = np.select([is_start, is_end], [full["start"], full["end"]],
                            full["mrr"].fillna(0.0)).astype(float)
    p = full["p"].astype("int64")
    out = pd.DataFrame({
        "period": pd.to_datetime(p.map(lambda x: period_start(x, grain))),
        "period_label": p.map(lambda x: period_label(x, grain)).astype("str"),
        "period_end": pd.to_datetime(p.map(lambda x: period_end(x, grain))),
    })
    if by is not None:
        out[by] = full["_g"].astype("str")
    out["component"] = pd.Categorical(full["component"], categories=list(BRIDGE_COMPONENTS),
                                      ordered=True)
    out["accounts"] = full["accounts"]
    out["mrr"] = full["mrr"]
    order = ([by] if by is not None else []) + ["period", "component"]
    out = out.sort_values(order).reset_index(drop=True)
    out["component"] = out["component"].astype("str")
    return out


def _revenue_cohorts(grid, by, grain: str, p_asof: int, p_obs: int,
                     periods: int | None) -> pd.DataFrame:
    gcols = _group_cols(by)
    # the cohort's accounts paying at the end of period 0, and their covered period ends
    # from then on (an end not covered is MRR 0: nothing to add to end or retained MRR)
    base = grid.filter(grid.p == grid.c, grid.mrr > 0).select("account_id", base=grid.mrr)
    j = grid.join(base, "account_id")
    j = j.mutate(k=j.p - j.c)
    j = j.filter(j.k >= 0)
    agg = (j.group_by(["c", *gcols, "k"])
           .agg(accounts=j.account_id.count(), start_mrr=j.base.sum(), end_mrr=j.mrr.sum(),
                retained_mrr=ibis.least(j.base, j.mrr).sum())
           .to_pandas())
    cols = ["cohort", "cohort_label", "period", *_by_list(by), "period_end", "accounts",
            "start_mrr", "end_mrr", "retained_mrr", "grr", "nrr", "observable"]
    if agg.empty:
        return pd.DataFrame({c: [] for c in cols})
    sizes = agg[agg["k"] == 0][["c", *gcols, "accounts", "start_mrr"]]
    k_max = int(periods) if periods is not None else p_asof - int(sizes["c"].min())
    cells = sizes.merge(pd.DataFrame({"k": np.arange(k_max + 1, dtype="int64")}), how="cross")
    cells = cells.merge(agg[["c", *gcols, "k", "end_mrr", "retained_mrr"]],
                        on=["c", *gcols, "k"], how="left")
    cells["observable"] = (cells["c"] + cells["k"]) <= p_obs
    for col in ("end_mrr", "retained_mrr"):
        cells[col] = cells[col].astype(float).fillna(0.0).where(cells["observable"], np.nan)
    cells["grr"] = cells["retained_mrr"] / cells["start_mrr"]
    cells["nrr"] = cells["end_mrr"] / cells["start_mrr"]
    out = _finish_cells(cells, by, grain, {})
    return out[cols]


def _trailing(grid_m, by, m_obs: int) -> pd.DataFrame:
    gcols = _group_cols(by)
    # accounts paying at the end of month p - 12, and their MRR at the end of month p
    # (0 where no subscription covers it)
    a = grid_m.filter(grid_m.mrr > 0, grid_m.p + 12 <= m_obs)
    a = a.select("account_id", *gcols, p=a.p + 12, s=a.mrr.cast("float64"))
    b = grid_m.select(b_account=grid_m.account_id, b_p=grid_m.p, e=grid_m.mrr)
    j = a.left_join(b, [a.account_id == b.b_account, a.p == b.b_p])
    j = j.mutate(e=j.e.cast("float64").fill_null(0.0))
    s, e = j.s, j.e
    zero = ibis.literal(0.0)
    agg = (j.group_by(["p", *gcols])
           .agg(accounts=j.account_id.count(), start_mrr=s.sum(),
                expansion=(e > s).ifelse(e - s, zero).sum(),
                contraction=((e > 0) & (e < s)).ifelse(s - e, zero).sum(),
                churned=(e == 0).ifelse(s, zero).sum(),
                end_mrr=e.sum())
           .to_pandas())
    cols = ["window_start", "window_end", *_by_list(by), "accounts", "start_mrr", "expansion",
            "contraction", "churned", "end_mrr", "grr", "nrr"]
    if agg.empty:
        return pd.DataFrame({c: [] for c in cols})
    p = agg["p"].astype("int64")
    agg["window_end"] = pd.to_datetime(p.map(lambda x: period_end(x, "month")))
    agg["window_start"] = pd.to_datetime(p.map(lambda x: period_end(x - 12, "month")))
    agg["grr"], agg["nrr"] = _grr_nrr(agg)
    agg = _rename_group(agg, by)
    order = ([by] if by is not None else []) + ["window_end"]
    return agg.sort_values(order).reset_index(drop=True)[cols]


def _grr_nrr(sums: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """GRR and NRR of windows from their sums (metrics.md).

    GRR = (start_mrr - contraction - churned) / start_mrr; NRR = end_mrr / start_mrr,
    over the accounts paying at the window's start; NaN when nobody was paying.
    """
    start = sums["start_mrr"].astype(float)
    start = start.where(start != 0)
    grr = (start - sums["contraction"].astype(float) - sums["churned"].astype(float)) / start
    return grr, sums["end_mrr"].astype(float) / start


def combine_trailing(trailing: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """Trailing-12-month windows of :func:`revenue_retention` summed over the groups of ``by``.

    Starting MRR, expansion, contraction, churned and ending MRR of the accounts paying
    at a window's start add up across groups (each account is in one group), so GRR =
    (start - contraction - churned) / start and NRR = end / start of the sums equal the
    ungrouped numbers (metrics.md).

    Parameters
    ----------
    trailing : pandas.DataFrame
        ``RevenueRetention.trailing`` computed with ``by``.
    by : str or None
        The grouping column; None (or a column the frame lacks) returns ``trailing``.

    Returns
    -------
    pandas.DataFrame
        ``window_start``, ``window_end``, ``accounts``, ``start_mrr``, ``expansion``,
        ``contraction``, ``churned``, ``end_mrr``, ``grr``, ``nrr``.
    """
    if by is None or by not in trailing.columns:
        return trailing
    sums = ["accounts", "start_mrr", "expansion", "contraction", "churned", "end_mrr"]
    out = (trailing.groupby(["window_start", "window_end"], as_index=False, sort=True)[sums]
           .sum())
    out["grr"], out["nrr"] = _grr_nrr(out)
    return out


def combine_bridge(bridge: pd.DataFrame, by: str | None) -> pd.DataFrame:
    """A window MRR bridge (:meth:`RevenueRetention.window_bridge`) summed over groups.

    MRR movements add up across groups, so ``start + changes = end`` still holds;
    ``accounts`` (start / end rows only) is summed, ``window_start`` / ``window_end`` are
    the earliest start and the latest end.

    Parameters
    ----------
    bridge : pandas.DataFrame
        ``RevenueRetention.window_bridge(...)`` of a result computed with ``by``.
    by : str or None
        The grouping column; None (or a column the frame lacks) returns ``bridge``.

    Returns
    -------
    pandas.DataFrame
        ``component``, ``accounts``, ``mrr``, ``window_start``, ``window_end``.
    """
    if by is None or by not in bridge.columns:
        return bridge
    return (bridge.groupby("component", sort=False, as_index=False)
            .agg(accounts=("accounts", lambda s: s.sum(min_count=1)), mrr=("mrr", "sum"),
                 window_start=("window_start", "min"), window_end=("window_end", "max")))


def revenue_retention(ws, grain: str = "month", by: str | None = None, *,
                      as_of=None, periods: int | None = None) -> RevenueRetention:
    """MRR bridge and gross / net revenue retention (GRR / NRR).

    Definitions (metrics.md):

    - **MRR of an account at a date**: the sum of ``mrr`` of the subscriptions covering
      that date (``start_date <= d < end_date``), computed in the engine.
    - **Bridge**: per period, from MRR at the period's start to MRR at its end, each
      account's change is exactly one of **new** (first MRR > 0 ever), **expansion**
      (up), **contraction** (down, still > 0), **churned** (to 0), **reactivated** (from
      0, after having had MRR). MRR "at the end" of a period is the MRR on its last day
      (the day contract retention looks at); MRR "at the start" is the MRR at the end of
      the previous period, so consecutive periods chain and every change is counted
      once (a subscription ending on the 1st, its first day without service, is churn
      in the period starting that day). Only observable periods are returned.
    - **GRR** over a window = (MRR at the start of the accounts paying at the start -
      their contraction - their churned MRR) / MRR at the start; at most 100%
      (expansion is excluded; per account, contraction and churn are measured from the
      window's start to its end).
    - **NRR** = the same accounts' MRR at the end / their MRR at the start (expansion
      counts; new and reactivated accounts do not).
    - **By cohort**: the window runs from the end of the cohort's signup period (k = 0)
      to the end of period k; the accounts are those of the cohort paying at the end of
      period 0.
    - **Trailing 12 months**: windows from the end of month m - 12 to the end of month m
      for every observable month m; the last one (:attr:`RevenueRetention.latest`) ends
      at the last complete month on or before the as-of date.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    grain : {"month", "quarter"}
        Period of the bridge and of the cohort table (trailing windows are monthly).
    by : str, optional
        An ``accounts`` column; every frame is then per group.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    periods : int, optional
        Limit the cohort table to k = 0..periods.

    Returns
    -------
    RevenueRetention
        Result object with tidy frames ``bridge``, ``by_cohort``, ``trailing``
        (documented on the class) plus ``grain``, ``as_of``, ``by``; ``summary()`` is
        the latest trailing-12-month GRR / NRR.
    """
    grain = check_choice("grain", grain, GRAINS)
    by = _by_name(by)
    periods = _periods(periods)
    as_of = resolve_as_of(ws, as_of)
    acc = _accounts(ws, as_of, by, grain)
    subs = subscription_table(ws)
    first = subs.join(acc.select("account_id"), "account_id").start_date.min().to_pandas()
    empty = RevenueRetention(_bridge_empty(by), _revenue_cohorts_empty(by),
                             _trailing_empty(by), grain, as_of, by)
    if first is None or pd.isna(first):
        return empty
    first = to_date(first)
    p_obs = last_observable(as_of, grain)
    p_first = period_of(first, grain)
    if p_first > p_obs:
        return empty
    # the grid feeds three queries: computed once, held in a temporary table
    grid, release = _held(_mrr_grid(ws, grain, p_first, p_obs, acc))
    try:
        bridge = _bridge(ws, grid, by, grain, p_first, p_obs)
        cohorts = _revenue_cohorts(grid, by, grain, period_of(as_of, grain), p_obs, periods)
        m_obs = last_observable(as_of, "month")
        m_first = period_of(first, "month")
        if m_first <= m_obs:
            acc_m = acc if grain == "month" else _accounts(ws, as_of, by, "month")
            grid_m = grid if grain == "month" else _mrr_grid(ws, "month", m_first, m_obs,
                                                             acc_m)
            trailing = _trailing(grid_m, by, m_obs)
        else:
            trailing = _trailing_empty(by)
    finally:
        release()
    return RevenueRetention(bridge, cohorts, trailing, grain, as_of, by)


def _held(expr):
    """``expr`` computed once into a temporary table of its backend, and a release function.

    Ibis's ``cache()`` (a temporary table on DuckDB / PostgreSQL); where a backend
    cannot cache it, the expression itself (recomputed per query: same result). Ibis's
    PySpark backend does not register the in-memory tables the expression uses before
    caching (Spark: "table or view not found"), so any failure falls back: a real error
    in the expression then surfaces from the queries that use it.
    """
    try:
        cached = expr.cache()
    except Exception:  # noqa: BLE001 - see above: the uncached expression is exact
        return expr, lambda: None
    return cached, cached.release


def _bridge_empty(by) -> pd.DataFrame:
    cols = ["period", "period_label", "period_end", *_by_list(by), "component", "accounts",
            "mrr"]
    return pd.DataFrame({c: [] for c in cols})


def _revenue_cohorts_empty(by) -> pd.DataFrame:
    cols = ["cohort", "cohort_label", "period", *_by_list(by), "period_end", "accounts",
            "start_mrr", "end_mrr", "retained_mrr", "grr", "nrr", "observable"]
    return pd.DataFrame({c: [] for c in cols})


def _trailing_empty(by) -> pd.DataFrame:
    cols = ["window_start", "window_end", *_by_list(by), "accounts", "start_mrr", "expansion",
            "contraction", "churned", "end_mrr", "grr", "nrr"]
    return pd.DataFrame({c: [] for c in cols})


# -- survival --------------------------------------------------------------------------
def account_lifetimes(ws, *, as_of=None, by: str | Sequence[str] | None = None
                      ) -> pd.DataFrame:
    """Per-account lifetime from signup to churn, censored at the as-of date.

    Definitions (metrics.md): the **churn date** of an account is the ``end_date`` after
    which no subscription covers any later day; **lifetime** = churn date -
    ``signup_date``, in days; accounts with coverage on the as-of date are censored at
    the as-of date (lifetime = as-of date - ``signup_date``, ``churned=False``).

    Only subscriptions starting on or before the as-of date are seen (later data does
    not exist yet at that date). Accounts with no subscription covering any day by the
    as-of date (never customers) have no lifetime and are left out, as are accounts
    signing up after the as-of date. A churn date before the signup date (inconsistent
    data) gives lifetime 0.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    by : str or list of str, optional
        ``accounts`` columns to carry along (values as stored; nulls stay null).

    Returns
    -------
    pandas.DataFrame
        ``account_id``, ``signup_date``, ``churn_date`` (NaT when censored),
        ``lifetime_days`` (int), ``churned`` (bool), then the ``by`` columns.
    """
    as_of = resolve_as_of(ws, as_of)
    extra = _by_list(by)
    acc = ws.table("accounts", columns=["account_id", "signup_date", *extra])
    acc = acc.filter(acc.signup_date <= as_of)
    subs = subscription_table(ws)
    subs = subs.filter(subs.start_date <= as_of,
                       subs.end_date.isnull() | (subs.end_date > subs.start_date))
    covers_as_of = ibis.ifelse(subs.end_date.isnull() | (subs.end_date > as_of), 1, 0).cast(
        "int64")  # not bool.cast: PostgreSQL cannot cast boolean to bigint
    per = subs.group_by("account_id").agg(covered=covers_as_of.max(),
                                          last_end=subs.end_date.max())
    j = acc.join(per, "account_id").select("account_id", "signup_date", "covered",
                                           "last_end", *extra)
    df = j.to_pandas()
    churned = df["covered"].astype("int64") == 0
    signup = pd.to_datetime(df["signup_date"])
    churn_date = pd.to_datetime(df["last_end"]).where(churned)
    end = churn_date.where(churned, pd.Timestamp(as_of))
    lifetime = (end - signup).dt.days.clip(lower=0).astype("int64")
    out = pd.DataFrame({"account_id": df["account_id"].astype("str"),
                        "signup_date": signup, "churn_date": churn_date,
                        "lifetime_days": lifetime, "churned": churned.astype(bool)})
    for col in extra:
        out[col] = df[col]
    return out.sort_values("account_id").reset_index(drop=True)


def _groups(lt: pd.DataFrame, by: str | None) -> pd.Series:
    if by is None:
        return pd.Series(ALL, index=lt.index, dtype="str")
    return lt[by].astype("str").where(lt[by].notna(), MISSING)


_SURVIVAL_GROUP_COLS = ["accounts", "churned", "censored", "median_days", "median_lower",
                        "median_upper", "small_sample"]
_CURVE_COLS = ["days", "survival", "lower", "upper", "at_risk", "events"]


@dataclass(frozen=True)
class SurvivalResult(Result):
    """Result of :func:`survival`.

    Every frame has a grouping column named after ``by`` (values as text, nulls labelled
    ``"(missing)"``) when ``by`` was given, and none otherwise.

    Attributes
    ----------
    curves : pandas.DataFrame
        Kaplan-Meier curve per group, as a step function: [``by``], ``days``,
        ``survival``, ``lower``, ``upper`` (pointwise interval), ``at_risk`` (accounts
        still under observation just before ``days``), ``events`` (churns at ``days``).
        The first row per group is day 0 (survival 1); a last row at the longest
        follow-up time carries the curve to the end of observation.
    groups : pandas.DataFrame
        One row per group (one row without ``by``): [``by``], ``accounts``, ``churned``,
        ``censored``, ``median_days``, ``median_lower``, ``median_upper`` (NaN when the
        curve, or the interval's bound, does not reach 50% within follow-up; the median
        is the first day with S <= 0.5), ``small_sample``. This is :meth:`summary`.
    logrank : pandas.DataFrame
        Log-rank test that all groups share one survival curve: ``statistic``
        (chi-square), ``df`` (groups - 1), ``p_value``, ``groups``. Empty when there are
        fewer than two groups.
    lifetimes : pandas.DataFrame
        The per-account input (:func:`account_lifetimes`), its ``by`` column labelled
        as in the other frames.
    by : str or None
        The grouping column.
    as_of : datetime.date or None
        The as-of date used (censoring date).
    """

    curves: pd.DataFrame
    groups: pd.DataFrame
    logrank: pd.DataFrame
    lifetimes: pd.DataFrame
    by: str | None = None
    as_of: dt.date | None = None

    title = "Customer lifetime (Kaplan-Meier)"

    def summary(self) -> pd.DataFrame:
        """Accounts, churns and median lifetime (with its interval) per group."""
        return self.groups


def survival(ws, by: str | None = None, *, as_of=None, small_sample: int = 30,
             alpha: float = 0.05) -> SurvivalResult:
    """Kaplan-Meier survival of account lifetime, median lifetime and a log-rank test.

    Lifetime is defined as in :func:`account_lifetimes` (metrics.md): from
    ``signup_date`` to the churn date (the ``end_date`` after which no subscription
    covers any later day); accounts still covered on the as-of date are censored at it.
    The curve is the Kaplan-Meier product-limit estimate
    ``S(t) = prod_{t_i <= t} (1 - d_i / n_i)`` (statsmodels ``SurvfuncRight``) with
    Greenwood standard errors; the pointwise band is computed on the log(-log S) scale,
    ``S ** exp(+-z * se / (S * |log S|))`` (the band equals S where S is 0 or 1). The
    median lifetime is the first event time ``t`` with ``S(t) <= 0.5`` (the textbook /
    R / lifelines rule shared by the package, :mod:`cs_analysis.survival`), with the
    :mod:`cs_analysis.survival` interval (``quantile_ci``); NaN when S stays above 0.5,
    and a NaN bound when the band does not reach 50% within follow-up (the bound is
    then "later than the longest follow-up"). The log-rank test is statsmodels
    ``survdiff``.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    by : str, optional
        An ``accounts`` column; one curve per value (nulls labelled ``"(missing)"``),
        in a column named after it.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    small_sample : int
        Groups with fewer accounts are flagged ``small_sample=True``.
    alpha : float
        1 - confidence level of the bands and the median interval (between 0 and 1).

    Returns
    -------
    SurvivalResult
        ``curves``, ``groups`` (= ``summary()``), ``logrank`` and ``lifetimes`` (see
        the class).
    """
    from scipy.stats import norm
    from statsmodels.duration.survfunc import survdiff

    by = _by_name(by)
    alpha = check_alpha(alpha)
    small_sample = _small(small_sample)
    as_of = resolve_as_of(ws, as_of)
    z = float(norm.ppf(1 - alpha / 2))
    lt = account_lifetimes(ws, as_of=as_of, by=by)
    labels = _groups(lt, by)
    if by is not None:
        lt[by] = labels
    gcols = _by_list(by)
    curves, summary = [], []
    for group, g in lt.groupby(labels, sort=True):
        time = g["lifetime_days"].to_numpy(dtype=float)
        status = g["churned"].to_numpy(dtype=int)
        n = len(g)
        key = {by: group} if by is not None else {}
        row = {**key, "accounts": n, "churned": int(status.sum()),
               "censored": int(n - status.sum()), "median_days": np.nan,
               "median_lower": np.nan, "median_upper": np.nan,
               "small_sample": n < small_sample}
        days, surv, se = [0.0], [1.0], [0.0]
        at_risk, events = [n], [0]
        if status.sum() > 0:
            km = kaplan_meier(time, status)
            days += list(km.times)
            surv += list(km.surv)
            se += list(km.se)
            at_risk += [int(x) for x in km.n_risk]
            events += [int(x) for x in km.n_events]
            lo, hi = km.quantile_ci(0.5, alpha)
            row.update(median_days=km.quantile(0.5), median_lower=lo, median_upper=hi)
        t_max = float(time.max())
        if t_max > days[-1]:
            days.append(t_max)
            surv.append(surv[-1])
            se.append(se[-1])
            at_risk.append(int((time >= t_max).sum()))
            events.append(0)
        lower, upper = loglog_interval(surv, se, z)   # NaN where S is 0 or 1: the band is S
        lower, upper = np.where(np.isnan(lower), surv, lower), np.where(np.isnan(upper), surv,
                                                                         upper)
        curves.append(pd.DataFrame({**key, "days": days, "survival": surv, "lower": lower,
                                    "upper": upper, "at_risk": at_risk, "events": events}))
        summary.append(row)
    curves_df = (pd.concat(curves, ignore_index=True) if curves
                 else pd.DataFrame({c: [] for c in [*gcols, *_CURVE_COLS]}))
    groups_df = pd.DataFrame(summary, columns=[*gcols, *_SURVIVAL_GROUP_COLS])
    logrank = pd.DataFrame({c: [] for c in ["statistic", "df", "p_value", "groups"]})
    if labels.nunique() >= 2 and lt["churned"].any():
        stat, p = survdiff(lt["lifetime_days"].to_numpy(dtype=float),
                           lt["churned"].to_numpy(dtype=int), labels.to_numpy())
        logrank = pd.DataFrame({"statistic": [float(stat)],
                                "df": [int(labels.nunique() - 1)],
                                "p_value": [float(p)],
                                "groups": [", ".join(sorted(labels.unique()))]})
    notes = ()
    small = groups_df.loc[groups_df["small_sample"].astype(bool)]
    if not small.empty:
        names = ", ".join(map(str, small[by])) if by is not None else "all accounts"
        notes = (f"Fewer than {small_sample} accounts in {names}: medians and differences "
                 "are not conclusive.",)
    return SurvivalResult(curves_df, groups_df, logrank, lt, by, as_of, notes=notes)


# -- churn drivers ---------------------------------------------------------------------
def churn_drivers(ws, covariates: Sequence[str] = ("segment",), *, as_of=None,
                  reference: Mapping[str, str] | None = None,
                  log: Sequence[str] = ("employees",), alpha: float = 0.05,
                  small_sample: int = 30) -> pd.DataFrame:
    """Cox proportional-hazards hazard ratios of churn.

    Fits ``h(t | x) = h0(t) exp(x'b)`` on account lifetimes (:func:`account_lifetimes`:
    signup to churn, censored at the as-of date) with statsmodels ``PHReg`` (Efron
    ties). The hazard ratio of a level is ``exp(b)``: the churn hazard of accounts at
    that level relative to the reference level, holding the other covariates fixed;
    the interval is ``exp(b +- z * se)``.

    Categorical covariates are dummy-coded against an explicit reference level:
    ``reference[covariate]`` if given; else, for ``segment``, ``"Enterprise"`` when
    present; else the best-retaining level (lowest crude churn rate: churns per
    account-day). Nulls form their own level ``"(missing)"``. Numeric covariates enter
    linearly; those listed in ``log`` enter as ``log2(1 + x)``, so their hazard ratio is
    per doubling. Accounts with a null numeric covariate are dropped (see ``n``).

    Small or separated data: a hazard ratio is not estimable when a level has no churn
    at all, or when a covariate separates churners from the others (the estimate runs
    off to 0 or infinity). Rather than a meaningless number (or an overflow), the
    function then raises :class:`ChurnModelError` (a ``ValueError``) naming the
    covariate and level; merge small levels, drop the covariate or use more accounts.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    covariates : list of str
        ``accounts`` columns.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    reference : dict, optional
        Reference level per categorical covariate, e.g. ``{"segment": "Enterprise"}``.
    log : list of str
        Numeric covariates to enter as ``log2(1 + x)``.
    alpha : float
        1 - confidence level.
    small_sample : int
        Levels with fewer accounts are flagged ``small_sample=True``.

    Returns
    -------
    pandas.DataFrame
        One row per covariate level (reference rows included, with hazard ratio 1 and
        no interval): ``covariate``, ``level``, ``reference``, ``is_reference``,
        ``hazard_ratio``, ``lower``, ``upper``, ``p_value``, ``accounts`` and
        ``events`` (at that level; for numeric covariates all accounts used),
        ``small_sample``, ``n`` and ``n_events`` (accounts and churns in the model).

    Raises
    ------
    ChurnModelError
        When no account churned, a level has no churn, or the fit diverges (separation).
    """
    import statsmodels.api as sm
    from scipy.stats import norm

    covariates = _by_list(covariates)
    if not covariates or not all(isinstance(c, str) and c for c in covariates):
        raise ArgumentError(f"covariates={short(covariates)}: churn_drivers needs one or more "
                            "accounts column names (e.g. ['segment', 'employees'])")
    alpha = check_alpha(alpha)
    small_sample = _small(small_sample)
    log = _by_list(log)
    reference = dict(reference or {})
    unknown = set(reference) - set(covariates)
    if unknown:
        raise ArgumentError(f"reference= names {sorted(unknown)}, which are not covariates")
    lt = account_lifetimes(ws, as_of=as_of, by=covariates)
    if lt.empty:
        raise WorkspaceError("churn_drivers: no account has a subscription by the as-of date")
    z = float(norm.ppf(1 - alpha / 2))

    numeric = [c for c in covariates
               if pd.api.types.is_numeric_dtype(lt[c]) and not pd.api.types.is_bool_dtype(lt[c])]
    lt = lt.dropna(subset=numeric).reset_index(drop=True)
    if lt.empty:
        raise WorkspaceError(f"churn_drivers: every account lacks one of {numeric}")
    exog = {}
    meta = []  # (column in exog or None, covariate, level, reference, mask)
    for cov in covariates:
        if cov in numeric:
            x = lt[cov].astype(float)
            if cov in log:
                if (x < 0).any():
                    raise ChurnModelError(f"churn_drivers: {cov} has negative values; "
                                          "log2(1 + x) needs x >= 0")
                name = f"log2(1 + {cov})"
                exog[name] = np.log2(1 + x)
                level = "per doubling"
            else:
                name = cov
                exog[name] = x
                level = "per unit"
            meta.append((name, cov, level, "", np.ones(len(lt), bool)))
            continue
        values = lt[cov].astype("str").where(lt[cov].notna(), MISSING)
        levels = sorted(values.unique())
        ref = reference.get(cov) or _default_reference(cov, values, lt)
        if ref not in levels:
            raise ArgumentError(f"churn_drivers: reference level {ref!r} of {cov} not found; "
                                f"levels are {levels}")
        meta.append((None, cov, ref, ref, (values == ref).to_numpy()))
        for level in levels:
            if level == ref:
                continue
            name = f"{cov}[{level}]"
            exog[name] = (values == level).astype(float)
            meta.append((name, cov, level, ref, (values == level).to_numpy()))
    x = pd.DataFrame(exog)
    time = lt["lifetime_days"].astype(float)
    status = lt["churned"].astype(int)
    _check_estimable(meta, status.to_numpy(), len(lt))
    params, bse, pvalues = _fit_cox(sm, time, x, status, meta)
    rows = []
    for name, cov, level, ref, mask in meta:
        acc_n = int(mask.sum())
        ev_n = int(status.to_numpy()[mask].sum())
        if name is None:
            hr, lo, hi, p = 1.0, np.nan, np.nan, np.nan
        else:
            b, se = float(params[name]), float(bse[name])
            hr, lo, hi, p = math.exp(b), math.exp(b - z * se), math.exp(b + z * se), float(
                pvalues[name])
        rows.append({"covariate": cov, "level": level, "reference": ref,
                     "is_reference": name is None, "hazard_ratio": hr, "lower": lo,
                     "upper": hi, "p_value": p, "accounts": acc_n, "events": ev_n,
                     "small_sample": acc_n < small_sample})
    out = pd.DataFrame(rows)
    out["n"] = len(lt)
    out["n_events"] = int(status.sum())
    return out


def _check_estimable(meta, status: np.ndarray, n: int) -> None:
    """Refuse data on which a hazard ratio cannot be estimated (before fitting)."""
    events = int(status.sum())
    if events == 0:
        raise ChurnModelError(f"churn_drivers: none of the {n} accounts churned by the as-of "
                              "date, so there is no churn to explain")
    if events == n:
        raise ChurnModelError(f"churn_drivers: all {n} accounts churned; hazard ratios need "
                              "some accounts still customers at the as-of date")
    for _, cov, level, _, mask in meta:
        if level in ("per unit", "per doubling"):
            continue
        ev = int(status[mask].sum())
        if ev == 0:
            raise ChurnModelError(
                f"churn_drivers: {cov} level {level!r} has no churned account "
                f"(0 of {int(mask.sum())}), so its hazard ratio cannot be estimated (it runs "
                f"off to 0 or infinity); merge small {cov} levels, drop {cov}, or use more "
                "accounts")


def _fit_cox(sm, time, x: pd.DataFrame, status, meta):
    """Fit PHReg; a clear :class:`ChurnModelError` naming the variable when it diverges."""
    import warnings

    names = {name: (cov, level) for name, cov, level, _, _ in meta if name is not None}

    def diverged(which: list[str], why: str) -> ChurnModelError:
        what = "; ".join(f"{names[w][0]}" + (f" level {names[w][1]!r}" if names[w][1] not in (
            "per unit", "per doubling") else "") for w in which) or ", ".join(
            dict.fromkeys(c for c, _ in names.values()))
        return ChurnModelError(
            f"churn_drivers: the Cox model cannot be estimated on these {len(x)} accounts "
            f"({int(np.sum(status))} churned): {why} for {what}. The data separate churners "
            "from the others (or are too few); merge small levels, drop that covariate, or "
            "use more accounts")

    if len(x.columns) and (x.std(ddof=0) == 0).any():
        flat = [c for c in x.columns if x[c].std(ddof=0) == 0]
        raise diverged(flat, "the covariate does not vary")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # convergence warnings: judged below
            fit = sm.PHReg(time, x, status=status, ties="efron").fit(disp=False)
            params = pd.Series(np.asarray(fit.params, dtype=float), index=x.columns)
            bse = pd.Series(np.asarray(fit.bse, dtype=float), index=x.columns)
            pvalues = pd.Series(np.asarray(fit.pvalues, dtype=float), index=x.columns)
    except (OverflowError, FloatingPointError, np.linalg.LinAlgError, ValueError) as exc:
        raise diverged([], f"the fit failed ({type(exc).__name__})") from None
    # |b| > 15 is a hazard ratio beyond 3 million (or below 1 / 3 million): a divergence
    bad = [c for c in x.columns if not (math.isfinite(params[c]) and math.isfinite(bse[c])
                                        and abs(params[c]) < 15 and bse[c] < 50)]
    if bad:
        raise diverged(bad, "the hazard ratio runs off to 0 or infinity")
    return params, bse, pvalues


def _default_reference(cov: str, values: pd.Series, lt: pd.DataFrame) -> str:
    if cov == "segment" and "Enterprise" in set(values):
        return "Enterprise"
    rates = (lt.assign(_v=values)
             .groupby("_v")
             .agg(events=("churned", "sum"), exposure=("lifetime_days", "sum"),
                  n=("churned", "size")))
    rates["rate"] = rates["events"] / rates["exposure"].clip(lower=1)
    rates = rates.sort_values(["rate", "n"], ascending=[True, False])
    return str(rates.index[0])
