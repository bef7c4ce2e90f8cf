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
  ``S(t) <= 1 - p``); NaN when the curve does not get that low.
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
    next_renewal_dates,
    renewal_calendar,
    subscription_lines,
)
from cs_analysis.results import Result
from cs_analysis.retention import account_lifetimes, mrr_at
from cs_analysis.survival import kaplan_meier
from cs_analysis.time import (
    is_observable,
    local_dates,
    on_or_before,
    period_end,
    period_label,
    period_number,
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
def _tickets(ws, as_of: dt.date) -> pd.DataFrame:
    """Tickets opened on or before the as-of day (ticket-level, with local dates)."""
    t = ws.table("support_tickets", columns=["ticket_id", "account_id", "opened_at"])
    opt = [c for c in ("first_response_at", "resolved_at", "priority", "product", "category",
                       "csat") if c in t.columns]
    t = t.filter(on_or_before(t.opened_at, as_of, ws.timezone))
    df = t.select("ticket_id", "account_id", "opened_at", *opt).to_pandas()
    df["ticket_id"] = df["ticket_id"].astype("str")
    df["account_id"] = df["account_id"].astype("str")
    for c in ("opened_at", "first_response_at", "resolved_at"):
        df[c] = pd.to_datetime(df[c]) if c in df else pd.Series(pd.NaT, index=df.index,
                                                                  dtype="datetime64[ns]")
    for c in ("priority", "product", "category"):
        if c not in df:
            df[c] = pd.Series(pd.NA, index=df.index, dtype="object")
    if "csat" not in df:
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
    from cs_analysis.onboarding import load_criteria, time_to_value

    window_days = check_int("window_days", window_days, minimum=0)
    min_term_months = check_int("min_term_months", min_term_months, minimum=1)
    as_of = resolve_as_of(ws, as_of)
    tz = ws.timezone
    df = _tickets(ws, as_of)
    acc = account_frame(ws, as_of=as_of)
    df = df.merge(acc[["account_id", "segment"]], on="account_id", how="left")
    df = _durations(df, as_of, tz)
    n = len(df)
    d = df["opened_date"].to_numpy("datetime64[D]")
    # 1. after churn
    lt = account_lifetimes(ws, as_of=as_of)
    churn = df["account_id"].map(lt.set_index("account_id")["churn_date"])
    after = (pd.to_datetime(churn).to_numpy("datetime64[D]") <= d) & churn.notna().to_numpy()
    # 2. onboarding: before the day value was reached (or not reached)
    crit = load_criteria(criteria)
    stage = crit.stages[-1].name
    ttv = time_to_value(ws, crit, stage=stage, as_of=as_of)
    ttv = ttv[ttv["reached"].astype(bool)]
    value_day = pd.Series(local_dates(ttv["reached_at"], tz).to_numpy(),
                          index=ttv["account_id"].astype("str"))
    vd = df["account_id"].map(value_day)
    onboarding = (vd.isna() | (vd.to_numpy("datetime64[D]") > d)).to_numpy(bool)
    # 3. renewal window: a covering line renews within window_days
    window = np.zeros(n, dtype=bool)
    if n:
        lines = subscription_lines(ws)
        pairs = df[["account_id"]].assign(_row=np.arange(n), _d=df["opened_date"]).merge(
            lines, on="account_id")
        cover = (pairs["start_date"] <= pairs["_d"]) & (
            pairs["end_date"].isna() | (pairs["_d"] < pairs["end_date"]))
        term = pairs["term_months"].fillna(1.0)
        pairs = pairs[cover & (term >= min_term_months)]
        if len(pairs):
            nxt, _ = next_renewal_dates(pairs["start_date"].to_numpy("datetime64[D]"),
                                        pairs["term_months"].to_numpy(float),
                                        pairs["renewal_date"].to_numpy("datetime64[D]"),
                                        pairs["_d"].to_numpy("datetime64[D]"))
            gap = (nxt - pairs["_d"].to_numpy("datetime64[D]")).astype(np.int64)
            end = pairs["end_date"].to_numpy("datetime64[D]")
            renews = np.isnat(end) | (nxt <= end)
            hit = pairs["_row"].to_numpy()[renews & (gap <= window_days)]
            window[hit] = True
    phase = np.select([after, onboarding, window], ["after churn", "onboarding",
                                                    "renewal window"], "adoption")
    df["phase"] = pd.Series(phase, index=df.index, dtype="str")
    cols = ["ticket_id", "account_id", "segment", "opened_at", "opened_date",
            "first_response_at", "resolved_at", "priority", "product", "category", "csat",
            "phase", "responded", "first_response_h", "resolved", "resolution_h"]
    return df[cols].sort_values(["opened_at", "ticket_id"]).reset_index(drop=True)


def _km(time, event) -> tuple[float, float]:
    time = np.asarray(time, dtype=float)
    if not len(time):
        return np.nan, np.nan
    km = kaplan_meier(time, np.asarray(event, dtype=bool))
    return km.quantile(0.5), km.quantile(0.9)


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

    Parameters
    ----------
    ws : Workspace
        The (possibly scoped) workspace.
    by : {"priority", "product", "category", "segment", "phase"}, optional
        Group column (see :data:`TICKET_BY`); ``phase`` uses :func:`ticket_phases`.
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
    if by == "phase":
        df = ticket_phases(ws, as_of=as_of, window_days=window_days, criteria=criteria,
                           min_term_months=min_term_months)
    else:
        df = _durations(_tickets(ws, as_of), as_of, tz)
        if by == "segment":
            acc = account_frame(ws, as_of=as_of)
            df = df.merge(acc[["account_id", "segment"]], on="account_id", how="left")
    have = ws.table("support_tickets").columns
    for col in ("first_response_at", "resolved_at"):
        if col not in have:
            notes.append(f"support_tickets has no {col} column: its times are unknown "
                         "(every ticket is censored).")
    df["_p"] = period_number(df["opened_date"], grain) if len(df) else pd.Series(
        [], dtype="int64")
    gcol = by
    if by is not None:
        df["_g"] = df[by].astype("object").where(df[by].notna(), MISSING).astype("str")
    p_last = period_of(as_of, grain)
    periods = (sorted(range(int(df["_p"].min()), p_last + 1)) if len(df) else [])
    if periods_arg is not None:
        periods = periods[-periods_arg:]
    groups = sorted(df["_g"].unique()) if by is not None and len(df) else [None]
    customers = _customers(ws, periods, grain, as_of, by == "segment")
    end_instant = {p: pd.Timestamp(utc_instant(min(period_end(p, grain), as_of)
                                               + dt.timedelta(days=1), tz)) for p in periods}
    opened = df["opened_at"].to_numpy("datetime64[ns]")
    res = df["resolved_at"]
    res_ns = res.to_numpy("datetime64[ns]")
    rows = []
    for g in groups:
        sub = df if g is None else df[df["_g"] == g]
        sub_open = opened if g is None else opened[(df["_g"] == g).to_numpy()]
        sub_res = res_ns if g is None else res_ns[(df["_g"] == g).to_numpy()]
        by_p = dict(tuple(sub.groupby("_p"))) if len(sub) else {}
        for p in periods:
            x = by_p.get(p, sub.iloc[0:0])
            stop = np.datetime64(end_instant[p])
            backlog = int(((sub_open < stop) & (np.isnat(sub_res) | (sub_res >= stop))).sum())
            accounts = customers.get((p, g if by == "segment" else None), 0)
            fr50, fr90 = _km(x["first_response_h"], x["responded"])
            rs50, rs90 = _km(x["resolution_h"], x["resolved"])
            cs = x["csat"].dropna().astype(float)
            row = {"period": pd.Timestamp(period_start(p, grain)),
                   "period_label": period_label(p, grain),
                   "complete": is_observable(p, grain, as_of)}
            if gcol:
                row[gcol] = g
            k = len(x)
            row.update({
                "tickets": k, "accounts": accounts,
                "tickets_per_account": k / accounts if accounts else np.nan,
                "tickets_per_100_accounts": 100 * k / accounts if accounts else np.nan,
                "first_response_median_h": fr50, "first_response_p90_h": fr90,
                "responded": int(x["responded"].sum()),
                "resolution_median_h": rs50, "resolution_p90_h": rs90,
                "resolved": int(x["resolved"].sum()),
                "backlog": backlog,
                "csat_responses": len(cs),
                "csat_mean": float(cs.mean()) if len(cs) else np.nan,
                "csat_top2": float((cs >= 4).mean()) if len(cs) else np.nan,
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
    pred = [on_or_before(t.opened_at, as_of, tz), t.priority.isin(list(priorities)),
            t.account_id.isin(list(cal["account_id"]))]
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


def _texts(ws, as_of: dt.date, since: dt.date | None) -> pd.DataFrame:
    """``source, record_id, account_id, at, text`` of every text the workspace holds."""
    tz = ws.timezone
    frames = []
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
        fields = {"account_id": t.account_id, "at": t[at_col], "text": t[text_col]}
        fields["record_id"] = (t[id_col].cast("string") if id_col is not None
                               else ibis.literal(""))
        df = t.filter(*pred).select(**fields).to_pandas()
        df["source"] = source
        df["date"] = local_dates(df["at"], tz)
        frames.append(df)
    if not frames:
        return pd.DataFrame({c: [] for c in ("source", "record_id", "account_id", "date",
                                             "text")})
    out = pd.concat(frames, ignore_index=True)
    out["account_id"] = out["account_id"].astype("str")
    return out[["source", "record_id", "account_id", "date", "text"]]


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
    texts = _texts(ws, as_of, since)
    cols = ["date", "source", "record_id", "account_id", "account_name", "segment",
            "csm_owner", "mrr", "signal", "signal_label", "phrase", "text"]
    if texts.empty:
        return pd.DataFrame({c: [] for c in cols})
    tagged = tag_comments(texts["text"].astype("str"), d)
    hits = tagged[d.names].to_numpy()
    r, c = np.nonzero(hits)
    out = texts.iloc[r].reset_index(drop=True)
    names = np.asarray(d.names, dtype=object)[c]
    out["signal"] = names
    out["signal_label"] = [d.labels[n] for n in names]
    themes = {t.name: t for t in d.themes}
    phrases = []
    for text, name in zip(out["text"], names, strict=True):
        norm = normalize_text(str(text))
        m = themes[name].regex.search(norm)
        phrases.append(m.group(0) if m else "")
    out["phrase"] = phrases
    acc = account_frame(ws, as_of=as_of)
    out = out.merge(acc[["account_id", "account_name", "segment", "csm_owner"]],
                    on="account_id", how="left")
    m = mrr_at(ws, as_of)
    out = out.merge(m, on="account_id", how="left")
    out["mrr"] = out["mrr"].fillna(0.0)
    out = out.sort_values(["date", "account_id", "signal"], ascending=[False, True, True])
    return out[cols].reset_index(drop=True)
