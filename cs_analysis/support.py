"""Support across the customer lifecycle: ticket times, phases, critical tickets, leads.

Public API:

- :func:`ticket_phases` -- every ticket with the account's lifecycle ``phase`` when it
  was opened and its censored first-response and resolution times.
- :func:`ticket_metrics` -- tickets opened (per account and per 100 accounts),
  first-response and resolution times as Kaplan-Meier percentiles, backlog at each
  period end and ticket CSAT, per period [and group].
- :func:`open_critical_before_renewal` -- renewing accounts with open high-priority
  tickets: ticket age, owner, MRR at stake.
- :func:`expansion_signals` -- survey comments, feature requests and CSM notes whose
  text suggests expansion (more seats, new sites, another product, API / integration),
  matched with an editable dictionary in the themes format
  (``cs_analysis/defaults/expansion_signals.yml``) by the same code as survey themes.

Definitions
-----------
- **Opened on day d**: the local date of ``opened_at`` in the workspace's time zone; a
  ticket exists at the as-of date when it was opened on or before it.
- **First-response time** = ``first_response_at - opened_at`` and **resolution time** =
  ``resolved_at - opened_at``, in hours. A ticket without a response (resolution) by the
  end of the as-of day is **censored** there: it stays in the estimate as "at least this
  long", never dropped and never counted as answered or resolved (a response or
  resolution dated after the as-of day is not known yet). A ticket resolved without a
  recorded first response is censored at its resolution for the first-response time.
  The **median** and **p90** are Kaplan-Meier percentiles
  (:func:`cs_analysis.survival.kaplan_meier`: the smallest time with
  ``S(t) <= 1 - p``); NaN when the curve does not get that low. (:func:`ticket_metrics`
  computes the times per ticket in the engine, in whole milliseconds, and the curves
  from the engine's grouped (time, events, tickets) frames with the same arithmetic.)
- **Backlog** at a day: tickets opened on or before it and not resolved by its end.
- **Ticket CSAT**: the ``csat`` ratings (1-5) of the period's tickets: mean and the
  share in the top-2 box (4-5, the CSAT definition of metrics.md).
- **Phase** of a ticket, the account's lifecycle phase on the day it was opened, the
  first that applies:

  1. ``after churn`` -- on or after the account's churn date
     (:func:`cs_analysis.retention.account_lifetimes`);
  2. ``onboarding`` -- before the day the account reached value (the last stage of the
     onboarding criteria, :func:`cs_analysis.onboarding.time_to_value`), or value not
     reached by the as-of date;
  3. ``renewal window`` -- within ``window_days`` days before the next renewal of one of
     the account's lines covering that day (renewal rules of :mod:`cs_analysis.renewals`)
     whose term is at least ``min_term_months`` (default 6) months: a monthly contract
     renews every month, so every day would be in its renewal window;
  4. ``adoption`` -- otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ibis
import numpy as np
import pandas as pd

from cs_analysis.config import default_file
from cs_analysis.errors import ArgumentError, check_choice, check_int
from cs_analysis.renewals import (
    CRITICAL,
    MISSING,
    account_frame,
    add_months,
    next_renewal_dates,
    renewal_calendar,
    subscription_lines,
)
from cs_analysis.results import Result
from cs_analysis.retention import account_lifetimes, subscription_table
from cs_analysis.time import (
    day_start,
    is_observable,
    local_date,
    local_dates,
    on_or_before,
    period_end,
    period_expr,
    period_label,
    period_of,
    period_start,
    resolve_as_of,
    utc_instant,
)

__all__ = [
    "PHASES",
    "TICKET_BY",
    "TicketMetrics",
    "expansion_signals",
    "open_critical_before_renewal",
    "ticket_metrics",
    "ticket_phases",
]

#: Lifecycle phases of a ticket, in lifecycle order.
PHASES = ("onboarding", "adoption", "renewal window", "after churn")
#: What :func:`ticket_metrics` can group by.
TICKET_BY = ("priority", "product", "category", "segment", "phase")
#: The default expansion dictionary (themes format), relative to the project folder.
DEFAULT_SIGNALS = default_file("expansion_signals.yml")
_PROJECT = Path(__file__).resolve().parent.parent


# -- tickets ---------------------------------------------------------------------------
# Ticket-level work stays in the engine: the functions below build Ibis expressions over
# support_tickets and bring back per-period (and per-group) aggregates only.
_TICKET_LABELS = ("priority", "product", "category")
#: Tolerance of ``S(t) <= 1 - p`` (as in :mod:`cs_analysis.survival`).
_KM_TOL = 1e-12
_MS_PER_HOUR = 3_600_000


def _ticket_table(ws, as_of: dt.date):
    """Ibis: tickets opened on or before the as-of day, every optional column present.

    Columns: ``ticket_id``, ``account_id``, ``opened_at``, ``first_response_at``,
    ``resolved_at`` (null when the table has no such column), ``priority``, ``product``,
    ``category``, ``csat`` and ``_d`` (the local date of ``opened_at``).
    """
    t = ws.table("support_tickets", columns=["ticket_id", "account_id", "opened_at"])
    have = t.columns
    f = {"ticket_id": t.ticket_id, "account_id": t.account_id, "opened_at": t.opened_at}
    for c in ("first_response_at", "resolved_at"):
        f[c] = t[c] if c in have else ibis.null("timestamp")
    for c in _TICKET_LABELS:
        f[c] = t[c] if c in have else ibis.null("string")
    f["csat"] = t.csat.cast("float64") if "csat" in have else ibis.null("float64")
    t = t.filter(on_or_before(t.opened_at, as_of, ws.timezone)).select(**f)
    return t.mutate(_d=local_date(t.opened_at, ws.timezone))


def _ticket_frame(ws, t) -> pd.DataFrame:
    """A ticket table to pandas; columns the workspace lacks are NaT / NA / NaN."""
    have = ws.table("support_tickets").columns
    df = t.to_pandas()
    df["ticket_id"] = df["ticket_id"].astype("str")
    df["account_id"] = df["account_id"].astype("str")
    for c in ("opened_at", "first_response_at", "resolved_at"):
        df[c] = pd.to_datetime(df[c]) if c in have or c == "opened_at" else pd.Series(
            pd.NaT, index=df.index, dtype="datetime64[ns]")
    for c in _TICKET_LABELS:
        if c not in have:
            df[c] = pd.Series(pd.NA, index=df.index, dtype="object")
    if "csat" not in have:
        df["csat"] = np.nan
    df["opened_date"] = local_dates(df["opened_at"], ws.timezone)
    return df


def _durations(df: pd.DataFrame, as_of: dt.date, tz: str) -> pd.DataFrame:
    """Censored first-response and resolution times (hours) at the end of the as-of day."""
    end = pd.Timestamp(utc_instant(as_of + dt.timedelta(days=1), tz))
    opened = df["opened_at"]
    resolved_ok = df["resolved_at"].notna() & (df["resolved_at"] < end)
    resp_ok = df["first_response_at"].notna() & (df["first_response_at"] < end)
    res_stop = df["resolved_at"].where(resolved_ok, end)
    resp_stop = df["first_response_at"].where(resp_ok, res_stop)
    hours = pd.Timedelta(hours=1)
    return df.assign(
        responded=resp_ok.to_numpy(bool),
        first_response_h=((resp_stop - opened) / hours).clip(lower=0).to_numpy(float),
        resolved=resolved_ok.to_numpy(bool),
        resolution_h=((res_stop - opened) / hours).clip(lower=0).to_numpy(float),
    )


def _ms_of_day(ts):
    """Ibis: milliseconds since the start of the (UTC) day of a timestamp."""
    hms = (ts.hour().cast("int64") * 60 + ts.minute().cast("int64")) * 60 \
        + ts.second().cast("int64")
    return hms * 1000 + ts.millisecond().cast("int64")


def _ms_between(later, earlier):
    """Ibis: whole milliseconds from ``earlier`` to ``later`` (UTC timestamps).

    Built from the day difference and the time of day (``delta`` in days, ``hour``,
    ``minute``, ``second``, ``millisecond``), which every backend computes alike; a
    timestamp difference or epoch seconds are not portable (Spark truncates them to
    whole seconds).
    """
    days = later.date().delta(earlier.date(), unit="day").cast("int64")
    return days * 86_400_000 + _ms_of_day(later) - _ms_of_day(earlier)


def _account_dates(ws, as_of: dt.date, criteria) -> pd.DataFrame:
    """Per account: ``churn`` (churn date) and ``value`` (local day value was reached)."""
    from cs_analysis.onboarding import load_criteria, time_to_value

    tz = ws.timezone
    lt = account_lifetimes(ws, as_of=as_of)
    churn = pd.Series(pd.to_datetime(lt["churn_date"]).to_numpy(),
                      index=lt["account_id"].astype("str"))
    crit = load_criteria(criteria)
    ttv = time_to_value(ws, crit, stage=crit.stages[-1].name, as_of=as_of)
    ttv = ttv[ttv["reached"].astype(bool)]
    value = pd.Series(pd.to_datetime(local_dates(ttv["reached_at"], tz)).to_numpy(),
                      index=ttv["account_id"].astype("str"))
    churn = churn[churn.notna() & ~churn.index.duplicated()]
    value = value[value.notna() & ~value.index.duplicated()]
    ids = churn.index.union(value.index)
    return pd.DataFrame({"account_id": np.asarray(ids, dtype=object),
                         "churn": churn.reindex(ids).dt.date.to_numpy(object),
                         "value": value.reindex(ids).dt.date.to_numpy(object)})


def _renewal_windows(ws, as_of: dt.date, window_days: int,
                     min_term_months: int) -> pd.DataFrame:
    """Per account, disjoint day ranges ``[lo, hi]`` that are in a renewal window.

    A day d is in the window of a line when the line covers d (``start_date <= d <
    end_date``), its term (unknown: monthly) is at least ``min_term_months``, and its next
    renewal on or after d (:func:`cs_analysis.renewals.next_renewal_dates`) comes at most
    ``window_days`` days later and not after the line's end. The next renewal is a step
    function of d, constant between break points (the day after each renewal, and where
    the recorded ``renewal_date`` starts or stops being used); each line is walked
    step by step up to the as-of date (a few steps per year of contract), and the ranges
    of all lines of an account are merged.
    """
    lines = subscription_lines(ws)
    term = lines["term_months"].fillna(1.0)
    lines = lines[(term >= min_term_months) & (lines["start_date"] <= pd.Timestamp(as_of))]
    s = lines["start_date"].to_numpy("datetime64[D]")
    e = lines["end_date"].to_numpy("datetime64[D]")
    t = lines["term_months"].to_numpy(float)
    rd = lines["renewal_date"].to_numpy("datetime64[D]")
    a = np.datetime64(as_of, "D")
    no_end = np.isnat(e)
    last = np.where(no_end, a, np.minimum(np.where(no_end, a, e) - 1, a))
    whole = np.where(np.isfinite(t) & (t >= 1), t, 1).astype(np.int64)
    has_rd = ~np.isnat(rd)
    never = np.datetime64("2262-01-01", "D")  # no break point
    rd_safe = np.where(has_rd, rd, s)
    breaks = (np.where(has_rd, add_months(rd_safe, -whole) + 1, never),
              np.where(has_rd, rd_safe + 1, never))
    d = s.copy()
    acc = lines["account_id"].to_numpy(object)
    out_i, out_lo, out_hi = [], [], []
    idx = np.arange(len(s))
    active = d <= last
    while active.any():
        i = idx[active]
        di = d[i]
        r, _ = next_renewal_dates(s[i], t[i], rd[i], di)
        nb = r + 1
        for b in breaks:
            bi = b[i]
            nb = np.where((bi > di) & (bi < nb), bi, nb)
        renews = no_end[i] | (r <= np.where(no_end[i], r, e[i]))
        lo = np.maximum(di, r - np.timedelta64(window_days, "D"))
        hi = np.minimum(nb - 1, last[i])
        ok = renews & (lo <= hi)
        out_i.append(i[ok])
        out_lo.append(lo[ok])
        out_hi.append(hi[ok])
        d[i] = nb
        active = d <= last
    if not out_i or not sum(len(x) for x in out_i):
        return pd.DataFrame({"account_id": pd.Series([], dtype=object),
                             "lo": pd.Series([], dtype=object),
                             "hi": pd.Series([], dtype=object)})
    w = pd.DataFrame({"account_id": acc[np.concatenate(out_i)],
                      "lo": np.concatenate(out_lo), "hi": np.concatenate(out_hi)})
    w = w.sort_values(["account_id", "lo"], kind="mergesort").reset_index(drop=True)
    # merge overlapping or touching ranges of an account
    reach = w.groupby("account_id", sort=False)["hi"].cummax()
    prev = reach.groupby(w["account_id"], sort=False).shift(1)
    new = prev.isna() | (w["lo"] > prev + pd.Timedelta(days=1))
    block = new.cumsum()
    m = w.groupby(block, sort=False).agg(account_id=("account_id", "first"),
                                         lo=("lo", "min"), hi=("hi", "max"))
    return pd.DataFrame({"account_id": m["account_id"].to_numpy(object),
                         "lo": pd.to_datetime(m["lo"]).dt.date.to_numpy(object),
                         "hi": pd.to_datetime(m["hi"]).dt.date.to_numpy(object)})


def _with_phase(ws, t, as_of: dt.date, window_days: int, criteria, min_term_months: int):
    """Ibis: the ticket table ``t`` (with ``_d``) plus its lifecycle ``phase``."""
    dates = _account_dates(ws, as_of, criteria)
    windows = _renewal_windows(ws, as_of, window_days, min_term_months)
    m = ibis.memtable(dates, schema={"account_id": "string", "churn": "date",
                                      "value": "date"})
    w = ibis.memtable(windows, schema={"account_id": "string", "lo": "date", "hi": "date"})
    key = t.account_id.cast("string")
    j = t.left_join(m, key == m.account_id)
    j = j.select(*t.columns, _churn=m.churn, _value=m.value)
    key = j.account_id.cast("string")
    j = j.left_join(w, [key == w.account_id, w.lo <= j._d, j._d <= w.hi])
    j = j.select(*t.columns, "_churn", "_value", _win=w.lo.notnull())
    after = j._churn.notnull() & (j._churn <= j._d)
    onboarding = j._value.isnull() | (j._value > j._d)
    phase = ibis.cases((after.fill_null(False), "after churn"),
                       (onboarding.fill_null(False), "onboarding"),
                       (j._win, "renewal window"), else_="adoption")
    return j.mutate(phase=phase).drop("_churn", "_value", "_win")


def ticket_phases(ws, *, as_of=None, window_days: int = 90, criteria=None,
                  min_term_months: int = 6) -> pd.DataFrame:
    """Every ticket opened by the as-of date, with its lifecycle phase and censored times.

    Phases and times follow the module docstring.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    window_days : int
        Days before a renewal that form its renewal window.
    criteria : optional
        Onboarding criteria (:func:`cs_analysis.onboarding.load_criteria`); value is the
        last stage. Default: the project's criteria file.
    min_term_months : int
        Only renewals of lines with a term of at least this many months (unknown terms
        count as monthly) open a renewal window.

    Returns
    -------
    pandas.DataFrame
        ``ticket_id``, ``account_id``, ``segment``, ``opened_at``, ``opened_date``
        (local), ``first_response_at``, ``resolved_at``, ``priority``, ``product``,
        ``category``, ``csat``, ``phase``, ``responded`` / ``first_response_h`` and
        ``resolved`` / ``resolution_h`` (event flag and time in hours, censored at the end
        of the as-of day).
    """
    window_days = check_int("window_days", window_days, minimum=0)
    min_term_months = check_int("min_term_months", min_term_months, minimum=1)
    as_of = resolve_as_of(ws, as_of)
    tz = ws.timezone
    t = _with_phase(ws, _ticket_table(ws, as_of), as_of, window_days, criteria,
                    min_term_months)
    df = _ticket_frame(ws, t.drop("_d"))
    df["phase"] = df["phase"].astype("str")
    acc = account_frame(ws, as_of=as_of)
    df = df.merge(acc[["account_id", "segment"]], on="account_id", how="left")
    df = _durations(df, as_of, tz)
    cols = ["ticket_id", "account_id", "segment", "opened_at", "opened_date",
            "first_response_at", "resolved_at", "priority", "product", "category", "csat",
            "phase", "responded", "first_response_h", "resolved", "resolution_h"]
    return df[cols].sort_values(["opened_at", "ticket_id"]).reset_index(drop=True)


def _km_percentiles(x, keys: list[str]) -> dict:
    """Kaplan-Meier median and p90 per group, from a grouped (time, events, count) frame.

    ``x`` has the group ``keys``, ``_t`` (time, whole milliseconds) and ``_e`` (1 when
    the event was observed, 0 when censored). The engine groups the tickets by keys and
    time (``_m`` tickets, ``_dd`` events); per group, sorted by time, the curve is
    :func:`cs_analysis.survival.kaplan_meier`'s, in statsmodels' arithmetic: at each
    event time ``n`` = the tickets with a time on or after it, ``S`` = exp of the running
    sum of ``log(max(1 - d / n, 1e-16))`` (0 where everyone left has the event); the
    ``p`` percentile is the first event time with ``S <= 1 - p`` (tolerance 1e-12).
    (Window functions in the engine would do the same but take seconds to sort a
    million rows by group; the grouped frame is sorted once here.)

    Returns
    -------
    dict
        ``(k, g, p) -> (q50, q90)`` in milliseconds, NaN when the curve stays above.
    """
    import pyarrow.compute as pc

    a = x.group_by([*keys, "_t"]).agg(_m=x.count(), _dd=x._e.sum()).to_pyarrow()
    if not a.num_rows:
        return {}
    codes, labels = [], []
    for k in keys:
        col = a.column(k)
        if _pa_is_string(col.type):
            enc = pc.dictionary_encode(col).combine_chunks()
            codes.append(np.asarray(enc.indices, dtype=np.int64))
            labels.append(np.asarray(enc.dictionary.to_pylist(), dtype=object))
        else:
            codes.append(np.asarray(col, dtype=np.int64))
            labels.append(None)
    t = np.asarray(a.column("_t"), dtype=np.int64)
    m = np.asarray(a.column("_m"), dtype=np.int64)
    d = np.asarray(a.column("_dd"), dtype=np.int64)
    # one int64 sort key: the group's rank (mixed radix of the key codes), then the time
    group = np.zeros(len(t), dtype=np.int64)
    for c in codes:
        c = c - c.min()
        group = group * (int(c.max()) + 1) + c
    t0 = int(t.min())
    span = int(t.max()) - t0 + 1
    if int(group.max()) < (2**62) // span:
        order = np.argsort(group * span + (t - t0))  # (group, time) pairs are unique
    else:  # times too spread for one key
        order = np.lexsort((t, group))
    t, m, d, group = t[order], m[order], d[order], group[order]
    change = np.empty(len(t), dtype=bool)
    change[0] = True
    change[1:] = group[1:] != group[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], len(t))
    out = {}
    for s0, e0 in zip(starts, ends, strict=True):
        first = order[s0]
        key = tuple(c[first] if lab is None else lab[c[first]]
                    for c, lab in zip(codes, labels, strict=True))
        key = tuple(int(v) if isinstance(v, np.integer) else v for v in key)
        mm, dd, tt = m[s0:e0], d[s0:e0], t[s0:e0]
        n = np.cumsum(mm[::-1])[::-1]
        ev = dd > 0
        if not ev.any():
            out[key] = (np.nan, np.nan)
            continue
        sp = 1 - dd[ev] / n[ev].astype(np.float64)
        zero = sp < 1e-16
        sp[zero] = 1e-16
        surv = np.exp(np.cumsum(np.log(sp)))
        surv[zero] = 0
        te = tt[ev]
        qs = []
        for p in (0.5, 0.9):
            idx = np.flatnonzero(surv <= 1 - p + _KM_TOL)
            qs.append(float(te[idx[0]]) if len(idx) else np.nan)
        out[key] = tuple(qs)
    return out


def _pa_is_string(typ) -> bool:
    """Whether a pyarrow type is a (large) string."""
    import pyarrow as pa

    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


@dataclass(frozen=True)
class TicketMetrics(Result):
    """Result of :func:`ticket_metrics`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per period [and group]: ``period`` (first day), ``period_label``,
        ``complete`` (the period has ended by the as-of date), [``by``], ``tickets``
        (opened in the period), ``accounts`` (customers on the period's last day, or on
        the as-of date for the current period; of the segment when ``by="segment"``),
        ``tickets_per_account``, ``tickets_per_100_accounts``,
        ``first_response_median_h``, ``first_response_p90_h``, ``responded``,
        ``resolution_median_h``, ``resolution_p90_h``, ``resolved``, ``backlog`` (open at
        the period's end, or at the as-of date), ``csat_responses``, ``csat_mean``,
        ``csat_top2``.
    grain, by, as_of
        The arguments used.
    """

    table: pd.DataFrame
    grain: str
    by: str | None
    as_of: dt.date
    title = "Support tickets"

    def summary(self) -> pd.DataFrame:
        """The latest complete period's row(s)."""
        t = self.table[self.table["complete"]]
        if t.empty:
            return self.table
        return t[t["period"] == t["period"].max()].reset_index(drop=True)


def ticket_metrics(ws, by: str | None = None, grain: str = "month", *, as_of=None,
                   window_days: int = 90, criteria=None, min_term_months: int = 6,
                   periods: int | None = None) -> TicketMetrics:
    """Tickets opened, response and resolution times, backlog and CSAT per period.

    Definitions in the module docstring: periods are those of the local date of
    ``opened_at``; times are Kaplan-Meier median and p90 over the period's tickets with
    the ones not answered (resolved) by the end of the as-of day censored there;
    ``backlog`` counts tickets open at the end of the period (the as-of day for the
    current period); tickets per 100 accounts divide by the customers (covered by a
    subscription) on that day, of the segment when grouping by segment and of the whole
    (scoped) book otherwise.

    Everything per ticket happens in the engine (durations in whole milliseconds, the
    Kaplan-Meier curves, the backlog); only per-period aggregates come back.

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    by : {"priority", "product", "category", "segment", "phase"}, optional
        Group column (see :data:`TICKET_BY`); ``phase`` as in :func:`ticket_phases`.
    grain : {"week", "month", "quarter", "year"}
        The period.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    window_days, criteria, min_term_months
        Passed to :func:`ticket_phases` when ``by="phase"``.
    periods : int, optional
        Only the last ``periods`` periods up to the one holding the as-of date (the
        backlog still counts older tickets that are open); default all since the first
        ticket.

    Returns
    -------
    TicketMetrics
    """
    grain = check_choice("grain", grain, ("week", "month", "quarter", "year"))
    if by is not None:
        by = check_choice("by", by, TICKET_BY)
    periods_arg = None if periods is None else check_int("periods", periods, minimum=1)
    as_of = resolve_as_of(ws, as_of)
    tz = ws.timezone
    notes = []
    t = _ticket_table(ws, as_of)
    if by == "phase":
        window_days = check_int("window_days", window_days, minimum=0)
        min_term_months = check_int("min_term_months", min_term_months, minimum=1)
        t = _with_phase(ws, t, as_of, window_days, criteria, min_term_months)
    elif by == "segment":
        acc = ws.table("accounts", columns=["account_id", "signup_date"])
        seg = acc.segment if "segment" in acc.columns else ibis.null("string")
        acc = acc.filter(acc.signup_date <= as_of).select(_a=acc.account_id.cast("string"),
                                                          segment=seg)
        j = t.left_join(acc, t.account_id.cast("string") == acc._a)
        t = j.select(*t.columns, segment=acc.segment)
    have = ws.table("support_tickets").columns
    for col in ("first_response_at", "resolved_at"):
        if col not in have:
            notes.append(f"support_tickets has no {col} column: its times are unknown "
                         "(every ticket is censored).")
    gcol = by
    g = (t[by].cast("string").fill_null(MISSING) if by is not None else ibis.literal(""))
    end = day_start(as_of + dt.timedelta(days=1), tz)
    res_ok = (t.resolved_at.notnull() & (t.resolved_at < end)).fill_null(False)
    resp_ok = (t.first_response_at.notnull() & (t.first_response_at < end)).fill_null(False)
    res_stop = ibis.ifelse(res_ok, t.resolved_at, end)
    resp_stop = ibis.ifelse(resp_ok, t.first_response_at, res_stop)
    x = t.select(
        _g=g, _p=period_expr(t._d, grain),
        _rp=ibis.ifelse(resp_ok, 1, 0), _rs=ibis.ifelse(res_ok, 1, 0),
        _fr=ibis.greatest(_ms_between(resp_stop, t.opened_at), 0),
        _rh=ibis.greatest(_ms_between(res_stop, t.opened_at), 0),
        _pr=ibis.ifelse(res_ok, period_expr(t.resolved_at, grain, tz), ibis.null("int64")),
        csat=t.csat)
    # counts per (group, period opened, period resolved): tickets, CSAT and the backlog
    stats = x.group_by(["_g", "_p", "_pr"]).agg(
        n=x.count(), rp=x._rp.sum(), rs=x._rs.sum(), cn=x.csat.count(), cs=x.csat.sum(),
        c4=ibis.ifelse(x.csat >= 4, 1, 0).sum()).to_pandas()
    # one measure at a time: half the engine's hash table and the frame at each step
    q = {}
    for k, (tcol, ecol) in enumerate((("_fr", "_rp"), ("_rh", "_rs"))):
        if len(stats):
            part = _km_percentiles(x.select("_g", "_p", _t=x[tcol], _e=x[ecol]),
                                   ["_g", "_p"])
            q.update({(k, *key): v for key, v in part.items()})
    p_last = period_of(as_of, grain)
    if len(stats):
        stats["_p"] = stats["_p"].astype("int64")
        periods = list(range(int(stats["_p"].min()), p_last + 1))
    else:
        periods = []
    if periods_arg is not None:
        periods = periods[-periods_arg:]
    groups = sorted(stats["_g"].astype("str").unique()) if by is not None and len(stats) \
        else [None]
    customers = _customers(ws, periods, grain, as_of, by == "segment")
    per = stats.groupby(["_g", "_p"]).agg(n=("n", "sum"), rp=("rp", "sum"),
                                         rs=("rs", "sum"), cn=("cn", "sum"),
                                         cs=("cs", "sum"), c4=("c4", "sum")) \
        if len(stats) else None

    def hours(v) -> float:
        return np.nan if v is None or pd.isna(v) else float(v) / _MS_PER_HOUR

    rows = []
    for grp in groups:
        key = "" if grp is None else grp
        sub = stats[stats["_g"] == key] if len(stats) else stats
        p_open = sub["_p"].to_numpy(np.int64) if len(sub) else np.zeros(0, np.int64)
        p_res = sub["_pr"].to_numpy(float) if len(sub) else np.zeros(0)
        n_sub = sub["n"].to_numpy(np.int64) if len(sub) else np.zeros(0, np.int64)
        for p in periods:
            open_at_end = (p_open <= p) & (np.isnan(p_res) | (p_res > p))
            backlog = int(n_sub[open_at_end].sum())
            r = per.loc[(key, p)] if per is not None and (key, p) in per.index else None
            k = int(r["n"]) if r is not None else 0
            cn = int(r["cn"]) if r is not None else 0
            accounts = customers.get((p, grp if by == "segment" else None), 0)
            fr50, fr90 = q.get((0, key, p), (None, None))
            rs50, rs90 = q.get((1, key, p), (None, None))
            row = {"period": pd.Timestamp(period_start(p, grain)),
                   "period_label": period_label(p, grain),
                   "complete": is_observable(p, grain, as_of)}
            if gcol:
                row[gcol] = grp
            row.update({
                "tickets": k, "accounts": accounts,
                "tickets_per_account": k / accounts if accounts else np.nan,
                "tickets_per_100_accounts": 100 * k / accounts if accounts else np.nan,
                "first_response_median_h": hours(fr50), "first_response_p90_h": hours(fr90),
                "responded": int(r["rp"]) if r is not None else 0,
                "resolution_median_h": hours(rs50), "resolution_p90_h": hours(rs90),
                "resolved": int(r["rs"]) if r is not None else 0,
                "backlog": backlog,
                "csat_responses": cn,
                "csat_mean": float(r["cs"]) / cn if cn else np.nan,
                "csat_top2": float(r["c4"]) / cn if cn else np.nan,
            })
            rows.append(row)
    cols = ["period", "period_label", "complete", *([gcol] if gcol else []), "tickets",
            "accounts", "tickets_per_account", "tickets_per_100_accounts",
            "first_response_median_h", "first_response_p90_h", "responded",
            "resolution_median_h", "resolution_p90_h", "resolved", "backlog",
            "csat_responses", "csat_mean", "csat_top2"]
    table = pd.DataFrame(rows, columns=cols)
    if not table.empty:
        order = ([gcol] if gcol else []) + ["period"]
        table = table.sort_values(order).reset_index(drop=True)
    if periods and not is_observable(periods[-1], grain, as_of):
        notes.append(f"{period_label(periods[-1], grain)} is incomplete (to {as_of}); its "
                     "times are censored at the as-of date.")
    if by is not None and by != "segment":
        notes.append("tickets per 100 accounts divide by all customers of the (scoped) book, "
                     f"not by the customers of each {by}.")
    return TicketMetrics(table, grain, by, as_of, notes=tuple(notes))


def _customers(ws, periods, grain: str, as_of: dt.date, per_segment: bool) -> dict:
    """Accounts covered by a subscription on each period's last day (or the as-of date)."""
    if not periods:
        return {}
    subs = ws.table("subscriptions", columns=["account_id", "start_date"])
    has_end = "end_date" in subs.columns
    days = [min(period_end(p, grain), as_of) for p in periods]
    ends = ibis.memtable({"_p": np.asarray(periods, dtype="int64"), "_d": days})
    ends = ends.mutate(_d=ends._d.cast("date"))
    pred = [subs.start_date <= ends._d]
    if has_end:
        pred.append(subs.end_date.isnull() | (ends._d < subs.end_date))
    cov = subs.join(ends, pred).select("account_id", "_p").distinct()
    acc = ws.table("accounts", columns=["account_id", "signup_date"])
    acc = acc.filter(acc.signup_date <= as_of)
    keys = ["_p"]
    if per_segment:
        if "segment" in acc.columns:
            acc = acc.mutate(_g=acc.segment.cast("string").fill_null(MISSING))
        else:
            acc = acc.mutate(_g=ibis.literal(MISSING))
        keys.append("_g")
    j = cov.join(acc, "account_id")
    out = j.group_by(keys).agg(n=j.account_id.count()).to_pandas()
    if per_segment:
        return {(int(p), str(g)): int(n) for p, g, n in zip(out["_p"], out["_g"], out["n"],
                                                           strict=True)}
    return {(int(p), None): int(n) for p, n in zip(out["_p"], out["n"], strict=True)}


# -- critical tickets before renewal ---------------------------------------------------
def open_critical_before_renewal(ws, horizon_days: int = 90,
                                 priorities: Sequence[str] = CRITICAL, *, as_of=None,
                                 opened_within_days: int | None = None) -> pd.DataFrame:
    """Renewing accounts with open high-priority tickets: the tickets to clear first.

    The renewing accounts are those of :func:`cs_analysis.renewals.renewal_calendar`
    (a renewal between the as-of date and ``horizon_days`` later). A ticket is **open**
    when it was opened on or before the as-of date and not resolved by the end of that
    day (workspace time zone).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    horizon_days : int
        Days ahead of the as-of date.
    priorities : sequence of str
        Ticket priorities that count as critical.
    as_of : date or str, optional
        Default: the workspace's as-of date.
    opened_within_days : int, optional
        Instead of the tickets open at the as-of date, every critical ticket opened
        within this many days before the account's renewal (and by the as-of date),
        resolved or not (``status`` says which); for backtests of "a critical ticket in
        the run-up to a renewal".

    Returns
    -------
    pandas.DataFrame
        One row per (account, ticket), soonest renewal first: ``account_id``,
        ``account_name``, ``segment``, ``csm_owner``, ``renewal_date``,
        ``days_to_renewal``, ``mrr_at_stake``, ``ticket_id``, ``priority``,
        ``opened_at``, ``opened_date`` (local), ``age_days`` (as-of date - opened date),
        ``status`` (``open`` / ``resolved``), ``first_response_at``.
    """
    horizon_days = check_int("horizon_days", horizon_days, minimum=0)
    if opened_within_days is not None:
        opened_within_days = check_int("opened_within_days", opened_within_days, minimum=0)
    if isinstance(priorities, str):
        priorities = (priorities,)
    priorities = tuple(priorities)
    if not priorities:
        raise ArgumentError("priorities must name at least one priority, e.g. ('P1', 'P2')")
    as_of = resolve_as_of(ws, as_of)
    tz = ws.timezone
    cal = renewal_calendar(ws, horizon_days, as_of=as_of, critical=priorities)
    cols = ["account_id", "account_name", "segment", "csm_owner", "renewal_date",
            "days_to_renewal", "mrr_at_stake", "ticket_id", "priority", "opened_at",
            "opened_date", "age_days", "status", "first_response_at"]
    if cal.empty or not ws.has("support_tickets", "priority"):
        return pd.DataFrame({c: [] for c in cols})
    t = ws.table("support_tickets", columns=["ticket_id", "account_id", "opened_at",
                                             "priority"])
    has_res = "resolved_at" in t.columns
    has_fr = "first_response_at" in t.columns
    # the renewing accounts go to the engine as a table (a list of 40k literals in the
    # query would take seconds to compile)
    ids = ibis.memtable(pd.DataFrame({"account_id": cal["account_id"].to_numpy(object)}),
                        schema={"account_id": "string"})
    pred = [on_or_before(t.opened_at, as_of, tz), t.priority.isin(list(priorities)),
            t.account_id.cast("string").isin(ids.account_id)]
    if opened_within_days is None and has_res:
        pred.append(t.resolved_at.isnull() | ~on_or_before(t.resolved_at, as_of, tz))
    sel = ["ticket_id", "account_id", "opened_at", "priority"]
    sel += ["resolved_at"] if has_res else []
    sel += ["first_response_at"] if has_fr else []
    if opened_within_days is not None:
        # cheap engine-side pre-filter (in UTC, one day of slack); exact test below
        first = as_of - dt.timedelta(days=horizon_days + opened_within_days + 1)
        pred.append(~on_or_before(t.opened_at, first, tz))
    tk = t.filter(*pred).select(*sel).to_pandas()
    tk["ticket_id"] = tk["ticket_id"].astype("str")
    tk["account_id"] = tk["account_id"].astype("str")
    tk["opened_date"] = local_dates(tk["opened_at"], tz)
    if "resolved_at" not in tk:
        tk["resolved_at"] = pd.NaT
    if "first_response_at" not in tk:
        tk["first_response_at"] = pd.NaT
    end = pd.Timestamp(utc_instant(as_of + dt.timedelta(days=1), tz))
    out = cal[["account_id", "account_name", "segment", "csm_owner", "renewal_date",
               "days_to_renewal", "mrr_at_stake"]].merge(tk, on="account_id")
    if opened_within_days is not None:
        gap = (out["renewal_date"] - out["opened_date"]).dt.days
        out = out[gap <= opened_within_days]
    out["age_days"] = (pd.Timestamp(as_of) - out["opened_date"]).dt.days.astype("int64")
    resolved = out["resolved_at"].notna() & (pd.to_datetime(out["resolved_at"]) < end)
    out["status"] = np.where(resolved, "resolved", "open")
    out = out.sort_values(["renewal_date", "mrr_at_stake", "account_id", "opened_at"],
                          ascending=[True, False, True, True])
    return out[cols].reset_index(drop=True)


# -- expansion signals -----------------------------------------------------------------
def _signal_dictionary(dictionary):
    from cs_analysis.surveys import load_themes

    if isinstance(dictionary, str | Path):
        path = Path(dictionary)
        if not path.exists() and not path.is_absolute() and (_PROJECT / path).exists():
            dictionary = _PROJECT / path
    return load_themes(dictionary)


def _text_sources(ws, as_of: dt.date, since: dt.date | None) -> list:
    """``(source, table)`` for each text column the workspace has.

    The Ibis tables have ``record_id``, ``account_id``, ``at`` and ``text`` (non-null,
    dated in the window).
    """
    tz = ws.timezone
    out = []
    specs = [("survey comment", "survey_responses", "response_id", "responded_at", "comment"),
             ("feature request", "feature_requests", "request_id", "created_at", "title"),
             ("CSM note", "health_inputs", None, "as_of", "note")]
    for ticket_text in ("subject", "description", "text"):
        specs.append(("support ticket", "support_tickets", "ticket_id", "opened_at",
                      ticket_text))
    for source, table, id_col, at_col, text_col in specs:
        if not ws.has(table, at_col, text_col):
            continue
        t = ws.table(table)
        pred = [t[text_col].notnull(), on_or_before(t[at_col], as_of, tz)]
        if since is not None:
            pred.append(~on_or_before(t[at_col], since - dt.timedelta(days=1), tz))
        fields = {"record_id": (t[id_col].cast("string") if id_col is not None
                                else ibis.literal("")),
                  "account_id": t.account_id, "at": t[at_col],
                  "text": t[text_col].cast("string")}
        out.append((source, t.filter(*pred).select(**fields)))
    return out


def expansion_signals(ws, dictionary=DEFAULT_SIGNALS, *, as_of=None,
                      days: int | None = None) -> pd.DataFrame:
    """Texts that suggest expansion: leads to hand to sales.

    Survey comments, feature request titles, CSM notes (``health_inputs.note``) and, when
    the tickets table has a text column (``subject`` / ``description`` / ``text``), ticket
    texts are tagged with the dictionary's signal kinds by the survey-theme matching code
    (:func:`cs_analysis.surveys.tag_comments`; NFKC + case folding; English keywords
    start a word, Japanese ones match anywhere; regular-expression patterns). The
    dictionary is a file in the themes format (``cs_analysis/defaults/themes.yml``), by
    default ``cs_analysis/defaults/expansion_signals.yml`` (more seats, new sites or
    branches, another product, API / integration; English and Japanese).

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    dictionary : str, Path, mapping or ThemeDictionary
        The signal dictionary (:func:`cs_analysis.surveys.load_themes`); a relative path
        not found from the working folder is looked up in the project folder.
    as_of : date or str, optional
        Only texts dated on or before it (default: the workspace's as-of date).
    days : int, optional
        Only texts of the last ``days`` days up to the as-of date; default all.

    Returns
    -------
    pandas.DataFrame
        One row per (text, signal kind), newest first: ``date`` (local), ``source``,
        ``record_id``, ``account_id``, ``account_name``, ``segment``, ``csm_owner``,
        ``mrr`` (on the as-of date; 0 for former customers), ``signal``,
        ``signal_label``, ``phrase`` (the first match, normalized: NFKC, lower case), ``text``.
    """
    from cs_analysis.surveys import normalize_text, tag_comments

    as_of = resolve_as_of(ws, as_of)
    if days is not None:
        days = check_int("days", days, minimum=1)
    d = _signal_dictionary(dictionary)
    since = as_of - dt.timedelta(days=days - 1) if days is not None else None
    sources = _text_sources(ws, as_of, since)
    cols = ["date", "source", "record_id", "account_id", "account_name", "segment",
            "csm_owner", "mrr", "signal", "signal_label", "phrase", "text"]
    empty = pd.DataFrame({c: [] for c in cols})
    if not sources:
        return empty
    # texts repeat (templates, copied notes): tag each distinct text once, in pandas, and
    # let the engine pick the records whose text is a lead
    distinct = sources[0][1].select("text")
    for _, src in sources[1:]:
        distinct = distinct.union(src.select("text"), distinct=True)
    texts = distinct.distinct().to_pandas()["text"].astype("str")
    if texts.empty:
        return empty
    tagged = tag_comments(texts.reset_index(drop=True), d)
    r, c = np.nonzero(tagged[d.names].to_numpy())
    if not len(r):
        return empty
    names = np.asarray(d.names, dtype=object)[c]
    hit_texts = texts.to_numpy(object)[r]
    regex = {t.name: t.regex for t in d.themes}  # compiled once (the property compiles)
    phrases = []
    for text, name in zip(hit_texts, names, strict=True):
        m = regex[name].search(normalize_text(text))
        phrases.append(m.group(0) if m else "")
    hits = ibis.memtable(pd.DataFrame({"_text": hit_texts, "signal": names,
                                       "phrase": np.asarray(phrases, dtype=object)}),
                         schema={"_text": "string", "signal": "string", "phrase": "string"})
    frames = []
    for source, src in sources:
        j = src.join(hits, src.text == hits._text)
        df = j.select("record_id", "account_id", "at", "text", "signal", "phrase").to_pandas()
        df["source"] = source
        df["date"] = local_dates(df["at"], ws.timezone)
        frames.append(df.drop(columns=["at"]))
    out = pd.concat(frames, ignore_index=True)
    if out.empty:
        return empty
    out["account_id"] = out["account_id"].astype("str")
    labels = d.labels
    out["signal_label"] = [labels[n] for n in out["signal"].to_numpy(object)]
    ids = out["account_id"].unique()
    acc = account_frame(ws, as_of=as_of, ids=ids)
    out = out.merge(acc[["account_id", "account_name", "segment", "csm_owner"]],
                    on="account_id", how="left")
    # MRR on the as-of date (mrr_at's definition) of these accounts only
    mem = ibis.memtable(pd.DataFrame({"_id": np.asarray(ids, dtype=object)}),
                        schema={"_id": "string"})
    subs = subscription_table(ws)
    live = subs.filter(subs.start_date <= as_of,
                       subs.end_date.isnull() | (as_of < subs.end_date),
                       subs.account_id.cast("string").isin(mem._id))
    m = live.group_by(account_id=live.account_id.cast("string")).agg(
        mrr=live.mrr.sum()).to_pandas()
    m["account_id"] = m["account_id"].astype("str")
    m["mrr"] = m["mrr"].astype(float)
    out = out.merge(m[["account_id", "mrr"]], on="account_id", how="left")
    out["mrr"] = out["mrr"].fillna(0.0)
    order = list(dict.fromkeys(s for s, _ in sources))
    out["_src"] = out["source"].map({s: i for i, s in enumerate(order)})
    out = out.sort_values(["date", "account_id", "signal", "_src", "record_id"],
                          ascending=[False, True, True, True, True], kind="mergesort")
    return out[cols].reset_index(drop=True)


