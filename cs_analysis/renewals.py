"""Renewals: the renewal calendar, churn to date and CS activity coverage.

Public API:

- :func:`renewal_calendar` -- accounts renewing within a horizon: date, MRR at stake,
  segment, CSM, days since the last CS activity, open tickets.
- :func:`churn_to_date` -- logo and MRR churn (gross and net) of the current, incomplete
  period so far, beside the same span of the previous period and the last complete
  period.
- :func:`activity_coverage` -- paying accounts without a given CS activity (e.g. a QBR)
  in the last N days, with MRR and owner.
- :func:`next_renewals` -- the next renewal of each running contract line and the rule it
  came from (``renewal_basis``); the other functions build on it.

Definitions
-----------
- **Next renewal of a contract line at date d** (d = the as-of date): a line running at
  d (``start_date <= d < end_date``, null end = running) renews next

  1. on its ``renewal_date`` when it is on or after d and no full term lies between d
     and it (``renewal_basis = "renewal_date"``; a recorded date far in the future for
     an earlier d, e.g. in a backtest, is not the *next* renewal then);
  2. otherwise on the first anniversary of ``start_date`` every ``term_months`` months
     on or after d (``"start_date + term_months"``; the day of month is clipped, so a
     contract started on 31 January renews on 28/29 February, 31 March, ...);
  3. without ``term_months`` (and no usable ``renewal_date``), the contract is assumed
     to renew **monthly** on the day of month of its start (``"assumed monthly"``): the
     function says so in a note and in the ``renewal_basis`` column.

  A renewal due on the as-of date itself counts as upcoming (its outcome is not in
  the data yet). A line whose ``end_date`` comes before its next renewal ends mid-term
  and has no renewal; a line ending *on* its renewal date is a renewal at which the
  customer leaves, and is listed.
- **MRR at stake** of an account: the MRR of its running lines whose next renewal lies
  within the horizon.
- **MRR** (metrics.md): an account's MRR at a date is the sum of ``mrr`` of the
  subscriptions covering that date (:func:`cs_analysis.retention.mrr_at`).
- **Churn to date** uses the MRR bridge of :func:`cs_analysis.retention.revenue_retention`
  on a partial window: from MRR at the end of the previous period to MRR on the window's
  last day; each account's change is churned (to 0), contraction, expansion or new /
  reactivated. **Logo churn** = churned accounts / accounts paying at the start;
  **gross MRR churn** = (churned + contraction MRR) / MRR at the start (= 1 - GRR);
  **net MRR churn** = (churned + contraction - expansion MRR) / MRR at the start
  (= 1 - NRR; new and reactivated accounts do not count).

Every comparison of a ``*_at`` timestamp with a date happens in the workspace's time zone
(:mod:`cs_analysis.time`). Line- and account-level frames come back to pandas; tickets
and activities are aggregated per account in the engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import numpy as np
import pandas as pd

from cs_analysis.errors import ArgumentError, check_choice, check_int
from cs_analysis.results import Result
from cs_analysis.retention import subscription_table
from cs_analysis.time import (
    local_dates,
    on_or_before,
    period_end,
    period_label,
    period_of,
    period_start,
    resolve_as_of,
)

__all__ = [
    "RENEWAL_BASES",
    "ChurnToDate",
    "account_frame",
    "activity_coverage",
    "churn_to_date",
    "next_renewals",
    "renewal_calendar",
    "subscription_lines",
]

#: Values of ``renewal_basis``: how a line's next renewal date was found.
RENEWAL_BASES = ("renewal_date", "start_date + term_months", "assumed monthly")
#: Label of accounts whose group column is null.
MISSING = "(missing)"
#: Priorities counted as critical by default.
CRITICAL = ("P1", "P2")
_ACCOUNT_COLS = ("account_name", "segment", "csm_owner")


# -- month arithmetic (vectorized) -------------------------------------------------------
def add_months(dates, months) -> np.ndarray:
    """Dates moved by whole calendar months, the day of month clipped to the month's end.

    Parameters
    ----------
    dates : array-like of datetime64
        Start dates.
    months : int or array-like of int
        Months to add (may be negative).

    Returns
    -------
    numpy.ndarray of datetime64[D]
    """
    d = np.asarray(dates, dtype="datetime64[D]")
    m = d.astype("datetime64[M]")
    dom = (d - m.astype("datetime64[D]")).astype(np.int64)
    nm = m + np.asarray(months, dtype=np.int64)
    length = ((nm + 1).astype("datetime64[D]") - nm.astype("datetime64[D]")).astype(np.int64)
    return nm.astype("datetime64[D]") + np.minimum(dom, length - 1)


def _month_number(d: np.ndarray) -> np.ndarray:
    return np.asarray(d, dtype="datetime64[D]").astype("datetime64[M]").astype(np.int64)


def next_renewal_dates(start, term, renewal, on_or_after) -> tuple[np.ndarray, np.ndarray]:
    """Next renewal on or after a date per contract line, and the rule used.

    Parameters
    ----------
    start : array-like of datetime64
        ``start_date`` of each line.
    term : array-like of float
        ``term_months`` (NaN when unknown: monthly is assumed).
    renewal : array-like of datetime64
        Recorded ``renewal_date`` (NaT when unknown).
    on_or_after : datetime64 or array-like of datetime64
        The reference date of each line (the as-of date, or a ticket's date).

    Returns
    -------
    (dates, basis) : numpy.ndarray of datetime64[D], numpy.ndarray of str
        See the module docstring for the rules; ``basis`` is one of
        :data:`RENEWAL_BASES`.
    """
    s = np.asarray(start, dtype="datetime64[D]")
    n = s.size
    d = np.broadcast_to(np.asarray(on_or_after, dtype="datetime64[D]"), (n,))
    t_raw = np.asarray(term, dtype=float).reshape(n) if n else np.zeros(0)
    has_term = np.isfinite(t_raw) & (t_raw >= 1)
    t = np.where(has_term, t_raw, 1).astype(np.int64)
    rd = np.asarray(renewal, dtype="datetime64[D]").reshape(n) if n else s
    k0 = _month_number(d) - _month_number(s)
    k = np.maximum(t, (k0 // t) * t)
    cand = add_months(s, k)
    for _ in range(2):  # one step always suffices; the second is a guard
        late = cand < d
        k = np.where(late, k + t, k)
        cand = np.where(late, add_months(s, k), cand)
    ok_rd = ~np.isnat(rd) & (rd >= d)
    prev_rd = add_months(np.where(np.isnat(rd), s, rd), -t)
    use_rd = ok_rd & (~has_term | (prev_rd < d))
    out = np.where(use_rd, rd, cand)
    basis = np.where(use_rd, RENEWAL_BASES[0],
                     np.where(has_term, RENEWAL_BASES[1], RENEWAL_BASES[2])).astype(object)
    return out, basis


# -- engine reads ----------------------------------------------------------------------
def account_frame(ws, *, as_of: dt.date, extra: Sequence[str] = (),
                  ids=None) -> pd.DataFrame:
    """Scoped accounts that exist at ``as_of`` with name, segment, CSM (when present).

    ``ids`` (optional): only these account ids (text), selected in the engine.
    """
    cols = ["account_id", "signup_date"] + [c for c in (*_ACCOUNT_COLS, *extra)
                                            if ws.has("accounts", c)]
    cols = list(dict.fromkeys(cols))
    acc = ws.table("accounts", columns=cols)
    pred = [acc.signup_date <= as_of]
    if ids is not None:
        mem = ibis.memtable(pd.DataFrame({"_id": np.asarray(ids, dtype=object)}),
                            schema={"_id": "string"})
        pred.append(acc.account_id.cast("string").isin(mem._id))
    df = acc.filter(*pred).select(*cols).to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    for c in (*_ACCOUNT_COLS, *extra):
        if c not in df:
            df[c] = pd.Series(pd.NA, index=df.index, dtype="object")
    return df


def subscription_lines(ws, running_on: dt.date | None = None) -> pd.DataFrame:
    """Subscription lines (all, or those covering ``running_on``) with renewal columns."""
    t = ws.table("subscriptions", columns=["account_id", "start_date", "mrr"])
    opt = [c for c in ("end_date", "renewal_date", "term_months", "product",
                       "subscription_id") if ws.has("subscriptions", c)]
    fields = {"account_id": t.account_id, "start_date": t.start_date, "mrr": t.mrr}
    for c in opt:
        fields[c] = t[c]
    sel = t.select(**fields)
    if running_on is not None:
        pred = [sel.start_date <= running_on]
        if "end_date" in opt:
            pred.append(sel.end_date.isnull() | (sel.end_date > running_on))
        sel = sel.filter(*pred)
    df = sel.to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    for c in ("start_date", "end_date", "renewal_date"):
        df[c] = pd.to_datetime(df[c]) if c in df else pd.Series(pd.NaT, index=df.index,
                                                                  dtype="datetime64[ns]")
    df["term_months"] = (pd.to_numeric(df["term_months"], errors="coerce").astype(float)
                         if "term_months" in df else np.nan)
    df["mrr"] = df["mrr"].astype(float)
    return df


def next_renewals(ws, *, as_of=None) -> pd.DataFrame:
    """The next renewal of every contract line running on the as-of date.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    as_of : date or str, optional
        Default: the workspace's as-of date.

    Returns
    -------
    pandas.DataFrame
        One row per running line: ``account_id``, ``start_date``, ``end_date``, ``mrr``,
        ``term_months`` (NaN when unknown), ``renewal_date`` (the next renewal, on or
        after the as-of date), ``renewal_basis`` (see :data:`RENEWAL_BASES`), and
        ``product`` / ``subscription_id`` when present. Lines ending before their next
        renewal are left out.
    """
    as_of = resolve_as_of(ws, as_of)
    lines = subscription_lines(ws, running_on=as_of)
    nxt, basis = next_renewal_dates(lines["start_date"].to_numpy("datetime64[D]"),
                                    lines["term_months"].to_numpy(float),
                                    lines["renewal_date"].to_numpy("datetime64[D]"),
                                    np.datetime64(as_of, "D"))
    out = lines.drop(columns=["renewal_date"]).assign(
        renewal_date=pd.to_datetime(nxt), renewal_basis=pd.Series(basis, index=lines.index,
                                                                   dtype="str"))
    ends_first = out["end_date"].notna() & (out["end_date"] < out["renewal_date"])
    return out[~ends_first].sort_values(["account_id", "renewal_date"]).reset_index(drop=True)


def _last_activity_expr(ws, as_of: dt.date, activity: str | None = None):
    """Ibis ``account_id, last_at`` (latest CS activity on or before as-of), or None."""
    if not ws.has("cs_activities"):
        return None
    a = ws.table("cs_activities", columns=["account_id", "activity", "occurred_at"])
    a = a.filter(on_or_before(a.occurred_at, as_of, ws.timezone))
    if activity is not None:
        a = a.filter(a.activity == activity)
    return a.group_by("account_id").agg(last_at=a.occurred_at.max())


def _last_activity(ws, as_of: dt.date, activity: str | None = None) -> pd.DataFrame:
    """``account_id, last_activity`` (local date) of CS activities on or before as-of."""
    expr = _last_activity_expr(ws, as_of, activity)
    if expr is None:
        return pd.DataFrame({"account_id": pd.Series([], dtype="str"),
                             "last_activity": pd.Series([], dtype="datetime64[ns]")})
    df = expr.to_pandas()
    # the local date of the latest UTC instant (the shift to local time is monotonic)
    return pd.DataFrame({"account_id": df["account_id"].astype("str"),
                         "last_activity": local_dates(df["last_at"], ws.timezone)})


def _open_tickets_expr(ws, as_of: dt.date, critical: Sequence[str]):
    """Ibis per account: tickets open at the end of the as-of day, all and critical."""
    if not ws.has("support_tickets"):
        return None
    t = ws.table("support_tickets", columns=["account_id", "opened_at"])
    tz = ws.timezone
    pred = [on_or_before(t.opened_at, as_of, tz)]
    if "resolved_at" in t.columns:
        pred.append(t.resolved_at.isnull() | ~on_or_before(t.resolved_at, as_of, tz))
    t = t.filter(*pred)
    if "priority" in t.columns and critical:
        crit = ibis.ifelse(t.priority.isin(list(critical)).fill_null(False), 1, 0).cast("int64")
    else:
        crit = ibis.literal(0).cast("int64")
    return (t.mutate(_crit=crit).group_by("account_id")
            .agg(open_tickets=ibis._.count(), open_critical_tickets=ibis._._crit.sum()))


def _account_ids(ws, as_of: dt.date) -> set:
    """Ids (text) of the scoped accounts that exist at ``as_of``."""
    acc = ws.table("accounts", columns=["account_id", "signup_date"])
    ids = acc.filter(acc.signup_date <= as_of).select(
        a=acc.account_id.cast("string")).to_pyarrow()
    return set(ids.column("a").to_pylist())


def _account_details(ws, ids: np.ndarray, as_of: dt.date,
                     critical: Sequence[str]) -> pd.DataFrame:
    """Name, segment, CSM, latest CS activity and open tickets of some accounts.

    One engine query for the given ids: ``last_activity`` is the local date of the
    latest CS activity on or before as-of; ``open_tickets`` / ``open_critical_tickets``
    count tickets open at the end of the as-of day (null when none).
    """
    mem = ibis.memtable(pd.DataFrame({"_id": np.asarray(ids, dtype=object)}),
                        schema={"_id": "string"})
    acc = ws.table("accounts", columns=["account_id", "signup_date"])
    fields = {"_a": acc.account_id.cast("string")}
    for c in _ACCOUNT_COLS:
        fields[c] = acc[c] if c in acc.columns else ibis.null("string")
    acc = acc.filter(acc.signup_date <= as_of).select(**fields)
    j = mem.left_join(acc, mem._id == acc._a)
    out = {"account_id": mem._id, **{c: acc[c] for c in _ACCOUNT_COLS}}
    j = j.select(**out)
    act = _last_activity_expr(ws, as_of)
    if act is not None:
        act = act.select(_b=act.account_id.cast("string"), last_at=act.last_at)
        j = j.left_join(act, j.account_id == act._b).select(*j.columns, "last_at")
    else:
        j = j.mutate(last_at=ibis.null("timestamp"))
    tk = _open_tickets_expr(ws, as_of, critical)
    if tk is not None:
        tk = tk.select(_c=tk.account_id.cast("string"), open_tickets=tk.open_tickets,
                       open_critical_tickets=tk.open_critical_tickets)
        j = j.left_join(tk, j.account_id == tk._c).select(
            *j.columns, "open_tickets", "open_critical_tickets")
    else:
        j = j.mutate(open_tickets=ibis.null("int64"), open_critical_tickets=ibis.null("int64"))
    df = j.to_pandas()
    df["account_id"] = df["account_id"].astype("str")
    for c in _ACCOUNT_COLS:
        if not ws.has("accounts", c):
            df[c] = pd.Series(pd.NA, index=df.index, dtype="object")
    df["last_activity"] = local_dates(df["last_at"], ws.timezone)
    return df.drop(columns=["last_at"])


def _check_days(name: str, value) -> int:
    return check_int(name, value, minimum=0)


# -- renewal calendar ------------------------------------------------------------------
def renewal_calendar(ws, horizon_days: int = 120, *, as_of=None,
                     critical: Sequence[str] = CRITICAL) -> pd.DataFrame:
    """Accounts with a contract renewal within the horizon, with what is at stake.

    A line's next renewal follows the rules of the module docstring (recorded
    ``renewal_date``; else ``start_date`` + whole ``term_months``; else monthly, assumed
    and said in ``renewal_basis``). An account is listed when one of its lines running
    on the as-of date renews between the as-of date and ``horizon_days`` days later
    (both included); **MRR at stake** is the MRR of those lines.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    horizon_days : int
        Days ahead of the as-of date (>= 0).
    as_of : date or str, optional
        Default: the workspace's as-of date.
    critical : sequence of str
        Ticket priorities counted in ``open_critical_tickets``.

    Returns
    -------
    pandas.DataFrame
        One row per renewing account, soonest first: ``account_id``, ``account_name``,
        ``segment``, ``csm_owner``, ``renewal_date`` (its earliest renewal in the
        horizon), ``days_to_renewal``, ``mrr_at_stake``, ``account_mrr`` (all its MRR on
        the as-of date), ``renewing_lines``, ``term_months`` and ``renewal_basis`` (of
        the earliest renewing line; ``term_months`` NaN when unknown),
        ``last_cs_activity`` (local date; NaT when none), ``days_since_cs_activity``
        (NaN when none), ``open_tickets`` and ``open_critical_tickets`` (open at the end
        of the as-of day).
    """
    horizon_days = _check_days("horizon_days", horizon_days)
    as_of = resolve_as_of(ws, as_of)
    critical = tuple(critical or ())
    known = _account_ids(ws, as_of)
    lines = next_renewals(ws, as_of=as_of)
    ids_all = lines["account_id"].to_numpy(object)
    keep = np.fromiter((a in known for a in ids_all), dtype=bool, count=len(lines))
    lines, ids_all = lines[keep], ids_all[keep]
    end = np.datetime64(as_of + dt.timedelta(days=horizon_days), "ns")
    rdate = lines["renewal_date"].to_numpy("datetime64[ns]")
    is_due = rdate <= end
    cols = ["account_id", "account_name", "segment", "csm_owner", "renewal_date",
            "days_to_renewal", "mrr_at_stake", "account_mrr", "renewing_lines", "term_months",
            "renewal_basis", "last_cs_activity", "days_since_cs_activity", "open_tickets",
            "open_critical_tickets"]
    if not is_due.any():
        return _empty(cols)
    # per account with integer codes (account ids sorted), not string group-bys
    codes, uniq = pd.factorize(ids_all, sort=True)
    mrr = lines["mrr"].to_numpy(float)
    mrr0 = np.nan_to_num(mrr, nan=0.0)  # a missing MRR adds nothing (pandas' sum)
    pos = np.flatnonzero(is_due)
    dc = codes[pos]
    # the earliest renewing line of each account (the largest MRR on a tie)
    order = pos[np.lexsort((-mrr[pos], rdate[pos], dc))]
    oc = codes[order]
    first = order[np.r_[True, oc[1:] != oc[:-1]]]
    fc = codes[first]
    n = len(uniq)
    out = pd.DataFrame({
        "account_id": pd.Series(uniq[fc], dtype="str"),
        "renewal_date": lines["renewal_date"].to_numpy()[first],
        "term_months": lines["term_months"].to_numpy(float)[first],
        "renewal_basis": pd.Series(lines["renewal_basis"].to_numpy(object)[first],
                                   dtype="str"),
        "mrr_at_stake": np.bincount(dc, weights=mrr0[pos], minlength=n)[fc],
        "renewing_lines": np.bincount(dc, minlength=n)[fc],
        "account_mrr": np.bincount(codes, weights=mrr0, minlength=n)[fc],
    })
    ids = out["account_id"].to_numpy(object)
    # names, owners, last CS activity and open tickets of the renewing accounts only,
    # joined in the engine
    out = out.merge(_account_details(ws, ids, as_of, critical), on="account_id", how="left")
    out["days_to_renewal"] = (out["renewal_date"] - pd.Timestamp(as_of)).dt.days.astype("int64")
    out["last_cs_activity"] = pd.to_datetime(out["last_activity"])
    out["days_since_cs_activity"] = (pd.Timestamp(as_of) - out["last_cs_activity"]).dt.days
    out["days_since_cs_activity"] = out["days_since_cs_activity"].astype(float)
    for c in ("open_tickets", "open_critical_tickets"):
        out[c] = out[c].fillna(0).astype("int64")
    out["renewing_lines"] = out["renewing_lines"].astype("int64")
    out = out.sort_values(["renewal_date", "mrr_at_stake", "account_id"],
                          ascending=[True, False, True])
    return out[cols].reset_index(drop=True)


def _empty(cols: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in cols})


def renewal_notes(calendar: pd.DataFrame) -> tuple[str, ...]:
    """Notes a reader must see beside a renewal calendar (assumed monthly renewals)."""
    if calendar.empty or "renewal_basis" not in calendar:
        return ()
    n = int((calendar["renewal_basis"] == "assumed monthly").sum())
    if not n:
        return ()
    return (f"{n} of {len(calendar)} accounts have contract lines with neither renewal_date "
            "nor term_months: they are assumed to renew monthly on their start day "
            "(renewal_basis = 'assumed monthly').",)


# -- churn to date ---------------------------------------------------------------------
@dataclass(frozen=True)
class ChurnToDate(Result):
    """Result of :func:`churn_to_date`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per window [and group]: ``window`` (``to date``, ``same span last
        period``, ``last complete period``), ``label`` (e.g. ``2026-Q4 to date``),
        ``period_label``, ``start`` (first day of the window), ``end`` (its last day),
        ``days``, [``by``], ``accounts`` (paying at the start), ``churned_accounts``,
        ``logo_churn``, ``start_mrr``, ``churned_mrr``, ``contraction_mrr``,
        ``expansion_mrr``, ``new_mrr`` (new and reactivated), ``end_mrr``,
        ``gross_mrr_churn``, ``net_mrr_churn``. Churned and contraction MRR are positive
        amounts lost.
    grain, by, as_of
        The arguments used.
    """

    table: pd.DataFrame
    grain: str
    by: str | None
    as_of: dt.date
    title = "Churn to date"

    def summary(self) -> pd.DataFrame:
        """Logo and MRR churn per window [and group]."""
        keep = ["label", *([self.by] if self.by else []), "accounts", "churned_accounts",
                "logo_churn", "start_mrr", "gross_mrr_churn", "net_mrr_churn"]
        return self.table[keep]


WINDOWS = ("to date", "same span last period", "last complete period")


def _bridge_sums(ws, windows, by: str | None, as_of: dt.date) -> pd.DataFrame:
    """Per window and group, the bridge sums of :func:`churn_to_date`, in the engine.

    Each account's MRR (:func:`cs_analysis.retention.mrr_at`: the sum of ``mrr`` of the
    lines covering the date) the day before the window (``s``) and on its last day
    (``e``), for the scoped accounts existing at as-of that have a line covering either
    day; then per window and raw group value: paying accounts (``s > 0``), churned
    (paying, ``e = 0``), start / churned / contraction / expansion / new / end MRR.
    Returns ``_w`` (window index), ``_g`` (group label: the value as text, MISSING when
    null; re-summed per label) and the sums.
    """
    subs = subscription_table(ws)
    days = pd.DataFrame({"_w": np.arange(len(windows), dtype="int64"),
                         "_s": [w[2] - dt.timedelta(days=1) for w in windows],
                         "_e": [w[3] for w in windows]})
    wins = ibis.memtable(days, schema={"_w": "int64", "_s": "date", "_e": "date"})
    j = subs.cross_join(wins)

    def covers(d):
        return (j.start_date <= d) & (j.end_date.isnull() | (d < j.end_date))

    zero = ibis.literal(0.0)
    lines = j.select(_w=j._w, _a=j.account_id.cast("string"),
                     _sm=ibis.ifelse(covers(j._s), j.mrr.cast("float64"), zero),
                     _em=ibis.ifelse(covers(j._e), j.mrr.cast("float64"), zero),
                     _hit=ibis.ifelse(covers(j._s) | covers(j._e), 1, 0))
    per = lines.group_by(["_w", "_a"]).agg(s=lines._sm.sum().fill_null(0.0),
                                            e=lines._em.sum().fill_null(0.0),
                                            h=lines._hit.sum())
    per = per.filter(per.h > 0)
    acc = ws.table("accounts", columns=["account_id", "signup_date"])
    graw = acc[by] if by else ibis.literal("All accounts")
    acc = acc.filter(acc.signup_date <= as_of).select(_b=acc.account_id.cast("string"),
                                                      _graw=graw)
    x = per.join(acc, per._a == acc._b)
    paying = x.s > 0
    churned = paying & (x.e == 0)
    down = paying & (x.e > 0) & (x.e < x.s)
    up = paying & (x.e > x.s)
    out = x.group_by(["_w", "_graw"]).agg(
        accounts=ibis.ifelse(paying, 1, 0).sum(),
        churned_accounts=ibis.ifelse(churned, 1, 0).sum(),
        start_mrr=x.s.sum(),
        churned_mrr=ibis.ifelse(churned, x.s, zero).sum(),
        contraction_mrr=ibis.ifelse(down, x.s - x.e, zero).sum(),
        expansion_mrr=ibis.ifelse(up, x.e - x.s, zero).sum(),
        new_mrr=ibis.ifelse(paying, zero, x.e).sum(),
        end_mrr=x.e.sum()).to_pandas()
    g = out["_graw"].astype("object")
    out["_g"] = g.where(g.notna(), MISSING).astype("str")
    out["_w"] = out["_w"].astype("int64")
    return out.drop(columns=["_graw"]).groupby(["_w", "_g"], as_index=False).sum()


def churn_to_date(ws, grain: str = "quarter", by: str | None = "segment", *,
                  as_of=None) -> ChurnToDate:
    """Logo and MRR churn of the current period so far, with two comparisons.

    Windows (all in the workspace calendar):

    - **to date**: from the first day of the period holding the as-of date to the
      as-of date;
    - **same span last period**: the previous period's first day to the same number of
      days later (clipped at its last day);
    - **last complete period**: the latest period whose last day is on or before the
      as-of date (the previous one unless the as-of date is a period's last day).

    In each window, MRR "at the start" is MRR on the day before the window (the previous
    period's last day, as in :func:`cs_analysis.retention.revenue_retention`'s bridge)
    and MRR "at the end" is MRR on the window's last day; both come from
    :func:`cs_analysis.retention.mrr_at`. Each account's change is churned (to 0),
    contraction (down, still paying), expansion (up) or new / reactivated (from 0), so
    for a complete period the figures equal that period's bridge. **Logo churn** =
    churned accounts / accounts paying at the start; **gross MRR churn** = (churned +
    contraction) / MRR at the start (= 1 - GRR); **net MRR churn** = (churned +
    contraction - expansion) / MRR at the start (= 1 - NRR).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    grain : {"month", "quarter", "year"}
        The period.
    by : str, optional
        An ``accounts`` column (default ``segment``; None for one row per window).
    as_of : date or str, optional
        Default: the workspace's as-of date.

    Returns
    -------
    ChurnToDate
    """
    grain = check_choice("grain", grain, ("month", "quarter", "year"))
    as_of = resolve_as_of(ws, as_of)
    if by is not None and not isinstance(by, str):
        raise ArgumentError(f"by={by!r} must be one accounts column name or None")
    if by is not None and not ws.has("accounts", by):
        raise ArgumentError(f"by={by!r}: the accounts table has no such column")
    p = period_of(as_of, grain)
    offset = (as_of - period_start(p, grain)).days
    prev_end = min(period_start(p - 1, grain) + dt.timedelta(days=offset), period_end(p - 1,
                                                                                     grain))
    last = p if period_end(p, grain) == as_of else p - 1
    windows = [
        ("to date", p, period_start(p, grain), as_of),
        ("same span last period", p - 1, period_start(p - 1, grain), prev_end),
        ("last complete period", last, period_start(last, grain), period_end(last, grain)),
    ]
    agg = _bridge_sums(ws, windows, by, as_of)
    rows = []
    for w, (name, per, first, last_day) in enumerate(windows):
        suffix = " to date" if name == "to date" else (
            f" (days 1-{(last_day - first).days + 1})" if name != "last complete period"
            else "")
        label = f"{period_label(per, grain)}{suffix}"
        mine = agg[agg["_w"] == w]
        keys = sorted(mine["_g"].unique()) if by else ["All accounts"]
        if by and not keys:
            continue
        for g in keys:
            x = mine[mine["_g"] == g].sum(numeric_only=True) if len(mine) else None

            def v(col, x=x) -> float:
                return float(x[col]) if x is not None else 0.0

            n = int(v("accounts"))
            start_mrr, churned_mrr = v("start_mrr"), v("churned_mrr")
            contraction, expansion = v("contraction_mrr"), v("expansion_mrr")
            churned = int(v("churned_accounts"))
            row = {"window": name, "label": label, "period_label": period_label(per, grain),
                   "start": pd.Timestamp(first), "end": pd.Timestamp(last_day),
                   "days": (last_day - first).days + 1}
            if by:
                row[by] = g
            row.update({
                "accounts": n, "churned_accounts": churned,
                "logo_churn": churned / n if n else np.nan,
                "start_mrr": start_mrr, "churned_mrr": churned_mrr,
                "contraction_mrr": contraction, "expansion_mrr": expansion,
                "new_mrr": v("new_mrr"), "end_mrr": v("end_mrr"),
                "gross_mrr_churn": (churned_mrr + contraction) / start_mrr if start_mrr
                else np.nan,
                "net_mrr_churn": (churned_mrr + contraction - expansion) / start_mrr
                if start_mrr else np.nan,
            })
            rows.append(row)
    cols = ["window", "label", "period_label", "start", "end", "days",
            *([by] if by else []), "accounts", "churned_accounts", "logo_churn", "start_mrr",
            "churned_mrr", "contraction_mrr", "expansion_mrr", "new_mrr", "end_mrr",
            "gross_mrr_churn", "net_mrr_churn"]
    table = pd.DataFrame(rows, columns=cols) if rows else _empty(cols)
    notes = [f"'to date' covers {period_label(p, grain)} from {period_start(p, grain)} to "
             f"{as_of} ({offset + 1} days): an incomplete period, compare it with the same "
             "span of the previous period, not with a whole period."]
    small = table[(table["window"] == "to date") & (table["accounts"] < 30)]
    if by and not small.empty:
        notes.append("fewer than 30 paying accounts at the start in: "
                     + ", ".join(map(str, small[by])) + " (rates are noisy)")
    return ChurnToDate(table, grain, by, as_of, notes=tuple(notes))


# -- activity coverage -----------------------------------------------------------------
def activity_coverage(ws, activity: str = "qbr", days: int = 90,
                      segments: str | Sequence[str] | None = None, *,
                      as_of=None) -> pd.DataFrame:
    """Paying accounts without a given CS activity in the last ``days`` days.

    An account is **covered** when it has a ``cs_activities`` row of that activity whose
    local date lies in the ``days`` days ending on the as-of date (as-of date - days + 1
    to the as-of date). Paying = MRR > 0 on the as-of date
    (:func:`cs_analysis.retention.mrr_at`). Every row of the activity counts, whatever
    its ``outcome``.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    activity : str
        The ``cs_activities.activity`` value (``qbr``, ``health_check``, ...).
    days : int
        Window length in days (>= 1).
    segments : str or list of str, optional
        Only these segments (e.g. ``"Enterprise"`` for strategic accounts); default all.
    as_of : date or str, optional
        Default: the workspace's as-of date.

    Returns
    -------
    pandas.DataFrame
        The uncovered accounts, largest MRR first: ``account_id``, ``account_name``,
        ``segment``, ``csm_owner``, ``mrr``, ``last_activity`` (local date of the latest
        such activity ever, NaT when none), ``days_since`` (NaN when none).
    """
    days = check_int("days", days, minimum=1)
    if not isinstance(activity, str) or not activity:
        raise ArgumentError(f"activity={activity!r} must be an activity name such as 'qbr'")
    as_of = resolve_as_of(ws, as_of)
    accounts = ws.table("accounts", columns=["account_id", "signup_date"])
    has_seg = "segment" in accounts.columns
    seg = None
    if segments is not None:
        seg = [segments] if isinstance(segments, str) else list(segments)
        known = set()
        if has_seg:
            a = accounts.filter(accounts.signup_date <= as_of)
            known = {str(v) for v in a.select("segment").distinct().to_pandas()["segment"]
                     if not pd.isna(v)}
        unknown = [s for s in seg if s not in known]
        if unknown and known:
            raise ArgumentError(f"segments: unknown {unknown}; known: {sorted(known)}")
    if ws.has("cs_activities"):
        a = ws.table("cs_activities", columns=["activity"])
        known_acts = set(a.select("activity").distinct().to_pandas()["activity"].astype(str))
        if known_acts and activity not in known_acts:
            raise ArgumentError(f"activity={activity!r} does not occur in cs_activities; "
                                f"known: {sorted(known_acts)}")
    # one engine query: paying accounts (MRR > 0 on the as-of date, as mrr_at) of the
    # segments, without the activity since the window's first day; their latest one
    fields = {"_a": accounts.account_id.cast("string")}
    for c in _ACCOUNT_COLS:
        fields[c] = accounts[c] if c in accounts.columns else ibis.null("string")
    pred = [accounts.signup_date <= as_of]
    if seg is not None:
        pred.append(accounts.segment.isin(seg) if has_seg else ibis.literal(False))
    acc = accounts.filter(*pred).select(**fields)
    subs = subscription_table(ws)
    live = subs.filter(subs.start_date <= as_of,
                       subs.end_date.isnull() | (as_of < subs.end_date))
    m = live.group_by(_m=live.account_id.cast("string")).agg(mrr=live.mrr.sum())
    m = m.filter(m.mrr > 0)
    j = acc.join(m, acc._a == m._m).select(*acc.columns, "mrr")
    last = _last_activity_expr(ws, as_of, activity)
    if last is not None:
        last = last.select(_l=last.account_id.cast("string"), last_at=last.last_at)
        j = j.left_join(last, j._a == last._l).select(*j.columns, "last_at")
        start = on_or_before(j.last_at, as_of - dt.timedelta(days=days), ws.timezone)
        j = j.filter(j.last_at.isnull() | start)
    else:
        j = j.mutate(last_at=ibis.null("timestamp"))
    out = j.to_pandas().rename(columns={"_a": "account_id"})
    out["account_id"] = out["account_id"].astype("str")
    out["mrr"] = out["mrr"].astype(float)
    for c in _ACCOUNT_COLS:
        if not ws.has("accounts", c):
            out[c] = pd.Series(pd.NA, index=out.index, dtype="object")
    out["last_activity"] = local_dates(out["last_at"], ws.timezone)
    since = (pd.Timestamp(as_of) - pd.to_datetime(out["last_activity"])).dt.days.astype(float)
    out["days_since"] = since
    cols = ["account_id", "account_name", "segment", "csm_owner", "mrr", "last_activity",
            "days_since"]
    return out.sort_values(["mrr", "account_id"], ascending=[False, True])[cols].reset_index(
        drop=True)
